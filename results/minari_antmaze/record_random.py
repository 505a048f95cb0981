"""A tiny Minari dataset recorded by minari's own DataCollector in the *native*
Gymnasium-Robotics `AntMaze_UMaze-v4` (uniform random actions), as tests/test_minari.py does.

    python results/minari_antmaze/record_random.py DATASET_ID EPISODES STEPS  (JSON on stdout)

Writes under $MINARI_DATASETS_PATH; nothing is downloaded.
"""

import json
import sys

import gymnasium as gym
import gymnasium_robotics
import minari
import numpy as np


def main(dataset_id: str, episodes: int, steps: int) -> None:
    gym.register_envs(gymnasium_robotics)
    env = gym.make("AntMaze_UMaze-v4", max_episode_steps=steps)
    collector = minari.DataCollector(env, record_infos=False)
    rng = np.random.default_rng(0)
    for i in range(episodes):
        collector.reset(seed=i)
        done = False
        while not done:
            _, _, terminated, truncated, _ = collector.step(rng.uniform(-1, 1, 8))
            done = terminated or truncated
    dataset = collector.create_dataset(dataset_id=dataset_id, algorithm_name="uniform-random")
    steps = dataset.total_steps
    print(json.dumps({"dataset_id": dataset_id, "episodes": episodes, "steps": steps}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
