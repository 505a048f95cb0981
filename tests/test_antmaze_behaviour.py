"""Behavioural parity of the AntMaze twins (envs/gym_antmaze.py, float32 as trained) with native
Gymnasium-Robotics AntMaze, for UMaze, Medium and Large: where one step from the same state
cannot agree (MuJoCo's pyramidal cone at the floor, tests/test_antmaze_parity.py), the
distributions of what a policy sees must.

`EPISODES` episodes of `STEPS` uniform random actions from each env's own resets, twin (batched)
and native. Per episode: the dense return sum(exp(-distance to goal)) (reset and goal
sampling), the torso's displacement, its mean height and the mean absolute joint velocity
(the ant's dynamics). Each statistic, twin against native, by a two-sample Kolmogorov-Smirnov
test; a p-value below `ALPHA` fails (Bonferroni: a family-wise 1 % over the 3 mazes x 4
statistics). Success is not tested: random actions in `STEPS` steps almost never reach a goal.

The same test rejects native AntMaze with motors x`WEAK_MOTORS`: the sample is large enough to
see a change of that size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("gymnasium_robotics")
from scipy import stats  # noqa: E402

import envs  # noqa: E402
from tests import antmaze_parity as P  # noqa: E402

MAZES = ("AntMaze_UMaze-v4", "AntMaze_Medium-v4", "AntMaze_Large-v4")
EPISODES = 32
STEPS = 50
STATISTICS = ("dense_return", "displacement", "torso_height", "joint_speed")
ALPHA = 0.01 / (len(MAZES) * len(STATISTICS))
WEAK_MOTORS = 0.8
TORSO_Z = 2  # in the flat observation [qpos (15), qvel (14), goal (2)]
JOINT_VEL = slice(15 + 6, 15 + 14)  # qvel after the free joint's 6


def episode_statistics(obs: np.ndarray, start_xy: np.ndarray) -> dict[str, np.ndarray]:
    """obs: [STEPS, episodes, 31] after each step; start_xy: [episodes, 2]."""
    dist = np.linalg.norm(obs[..., :2] - obs[..., -2:], axis=-1)
    return {
        "dense_return": np.exp(-dist).sum(0),
        "displacement": np.linalg.norm(obs[-1, :, :2] - start_xy, axis=-1),
        "torso_height": obs[..., TORSO_Z].mean(0),
        "joint_speed": np.abs(obs[..., JOINT_VEL]).mean((0, 2)),
    }


def twin_episodes(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    env = envs.make(name)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(seed), EPISODES))
    step = jax.jit(jax.vmap(env.step))
    start = np.asarray(state.obs[:, :2])
    rng = np.random.default_rng(seed)
    obs = []
    for _ in range(STEPS):
        state = step(state, jnp.asarray(rng.uniform(-1, 1, (EPISODES, 8)), jnp.float32))
        obs.append(np.asarray(state.obs))
    assert obs[0].dtype == np.float32  # the twin as trained
    return episode_statistics(np.stack(obs), start)


def native_episodes(env, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs, start = [], []
    for episode in range(EPISODES):
        first, _ = env.reset(seed=seed + episode)
        start.append(first["achieved_goal"].copy())
        obs.append([P.flat(env.step(rng.uniform(-1, 1, 8))[0]) for _ in range(STEPS)])
    return episode_statistics(np.stack(obs, axis=1), np.array(start))


def ks_pvalues(a: dict, b: dict) -> dict[str, float]:
    return {k: float(stats.ks_2samp(a[k], b[k]).pvalue) for k in STATISTICS}


@pytest.fixture(scope="module", params=MAZES)
def maze(request):
    name = request.param
    seed = MAZES.index(name)
    return name, twin_episodes(name, seed), native_episodes(P.native_env(name), seed)


def test_twin_and_native_episodes_are_alike(maze):
    name, twin, native = maze
    pvalues = ks_pvalues(twin, native)
    assert min(pvalues.values()) >= ALPHA, (name, pvalues)
    # Not degenerate: the ant moves, and its joints do.
    assert np.median(native["displacement"]) > 0.1 and np.median(twin["joint_speed"]) > 1.0


def test_the_same_test_rejects_weaker_motors(maze):
    name, twin, _ = maze
    weak = P.native_env(name)
    weak.model.actuator_gear[:] *= WEAK_MOTORS
    weak_native = native_episodes(weak, seed=MAZES.index(name) + len(MAZES))
    assert min(ks_pvalues(twin, weak_native).values()) < ALPHA
