"""envs/: registry, DM Control adapters, BatchEnv time limits / auto-reset / termination.

MJX compiles slowly on CPU, so each MJX function compiles once (module-scoped fixtures) and the
termination logic is tested on a pure-JAX task that compiles in well under a second.
"""

from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mujoco_playground._src.mjx_env import State

import envs
from envs.registry import check_overrides

REQUIRED = {  # name: (observation_size, action_size)
    "CartpoleSwingup": (5, 1),
    "PendulumSwingup": (3, 1),
    "PointMass": (4, 2),
    "ReacherEasy": (6, 2),
    "CheetahRun": (17, 6),
    "WalkerWalk": (24, 6),
    "HopperHop": (15, 4),
}
N = 4


# ---------------------------------------------------------------- registry


def test_registry_lists_dm_control_tasks():
    names = envs.registered_names()
    assert names == sorted(names)
    assert set(REQUIRED) <= set(names)
    assert not {"Go1JoystickFlatTerrain", "PandaPickCube"} & set(names)  # need downloads


def test_unknown_name_lists_names_and_suggests():
    with pytest.raises(ValueError) as err:
        envs.make("CheetaRun")
    msg = str(err.value)
    assert "Did you mean 'CheetahRun'" in msg
    assert all(name in msg for name in envs.registered_names())


def test_unknown_override_key():
    with pytest.raises(ValueError, match="episode_lenght.*episode_length"):
        envs.make("PendulumSwingup", episode_lenght=5)
    with pytest.raises(ValueError, match="'impl'"):  # the Warp backend is never selectable
        envs.make("PendulumSwingup", impl="warp")


# ---------------------------------------------------------------- DM Control tasks


@pytest.fixture(scope="module")
def smoke():
    """{name: (env, reset state, state after one step)} for every REQUIRED task.

    Compile time dominates this file, so: all tasks are traced first and compiled two at a time
    (XLA compiles outside the GIL), with XLA's most expensive optimisation passes off (about 30%
    less compile time; a jitted reset + one step runs in milliseconds either way).
    """
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        lowered = {}
        for name in REQUIRED:
            env = envs.make(name, episode_length=7)

            def reset_step(rng, env=env):
                state = env.reset(rng)
                return state, env.step(state, jnp.full((env.action_size,), 0.5))

            lowered[name] = env, jax.jit(reset_step).trace(jax.random.PRNGKey(0)).lower()
        with ThreadPoolExecutor(2) as pool:
            compiled = pool.map(lambda name: lowered[name][1].compile(), REQUIRED)
            compiled = dict(zip(REQUIRED, compiled, strict=True))
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    return {n: (lowered[n][0], *compiled[n](jax.random.PRNGKey(0))) for n in REQUIRED}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_dm_control_reset_step(smoke, name):
    env, s0, s1 = smoke[name]
    assert (env.name, env.episode_length, env.config["impl"]) == (name, 7, "jax")
    assert (env.observation_size, env.action_size) == REQUIRED[name]
    assert not env.has_success
    for s in (s0, s1):
        assert s.obs.shape == (env.observation_size,) and s.obs.dtype == jnp.float32
        assert np.isfinite(s.obs).all() and np.isfinite(s.reward)
        assert s.done.dtype == jnp.float32 and float(s.done) == 0.0
    assert not np.allclose(s0.obs, s1.obs)


@pytest.fixture(scope="module")
def pendulum():
    """PendulumSwingup (cheapest MJX task), 4 envs, 5-step episodes; each function jitted once."""
    env = envs.make("PendulumSwingup", episode_length=5)
    benv = envs.BatchEnv(env, N)
    return benv, jax.jit(benv.reset), jax.jit(benv.step), jax.jit(jax.vmap(env.step))


def test_auto_reset_on_time_limit(pendulum):
    benv, reset, step, raw_step = pendulum
    state = reset(jax.random.PRNGKey(1))
    assert state.obs.shape == (N, 3) and (state.steps == 0).all()
    starts, rng = [np.asarray(state.obs)], jax.random.PRNGKey(2)
    for _ in range(2):
        rewards = []
        for t in range(1, 6):
            rng, key = jax.random.split(rng)
            action = jax.random.uniform(key, (N, 1), minval=-1.0, maxval=1.0)
            true_next = raw_step(state.env_state, action)  # what the env did before any reset
            prev_obs = state.obs
            state, vs = step(state, action)
            rewards.append(vs.reward)
            np.testing.assert_array_equal(vs.obs, prev_obs)
            np.testing.assert_allclose(vs.next_obs, true_next.obs, rtol=1e-6, atol=1e-6)
            assert np.isfinite(vs.next_obs).all()
            assert (vs.terminated == 0).all() and vs.terminated.dtype == jnp.float32
            if t < 5:
                assert not vs.done.any() and (vs.truncated == 0).all()
                assert (state.steps == t).all()
                np.testing.assert_array_equal(state.obs, vs.next_obs)  # no reset mid-episode
            else:
                assert vs.done.all() and (vs.truncated == 1).all()
                assert (state.steps == 0).all() and (state.episode_return == 0).all()
                np.testing.assert_allclose(vs.episode_return, np.sum(rewards, 0), rtol=1e-5)
                # next_obs is the final obs, state.obs is a fresh reset obs
                assert not np.isclose(vs.next_obs, state.obs).all(axis=1).any()
        starts.append(np.asarray(state.obs))
    starts = np.concatenate(starts)  # 3 resets x 4 envs: all distinct (fresh random, not cached)
    assert len(np.unique(starts.round(6), axis=0)) == len(starts)


def test_out_of_range_actions_are_clipped(pendulum):
    benv, reset, step, _ = pendulum
    state = reset(jax.random.PRNGKey(3))
    action = jnp.array([[5.0], [-7.0], [0.3], [-1.0]])
    _, vs_big = step(state, action)
    _, vs_clipped = step(state, jnp.clip(action, -1.0, 1.0))
    np.testing.assert_allclose(vs_big.action, [[1.0], [-1.0], [0.3], [-1.0]])
    np.testing.assert_array_equal(vs_big.next_obs, vs_clipped.next_obs)
    with pytest.raises(AssertionError):  # chex shape check on the action batch
        benv.step(state, jnp.zeros((N + 1, 1)))


# ---------------------------------------------------------------- termination (pure JAX task)


class Walk1D:
    """Pure-JAX task: x moves by the action sum; reward t; terminates at step `term_at` or once
    x >= 3; obs [x, t] turns NaN at step `nan_at`."""

    action_size = 2

    def __init__(self, term_at: int, nan_at: int = -1):
        self.term_at, self.nan_at = term_at, nan_at

    def _state(self, t, x, reward, done):
        obs = jnp.where(t == self.nan_at, jnp.nan, jnp.stack([x, t.astype(jnp.float32)]))
        success = (x >= 3.0).astype(jnp.float32)
        return State({"t": t, "x": x}, obs, reward, done, {"success": success}, {})

    def reset(self, rng):
        x = jax.random.uniform(rng, (), minval=-1.0, maxval=1.0)
        return self._state(jnp.int32(0), x, 0.0, 0.0)

    def step(self, state, action):
        t, x = state.data["t"] + 1, state.data["x"] + action.sum()
        done = (t >= self.term_at) | (x >= 3.0)
        return self._state(t, x, t.astype(jnp.float32), done)


def _walk_factory(episode_length=10, term_at=3, nan_at=-1, ctrl_range=None):
    return envs.Env(
        Walk1D(term_at, nan_at), "Walk1D", episode_length, has_success=True, ctrl_range=ctrl_range
    )


def _make_walk(**overrides):
    check_overrides("Walk1D", overrides, ["episode_length", "term_at", "nan_at", "ctrl_range"])
    return _walk_factory(**overrides)


@pytest.fixture(scope="module")
def walk_registered():
    envs.register("Walk1D-test", _make_walk)
    return "Walk1D-test"


def test_register_and_make_custom(walk_registered):
    env = envs.make(walk_registered, episode_length=4)
    assert (env.observation_size, env.action_size, env.episode_length) == (2, 2, 4)
    with pytest.raises(ValueError, match="already registered"):
        envs.register(walk_registered, _make_walk)
    with pytest.raises(ValueError, match="'bogus'"):
        envs.make(walk_registered, bogus=1)


def _run(env, actions, rng=0, num_envs=3, time_limit_truncates=True):
    benv = envs.BatchEnv(env, num_envs, time_limit_truncates=time_limit_truncates)
    state, step = benv.reset(jax.random.PRNGKey(rng)), jax.jit(benv.step)
    out = []
    for a in actions:
        state, vs = step(state, jnp.broadcast_to(jnp.asarray(a, jnp.float32), (num_envs, 2)))
        out.append((state, vs))
    return out


def test_terminated_transition(walk_registered):
    env = envs.make(walk_registered, episode_length=10, term_at=3)
    out = _run(env, [[0.0, 0.0]] * 6)
    for i, (state, vs) in enumerate(out[:2]):
        assert not vs.done.any() and (state.steps == i + 1).all()
    state, vs = out[2]
    np.testing.assert_array_equal(vs.terminated, 1.0)
    np.testing.assert_array_equal(vs.truncated, 0.0)
    assert vs.done.all() and vs.done.dtype == jnp.bool_
    np.testing.assert_allclose(vs.episode_return, 1.0 + 2.0 + 3.0)
    np.testing.assert_array_equal(vs.next_obs[:, 1], 3.0)  # true final obs
    np.testing.assert_array_equal(state.obs[:, 1], 0.0)  # fresh reset obs
    assert (state.steps == 0).all() and (state.episode_return == 0).all()
    np.testing.assert_array_equal(vs.success, 0.0)
    assert not np.isclose(state.obs[:, 0], out[1][0].obs[:, 0]).any()  # new random x
    np.testing.assert_allclose(out[5][1].episode_return, 6.0)  # second episode, same again


@pytest.mark.parametrize("time_limit_truncates", [True, False])
def test_time_limit_and_termination_on_one_step(walk_registered, time_limit_truncates):
    """Official (True): the time limit makes it a truncation (bootstrapped) even though the env
    terminated on that step, as the official TruncationWrapper over gym's TimeLimit; False:
    the termination wins. A time limit alone is a truncation either way."""
    env = envs.make(walk_registered, episode_length=3, term_at=3)
    _, vs = _run(env, [[0, 0]] * 3, time_limit_truncates=time_limit_truncates)[-1]
    assert vs.done.all()
    assert (vs.truncated == float(time_limit_truncates)).all()
    assert (vs.terminated == float(not time_limit_truncates)).all()
    env = envs.make(walk_registered, episode_length=2, term_at=3)
    _, vs = _run(env, [[0, 0]] * 2, time_limit_truncates=time_limit_truncates)[-1]
    assert (vs.terminated == 0).all() and (vs.truncated == 1).all() and vs.done.all()


def test_only_finished_envs_reset_and_success():
    env = _walk_factory(episode_length=10, term_at=100)
    benv = envs.BatchEnv(env, 3)
    state, step = benv.reset(jax.random.PRNGKey(4)), jax.jit(benv.step)
    x0 = state.obs[:, 0]
    action = jnp.array([[1.0, 1.0], [0.0, 0.0], [5.0, -5.0]])  # env 0 reaches x >= 3 at step 2
    state, vs = step(state, action)
    assert not vs.done.any()
    state, vs = step(state, action)
    np.testing.assert_array_equal(vs.terminated, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(vs.success, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(state.steps, [0, 2, 2])
    np.testing.assert_allclose(vs.next_obs[0], [x0[0] + 4.0, 2.0], rtol=1e-6)
    np.testing.assert_array_equal(state.obs[1:], vs.next_obs[1:])  # untouched envs
    np.testing.assert_allclose(state.obs[1:, 0], x0[1:])  # action [5, -5] clips to [1, -1]
    assert state.obs[0, 1] == 0.0


def test_non_finite_obs_terminates_and_is_zeroed():
    benv = envs.BatchEnv(_walk_factory(episode_length=10, term_at=100, nan_at=2), 2)
    state = benv.reset(jax.random.PRNGKey(5))
    state, _ = benv.step(state, jnp.zeros((2, 2)))
    state, vs = benv.step(state, jnp.zeros((2, 2)))
    assert (vs.terminated == 1).all() and vs.done.all()
    np.testing.assert_array_equal(vs.next_obs, 0.0)
    assert np.isfinite(state.obs).all() and (state.steps == 0).all()


def test_action_rescaled_to_ctrl_range():
    env = _walk_factory(ctrl_range=[[0.0, 2.0], [0.0, 2.0]])
    s0 = env.reset(jax.random.PRNGKey(6))
    s1 = env.step(s0, jnp.array([1.0, -1.0]))  # -> ctrl [2, 0]
    s2 = env.step(s0, jnp.array([9.0, 0.0]))  # clipped first -> ctrl [2, 1]
    np.testing.assert_allclose(s1.data["x"] - s0.data["x"], 2.0, rtol=1e-6)
    np.testing.assert_allclose(s2.data["x"] - s0.data["x"], 3.0, rtol=1e-6)
