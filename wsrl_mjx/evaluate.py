"""Jitted, vectorised deterministic evaluation: M parallel episodes of tanh(mean) actions."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from envs import Env
from wsrl_mjx.agents.sac import SACAgent
from wsrl_mjx.types import Params


def make_evaluator(
    env: Env, agent: SACAgent, num_episodes: int, episode_length: int | None = None
) -> Callable[[Params, jax.Array], dict[str, jax.Array]]:
    """`evaluate(actor_params, rng) -> {return, success, length}` (means over episodes).

    Each env runs until its first termination or the time limit; rewards after termination are
    masked, so no auto-reset is needed and the whole rollout is one scan.
    """
    horizon = episode_length or env.episode_length

    def evaluate(actor_params: Params, rng: jax.Array) -> dict[str, jax.Array]:
        state = jax.vmap(env.reset)(jax.random.split(rng, num_episodes))

        def step(carry, _):
            state, alive, ret, success, length = carry
            action = agent.act(actor_params, state.obs, rng, deterministic=True)
            state = jax.vmap(env.step)(state, action)
            ret = ret + alive * state.reward
            success = jnp.maximum(success, alive * state.metrics.get("success", 0.0 * ret))
            length = length + alive
            alive = alive * (1.0 - state.done.astype(jnp.float32))
            return (state, alive, ret, success, length), None

        zeros = jnp.zeros((num_episodes,), jnp.float32)
        init = (state, jnp.ones_like(zeros), zeros, zeros, zeros)
        (_, _, ret, success, length), _ = jax.lax.scan(step, init, None, length=horizon)
        return {"return": ret.mean(), "success": success.mean(), "length": length.mean()}

    return jax.jit(evaluate)
