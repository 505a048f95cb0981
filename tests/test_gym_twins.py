"""MJX twins of Gymnasium MuJoCo v5 and Gymnasium-Robotics PointMaze (envs/gym_mujoco.py,
envs/gym_pointmaze.py) against the native envs.

Parity runs in float64 in one subprocess (tests/gym_parity.py turns on jax_enable_x64, which
must not leak into the other tests): per twin one step from the native state within 1e-6 on at
least 95 % of 200 random-action steps, and a rollout that leaves the native one no earlier than
half the step a 1e-6-perturbed native rollout does. Ant's contact gap is measured in
docs/gymnasium_twins.md, not asserted here (it takes minutes to compile in float64 on CPU).
"""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
gymnasium_robotics = pytest.importorskip("gymnasium_robotics")

import envs  # noqa: E402
from envs import gym_mujoco, gym_pointmaze  # noqa: E402

gym.register_envs(gymnasium_robotics)
PARITY_TWINS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "PointMaze_UMaze-v3")
SIZES = {  # Gymnasium's observation size (dict flattened as [observation, desired_goal]), actions
    "HalfCheetah-v5": (17, 6),
    "Hopper-v5": (11, 3),
    "Walker2d-v5": (17, 6),
    "Ant-v5": (105, 8),
    "PointMaze_Medium-v3": (6, 2),
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parity():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.gym_parity", *PARITY_TWINS, "--steps", "200"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", PARITY_TWINS)
def test_one_step_from_the_native_state_matches(parity, name):
    r = parity[name]
    assert r["one_step_within_1e-6"] >= 0.95, r
    assert r["one_step_reward_within_1e-6"] >= 0.95, r
    assert r["done_agrees"] >= 0.95, r


@pytest.mark.parametrize("name", PARITY_TWINS)
def test_rollout_diverges_no_earlier_than_half_a_perturbed_native_one(parity, name):
    r = parity[name]
    assert r["twin_diverges_at"] >= r["perturbed_native_diverges_at"] / 2, r


def test_registered_under_gymnasium_ids_with_native_sizes_and_time_limits():
    for name, (obs, act) in SIZES.items():
        env = envs.make(name)  # builds the model; observation_size traces without compiling
        assert (env.observation_size, env.action_size) == (obs, act), name
        assert env.episode_length == gym.spec(name).max_episode_steps, name
    assert set(gym_pointmaze.POINTMAZE_IDS) <= {i for i in gym.registry if "PointMaze" in i}


@pytest.mark.parametrize("name", sorted(gym_mujoco.GYM_MUJOCO_TASKS))
def test_config_defaults_are_the_v5_constructor_defaults(name):
    native_cls = type(gym.make(name).unwrapped)
    params = inspect.signature(native_cls.__init__).parameters
    config = gym_mujoco.default_config(name)
    for key, value in config.items():
        if key == "episode_length":
            continue
        assert key in params, f"{name}: {key} is not a v5 kwarg"
        assert params[key].default == value, (name, key)


def test_pointmaze_frame_goal_reset_and_success_radius_are_gymnasium_robotics():
    native = gym.make("PointMaze_Medium-v3").unwrapped
    env = envs.make("PointMaze_Medium-v3", reset_target=True)
    task = env.task
    assert gym_pointmaze.SUCCESS_DISTANCE == 0.45
    # Frame: centred, y reversed against the row index (a mirror of envs/maze.py's frame).
    np.testing.assert_allclose(task.maze.cell_rowcol_to_xy(np.array([1, 1])), [-2.5, 2.5])
    np.testing.assert_allclose(task._goals, np.array(native.maze.unique_goal_locations))
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 256))
    goal, start = np.asarray(states.obs[:, 4:]), np.asarray(states.obs[:, :2])
    cells = np.array(native.maze.unique_goal_locations)
    to_cell = np.abs(goal[:, None] - cells[None]).max(axis=2).min(axis=1)
    assert to_cell.max() <= 0.25 + 1e-6 and to_cell.max() > 0.2  # cell centre + U(+-0.25)
    resets = np.array(native.maze.unique_reset_locations)
    start_cell = resets[np.abs(start[:, None] - resets[None]).max(axis=2).argmin(axis=1)]
    assert (np.linalg.norm(start_cell - goal, axis=1) > 0.5).all()  # redrawn when too close
    assert np.asarray(states.obs[:, 2:4]).max() == 0.0  # at rest
