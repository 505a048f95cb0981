"""Jitted, vectorised deterministic evaluation: M parallel episodes of tanh(mean) actions."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from envs import Env
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.types import Params


def make_evaluator(
    env: Env,
    agent: Agent,
    num_episodes: int,
    episode_length: int | None = None,
    *,
    per_episode: bool = False,
) -> Callable[[Params, jax.Array], dict[str, jax.Array]]:
    """`evaluate(actor_params, rng) -> {return, success, length, final_<metric>...}` (means over
    episodes, or with `per_episode` one value per episode; `success` only for tasks that report
    one, `forward_speed` (the mean x velocity over the episode) for those that report
    `x_velocity`, the locomotion twins).

    Each env runs until its first termination or the time limit; rewards after termination are
    masked, so no auto-reset is needed. The rollout is one while loop that stops at the time
    limit or as soon as every episode has ended (Hopper's falls end most episodes early).
    `final_<metric>` is each of the task's own `state.metrics` (besides `success`) at the
    episode's last step, e.g. `final_dist_to_goal` in the mazes or `final_targets_reached`
    in antgoal.
    """
    horizon = episode_length or env.episode_length

    def evaluate(actor_params: Params, rng: jax.Array) -> dict[str, jax.Array]:
        state = jax.vmap(env.reset)(jax.random.split(rng, num_episodes))
        last = {k: v for k, v in state.metrics.items() if k != "success"}
        moves = "x_velocity" in state.metrics

        def step(carry):
            t, state, alive, ret, success, length, last, distance = carry
            action = agent.act(actor_params, state.obs, rng, deterministic=True)
            state = jax.vmap(env.step)(state, action)
            ret = ret + alive * state.reward
            success = jnp.maximum(success, alive * state.metrics.get("success", 0.0 * ret))
            last = {k: jnp.where(alive > 0, state.metrics[k], v) for k, v in last.items()}
            length = length + alive
            if moves:
                distance = distance + alive * state.metrics["x_velocity"].astype(jnp.float32)
            alive = alive * (1.0 - state.done.astype(jnp.float32))
            return t + 1, state, alive, ret, success, length, last, distance

        def running(carry):
            t, alive = carry[0], carry[2]
            return (t < horizon) & jnp.any(alive > 0)

        zeros = jnp.zeros((num_episodes,), jnp.float32)
        init = (jnp.int32(0), state, jnp.ones_like(zeros), zeros, zeros, zeros, last, zeros)
        _, _, _, ret, success, length, last, distance = jax.lax.while_loop(running, step, init)
        out = {"return": ret, "length": length}
        out.update({f"final_{k}": v.astype(jnp.float32) for k, v in last.items()})
        if moves:
            out["forward_speed"] = distance / jnp.maximum(length, 1.0)
        if "success" in state.metrics:  # no success rate for tasks without success (not 0)
            out["success"] = success
        return out if per_episode else {k: jnp.mean(v) for k, v in out.items()}

    return jax.jit(evaluate)
