"""Record a Minari dataset in the *native* Gymnasium HalfCheetah-v5 with a policy trained here.

    python results/minari_halfcheetah/record_minari.py RUN_DIR DATASET_ID STEPS [--seed S]

RUN_DIR is any run with a checkpoint (here the behaviour SAC trained in the MJX twin); its actor
samples actions (a D4RL-style stochastic behaviour policy) in `gymnasium.make("HalfCheetah-v5")`
wrapped in minari's own `DataCollector`, which writes the dataset under
`$MINARI_DATASETS_PATH/DATASET_ID` in Minari's HDF5 layout (data/main_data.hdf5 +
data/metadata.json with the env_spec). Needs the `minari` extra.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import jax
import minari
import numpy as np

from wsrl_mjx.phases.bridge import load_agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("dataset_id")
    parser.add_argument("steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    agent, state, meta = load_agent(args.run_dir)
    if meta["env"] != "HalfCheetah-v5":
        raise SystemExit(f"{args.run_dir} was trained on {meta['env']}, not HalfCheetah-v5")
    act = jax.jit(lambda obs, key: agent.act(state.actor.params, obs[None], key)[0])
    env = minari.DataCollector(gym.make("HalfCheetah-v5"), record_infos=False)
    key = jax.random.PRNGKey(args.seed)
    obs, _ = env.reset(seed=args.seed)
    returns, ret, episode = [], 0.0, 0
    for _ in range(args.steps):
        key, sub = jax.random.split(key)
        action = np.asarray(act(np.asarray(obs, np.float32), sub), np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        ret += float(reward)
        if terminated or truncated:
            returns.append(ret)
            ret, episode = 0.0, episode + 1
            obs, _ = env.reset(seed=args.seed + episode)
    dataset = env.create_dataset(
        dataset_id=args.dataset_id,
        algorithm_name=f"wsrl-mjx SAC trained in the MJX twin ({args.run_dir})",
        author="wsrl-mjx",
        author_email="wsrl-mjx@example.invalid",
        code_permalink="results/minari_halfcheetah/record_minari.py",
    )
    summary = {
        "dataset_id": args.dataset_id,
        "total_steps": int(dataset.total_steps),
        "episodes": int(dataset.total_episodes),
        "native_episode_returns": returns,
        "mean_native_return": float(np.mean(returns)) if returns else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
