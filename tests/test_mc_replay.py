"""Online CalQL's buffer: MC returns written when an episode ends, only finished episodes sampled,
and the official rule for when updates start."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsrl_mjx.config import ConfigError
from wsrl_mjx.core.mc_replay import discounted_returns, make_mc_replay, online_replay_maker
from wsrl_mjx.core.replay import example_transition
from wsrl_mjx.core.schedule import Schedule, steps_before_updates
from wsrl_mjx.datasets.data import mc_returns
from wsrl_mjx.runtime.policy import load_config
from wsrl_mjx.types import Transition

GAMMA, N, T = 0.9, 3, 6


def step_batch(t, rewards, ends):
    """One vector step: env i's obs holds (i, t) so a sampled row names its env and step."""
    obs = np.array([[i, t] for i in range(N)], np.float32)
    return Transition(
        obs=obs,
        action=np.zeros((N, 1), np.float32),
        reward=np.asarray(rewards, np.float32),
        next_obs=obs,
        terminated=np.asarray([e == "term" for e in ends], np.float32),
        truncated=np.asarray([e == "trunc" for e in ends], np.float32),
    )


def test_discounted_returns_match_the_offline_rule():
    r = np.random.default_rng(0).normal(size=(2, 7)).astype(np.float32)
    got = np.asarray(discounted_returns(jnp.asarray(r), GAMMA))
    ends = np.zeros(7, bool)
    for row in range(2):
        want = mc_returns(r[row], ends, ends, GAMMA)
        np.testing.assert_allclose(got[row], want, rtol=1e-5)


@pytest.fixture(scope="module")
def filled():
    """Env 0 ends (terminal) at t=2, env 1 is truncated at t=4, env 2 never ends; env 0's
    second episode is still running at the end."""
    buffer = make_mc_replay(64, 32, N, T, GAMMA, sparse_negative_reward=-1.0)
    state = buffer.init(example_transition(2, 1))
    rewards = np.array(
        [
            [1.0, -1.0, -1.0],
            [2.0, -1.0, -1.0],
            [3.0, -1.0, -1.0],
            [5.0, -1.0, -1.0],
            [7.0, -1.0, 0.5],
        ]
    )
    ends = [["", "", ""], ["", "", ""], ["term", "", ""], ["", "", ""], ["", "trunc", ""]]
    add = jax.jit(buffer.add)
    for t in range(5):
        state = add(state, step_batch(t, rewards[t], ends[t]))
    return buffer, state


def test_returns_are_written_when_the_episode_ends(filled):
    _, state = filled
    mc, finished = np.asarray(state.mc_return), np.asarray(state.finished)
    slot = lambda env, t: t * N + env  # noqa: E731  (item buffer: N slots per vector step)
    # Env 0, episode (1, 2, 3) then terminal: G computed with no bootstrap.
    np.testing.assert_allclose(
        [mc[slot(0, t)] for t in range(3)], [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3], rtol=1e-6
    )
    # Env 1: five rewards of -1 then truncation: the sparse all-failure rule gives -1 / (1 - g).
    np.testing.assert_allclose([mc[slot(1, t)] for t in range(5)], [-10.0] * 5, rtol=1e-6)
    assert all(finished[slot(0, t)] for t in range(3)) and all(
        finished[slot(1, t)] for t in range(5)
    )
    # Unfinished: env 0's second episode (t = 3, 4) and all of env 2.
    assert not any(finished[slot(0, t)] for t in (3, 4))
    assert not any(finished[slot(2, t)] for t in range(5))
    assert int(state.tracker.length[0]) == 2 and int(state.tracker.length[2]) == 5


def test_only_finished_episodes_are_sampled(filled):
    buffer, state = filled
    rows = jax.jit(buffer.sample)(state, jax.random.PRNGKey(0)).experience
    env, t = np.asarray(rows.obs[:, 0]), np.asarray(rows.obs[:, 1])
    finished = ((env == 0) & (t <= 2)) | (env == 1)
    assert finished.all() and len(env) == 32
    assert set(np.unique(env)) == {0, 1}  # both finished episodes are drawn
    expected = np.where(env == 1, -10.0, np.select([t == 0, t == 1], [5.23, 4.7], 3.0))
    np.testing.assert_allclose(rows.mc_return, expected, rtol=1e-5)


def test_capacity_must_hold_one_episode_per_env():
    with pytest.raises(ValueError, match="smaller than one episode of every env"):
        make_mc_replay(10, 4, N, T, GAMMA)
    cfg = load_config(None, ["online.num_envs=4", "online.buffer_capacity=1024"])
    with pytest.raises(ConfigError, match="one episode of every env"):
        online_replay_maker(cfg, episode_length=1000, mc_bound=True)(1024)


@pytest.mark.parametrize(
    "first_update, warmup, mc_bound, expected",
    [
        ("official", 0, False, 1024),  # K = 0 still collects one sampled batch first
        ("official", 5000, False, 5000),
        ("official", 0, True, 16 * 100),  # online CalQL: one episode length per env
        ("after_warmup", 0, True, 0),
    ],
)
def test_first_update_rule(first_update, warmup, mc_bound, expected):
    cfg = load_config(
        None,
        [
            "online.num_envs=16",
            f"online.warmup_steps={warmup}",
            f"online.first_update={first_update}",
            "online.total_env_steps=20000",
        ],
    )
    steps = steps_before_updates(cfg, 1024, episode_length=100, mc_bound=mc_bound)
    assert steps == expected
    assert Schedule.from_config(cfg, steps).warmup_env_steps >= expected
