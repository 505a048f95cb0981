"""Env-step and update counters past 2^31: exact in jitted code, in the fused chunk, on disk."""

import jax
import numpy as np
import pytest

import envs
from tests.common import TINY
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.core.environment import make_env
from wsrl_mjx.core.loops import make_chunk, policy_actions, strong_copy
from wsrl_mjx.core.online_system import init_training_state
from wsrl_mjx.core.replay import make_replay
from wsrl_mjx.runtime.checkpoint import Checkpointer
from wsrl_mjx.runtime.policy import load_config
from wsrl_mjx.types import Counter

INT32_MAX = 2**31 - 1


@pytest.mark.parametrize("start", [0, INT32_MAX - 100, 3 * 2**40 + 12345])
def test_counter_adds_exactly_past_int32_in_a_scan(start):
    increments = np.random.default_rng(start % 1000).integers(0, 2**29, size=200, dtype=np.int32)

    @jax.jit
    def total(counter, increments):
        return jax.lax.scan(lambda c, n: (c + n, None), counter, increments)[0]

    counter = total(Counter.create(start), increments)
    assert int(counter) == start + int(increments.astype(np.int64).sum())
    assert counter.hi.dtype == counter.lo.dtype == np.int32
    assert 0 <= int(counter.lo) < Counter.BASE


def test_counter_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="outside"):
        Counter.create(-1)
    with pytest.raises(ValueError, match="outside"):
        Counter.create(2**61)
    with pytest.raises(ValueError, match="increment"):
        Counter.create() + 2**30


def test_fused_chunk_counts_past_int32(tmp_path):
    """A state about to pass 2^31 env steps and update rounds keeps counting exactly through a
    compiled online chunk, and through a checkpoint save and restore."""
    cfg = load_config(None, [*TINY, f"run.run_dir={tmp_path}"])
    env = make_env(cfg.env)
    agent = make_sac(cfg.agent, env.observation_size, env.action_size)
    n, length = cfg.online.num_envs, 10
    rows = cfg.agent.critic_minibatches * cfg.agent.batch_size
    batch_env = envs.BatchEnv(env, n)
    buffer = make_replay(cfg.online.buffer_capacity, rows)
    chunk = make_chunk(
        batch_env, agent, buffer, length=length, update_rounds=1, action_fn=policy_actions(agent)
    )
    # Jitted: an eager vmapped MJX reset takes tens of seconds on CPU; strongly typed so the
    # second call reuses the first call's compile.
    initial = strong_copy(jax.jit(lambda: init_training_state(cfg, agent, batch_env, buffer))())
    state, _ = chunk(initial, None)  # fills the buffer
    env_start, update_start = INT32_MAX - 2 * n, INT32_MAX - 3
    counters = dict(env_steps=Counter.create(env_start), updates=Counter.create(update_start))
    state = strong_copy(state.replace(**counters))  # committed, like the chunk's own outputs
    state, metrics = chunk(state, None)
    assert int(state.env_steps) == env_start + length * n > INT32_MAX
    assert int(state.updates) == update_start + length > INT32_MAX
    assert np.isfinite(np.asarray(metrics["critic_loss"])).all()
    assert chunk._cache_size() == 1  # the big counters are the same program's inputs

    checkpointer = Checkpointer(tmp_path / "checkpoints")
    checkpointer.save(int(state.env_steps), state, {})
    target = state.replace(env_steps=Counter.create(), updates=Counter.create())
    restored, _ = checkpointer.restore(target)
    assert int(restored.env_steps) == int(state.env_steps)
    assert int(restored.updates) == int(state.updates)
    checkpointer.close()
