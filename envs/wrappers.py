"""`BatchEnv`: N envs stepped together, with time limits and auto-reset; pure and jittable."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct

from envs.base import Env, State


@struct.dataclass
class BatchEnvState:
    env_state: State  # batched over N
    obs: jax.Array  # [N, obs] current obs (already the reset obs where the last step ended)
    steps: jax.Array  # [N] int32 steps taken in the current episode
    episode_return: jax.Array  # [N] float32 running return of the current episode
    rng: jax.Array  # one PRNG key, split for resets


@struct.dataclass
class VecStep:
    obs: jax.Array  # [N, obs] observation the action was taken in
    action: jax.Array  # [N, act] the (clipped) action
    reward: jax.Array  # [N] float32
    next_obs: jax.Array  # [N, obs] TRUE next observation, also at episode ends (not the reset obs)
    terminated: jax.Array  # [N] float32 1.0 = true termination (no bootstrap)
    truncated: jax.Array  # [N] float32 1.0 = time limit hit and not terminated (bootstrap)
    done: jax.Array  # [N] bool terminated or truncated
    episode_return: jax.Array  # [N] return of the episode that ended here (valid where done)
    success: jax.Array  # [N] float32 (zeros if the task has no success signal)


def _select(mask: jax.Array, on_true: jax.Array, on_false: jax.Array) -> jax.Array:
    """Per-env select along the leading axis; lax.select also handles typed PRNG key leaves."""
    mask = jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (on_true.ndim - 1)), on_true.shape)
    return jax.lax.select(mask, on_true, on_false)


class BatchEnv:
    """`num_envs` copies of `env`, vmapped, with the episode time limit and auto-reset.

    - `truncated` when an episode reaches `env.episode_length` steps. With `time_limit_truncates`
      (the official code's behaviour) that holds even when the env terminated on the same step,
      which then bootstraps; without it the termination wins.
    - Finished envs restart from FRESH random states (a new key per reset, never a cached start).
    - `VecStep.next_obs` is the true final observation; `BatchEnvState.obs` is the reset one.
    - Non-finite guard: a stepped env whose obs or reward is NaN/inf counts as terminated and is
      reset; those non-finite entries are zeroed in `VecStep` so they cannot poison a replay
      buffer (a terminal transition never bootstraps from next_obs anyway).
    """

    def __init__(
        self,
        env: Env,
        num_envs: int,
        seed_axis: str | None = None,
        time_limit_truncates: bool = True,
    ) -> None:
        """`seed_axis`: the name of a vmapped axis this batch is stepped under (several seeds
        in one program); the reset below then runs when an env of any seed finished."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env = env
        self.num_envs = int(num_envs)
        self.seed_axis = seed_axis
        self.time_limit_truncates = time_limit_truncates

    def _reset_envs(self, rng: jax.Array) -> State:
        return jax.vmap(self.env.reset)(jax.random.split(rng, self.num_envs))

    def reset(self, rng: jax.Array) -> BatchEnvState:
        rng, key = jax.random.split(rng)
        env_state = self._reset_envs(key)
        zeros = jnp.zeros((self.num_envs,), jnp.float32)
        return BatchEnvState(
            env_state=env_state,
            obs=env_state.obs,
            steps=jnp.zeros((self.num_envs,), jnp.int32),
            episode_return=zeros,
            rng=rng,
        )

    def step(self, state: BatchEnvState, action: jax.Array) -> tuple[BatchEnvState, VecStep]:
        chex.assert_shape(action, (self.num_envs, self.env.action_size))
        action = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
        stepped = jax.vmap(self.env.step)(state.env_state, action)

        finite_obs = jnp.isfinite(stepped.obs)
        finite = finite_obs.all(axis=-1) & jnp.isfinite(stepped.reward)
        next_obs = jnp.where(finite_obs, stepped.obs, 0.0)
        reward = jnp.where(finite, stepped.reward, 0.0)
        terminated = (stepped.done > 0) | ~finite
        steps = state.steps + 1
        time_limit = steps >= self.env.episode_length
        if self.time_limit_truncates:  # a non-finite state never bootstraps, time limit or not
            terminated = terminated & (~time_limit | ~finite)
        truncated = time_limit & ~terminated
        done = terminated | truncated
        episode_return = state.episode_return + reward
        if self.env.has_success:
            success = stepped.metrics["success"].astype(jnp.float32)
        else:
            success = jnp.zeros_like(reward)

        # The vmapped reset costs about as much as a step (Cheetah's runs 200 physics steps), so
        # run it only on vector steps where some env finished; select per env inside.
        rng, reset_key = jax.random.split(state.rng)

        def reset_and_select(s: State) -> State:
            fresh = self._reset_envs(reset_key)
            return jax.tree.map(lambda f, x: _select(done, f, x), fresh, s)

        any_done = jnp.any(done)
        if self.seed_axis is not None:
            # Under a vmap a per-seed predicate turns the cond into a select that resets on
            # every step (100x slower for Cheetah); one predicate for all seeds keeps the cond.
            any_done = jax.lax.psum(any_done.astype(jnp.int32), self.seed_axis) > 0
        env_state = jax.lax.cond(any_done, reset_and_select, lambda s: s, stepped)
        new_state = BatchEnvState(
            env_state=env_state,
            obs=env_state.obs,
            steps=jnp.where(done, 0, steps),
            episode_return=jnp.where(done, 0.0, episode_return),
            rng=rng,
        )
        vec_step = VecStep(
            obs=state.obs,
            action=action,
            reward=reward,
            next_obs=next_obs,
            terminated=terminated.astype(jnp.float32),
            truncated=truncated.astype(jnp.float32),
            done=done,
            episode_return=episode_return,
            success=success,
        )
        return new_state, vec_step
