"""wsrl_mjx/core/evaluate.py against a hand-countable env (pure jnp, no MJX: compiles in a
second)."""

import jax
import jax.numpy as jnp
import numpy as np
from mujoco_playground._src.mjx_env import State

from wsrl_mjx.core.evaluate import make_evaluator

HORIZON = 6


class CountdownEnv:
    """Reward 1 per step; terminates (with success) after `limit` steps, limit in 2..8 drawn at
    reset, so some episodes end by termination and others hit the time limit of 6."""

    episode_length = HORIZON

    def reset(self, rng: jax.Array) -> State:
        limit = jax.random.randint(rng, (), 2, 9).astype(jnp.float32)
        zero = jnp.zeros((), jnp.float32)
        metrics = {"success": zero, "steps_left": limit}
        return State(zero, jnp.stack([zero, limit]), zero, zero, metrics, {})

    def step(self, state: State, action: jax.Array) -> State:
        t, limit = state.obs[0] + 1.0, state.obs[1]
        done = (t >= limit).astype(jnp.float32)
        metrics = {"success": done, "steps_left": limit - t}
        return state.replace(obs=jnp.stack([t, limit]), reward=1.0, done=done, metrics=metrics)


class ZeroPolicy:
    def act(self, params, obs, rng, deterministic=False):
        return jnp.zeros(obs.shape[:-1] + (1,))


def test_returns_lengths_success_and_final_metrics_by_hand():
    env, n, rng = CountdownEnv(), 16, jax.random.PRNGKey(0)
    result = make_evaluator(env, ZeroPolicy(), n)(None, rng)
    limits = np.asarray(jax.vmap(env.reset)(jax.random.split(rng, n)).obs[:, 1])
    assert 0 < (limits <= HORIZON).sum() < n  # both ways of ending occur
    length = np.minimum(limits, HORIZON)
    assert set(result) == {"return", "success", "length", "final_steps_left"}
    np.testing.assert_allclose(result["return"], length.mean())  # reward 1 until the end only
    np.testing.assert_allclose(result["length"], length.mean())
    np.testing.assert_allclose(result["success"], (limits <= HORIZON).mean())
    # The metric at each episode's last step: 0 at termination, limit - 6 at the time limit.
    np.testing.assert_allclose(result["final_steps_left"], (limits - length).mean())


class NoSuccessEnv(CountdownEnv):
    """The same episodes from a task without a success signal (e.g. the DM Control suite)."""

    def reset(self, rng):
        state = super().reset(rng)
        return state.replace(metrics={"steps_left": state.metrics["steps_left"]})

    def step(self, state, action):
        stepped = super().step(state.replace(metrics={"success": 0.0, **state.metrics}), action)
        return stepped.replace(metrics={"steps_left": stepped.metrics["steps_left"]})


def test_a_task_without_success_reports_no_success_rate_rather_than_zero():
    result = make_evaluator(NoSuccessEnv(), ZeroPolicy(), 4)(None, jax.random.PRNGKey(0))
    assert set(result) == {"return", "length", "final_steps_left"}


def test_training_summary_has_success_only_for_tasks_with_one():
    from wsrl_mjx.core.loops import summarize_chunk

    metrics = {
        "episodes": np.array([1.0, 1.0]),
        "episode_return_sum": np.array([2.0, 4.0]),
        "success_sum": np.array([0.0, 1.0]),
    }
    assert summarize_chunk(metrics)["train_success"] == 0.5
    summary = summarize_chunk(metrics, has_success=False)
    assert "train_success" not in summary and summary["train_return"] == 3.0


def test_rollout_stops_once_every_episode_ended():
    """Every episode ends within 8 steps of a 100-step limit: the loop stops at the longest one
    (as with Hopper's early falls) and the results are those of the whole horizon."""

    class LongLimit(CountdownEnv):
        episode_length = 100

    iterations = []

    class CountingPolicy(ZeroPolicy):
        def act(self, params, obs, rng, deterministic=False):
            jax.debug.callback(lambda: iterations.append(1))  # once per loop iteration
            return super().act(params, obs, rng, deterministic)

    env, rng = LongLimit(), jax.random.PRNGKey(0)
    result = make_evaluator(env, CountingPolicy(), 8)(None, rng)
    jax.effects_barrier()
    limits = np.asarray(jax.vmap(env.reset)(jax.random.split(rng, 8)).obs[:, 1])
    np.testing.assert_allclose(result["length"], limits.mean())
    np.testing.assert_allclose(result["return"], limits.mean())
    np.testing.assert_allclose(result["success"], 1.0)
    assert len(iterations) == limits.max() < 100


class MovingEnv(CountdownEnv):
    """Countdown episodes of a task that reports its x velocity: t at step t."""

    def reset(self, rng):
        state = super().reset(rng)
        return state.replace(metrics={**state.metrics, "x_velocity": jnp.zeros(())})

    def step(self, state, action):
        stepped = super().step(state, action)
        return stepped.replace(metrics={**stepped.metrics, "x_velocity": stepped.obs[0]})


def test_forward_speed_is_the_mean_x_velocity_of_each_episode_up_to_its_end():
    env, n, rng = MovingEnv(), 16, jax.random.PRNGKey(0)
    per_episode = make_evaluator(env, ZeroPolicy(), n, per_episode=True)(None, rng)
    length = np.minimum(np.asarray(jax.vmap(env.reset)(jax.random.split(rng, n)).obs[:, 1]), 6)
    assert per_episode["return"].shape == (n,)
    np.testing.assert_allclose(per_episode["length"], length)
    np.testing.assert_allclose(per_episode["forward_speed"], (length + 1) / 2)  # mean of 1..L
    means = make_evaluator(env, ZeroPolicy(), n)(None, rng)
    np.testing.assert_allclose(means["forward_speed"], ((length + 1) / 2).mean(), rtol=1e-6)
