"""Compiled chunks: `lax.scan` over vector env steps (and update rounds) with the state donated.

One chunk maker serves both the warmup (no updates, frozen or random actor) and the online phase
(U update rounds after every vector step), so the two can never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from envs import BatchEnv
from wsrl_mjx.agents.sac import SACAgent
from wsrl_mjx.types import AgentState, TrainingState, Transition

# (agent state, observations [N, O], rng) -> actions [N, A] in [-1, 1]
ActionFn = Callable[[AgentState, jax.Array, jax.Array], jax.Array]


def policy_actions(agent: SACAgent) -> ActionFn:
    """Stochastic samples of the agent's current actor (training and warmup)."""
    return lambda state, obs, rng: agent.act(state.actor.params, obs, rng)


def random_actions(action_size: int) -> ActionFn:
    """Uniform actions: the random-action warmup ablation."""
    return lambda state, obs, rng: jax.random.uniform(
        rng, (obs.shape[0], action_size), minval=-1.0, maxval=1.0
    )


def make_chunk(
    batch_env: BatchEnv,
    agent: SACAgent,
    buffer,
    *,
    length: int,
    update_rounds: int,
    action_fn: ActionFn,
    reward_scale: float = 1.0,
    reward_bias: float = 0.0,
) -> Callable[[TrainingState], tuple[TrainingState, dict]]:
    """Jitted `chunk(state) -> (state, metrics)`: `length` iterations of
    {one vector step of N envs -> buffer add -> `update_rounds` sampled-batch updates}.

    Metrics come back per iteration ([length] arrays) so the host can log means and a dense
    Q trace; nothing leaves the device inside the chunk.
    """
    num_envs = batch_env.num_envs

    def env_step(state: TrainingState, rng: jax.Array) -> tuple[TrainingState, dict]:
        action = action_fn(state.agent, state.env.obs, rng)
        env_state, step = batch_env.step(state.env, action)
        transition = Transition(
            obs=step.obs,
            action=step.action,
            reward=step.reward * reward_scale + reward_bias,  # the one place it is applied
            next_obs=step.next_obs,
            terminated=step.terminated,
        )
        done = step.done.astype(jnp.float32)
        episode = {
            "episodes": done.sum(),
            "episode_return_sum": (step.episode_return * done).sum(),
            "success_sum": (step.success * done).sum(),
        }
        state = state.replace(
            env=env_state,
            buffer=buffer.add(state.buffer, transition),
            env_steps=state.env_steps + num_envs,
        )
        return state, episode

    def update_round(state: TrainingState, rng: jax.Array) -> tuple[TrainingState, dict]:
        sample_key, update_key = jax.random.split(rng)
        batch = buffer.sample(state.buffer, sample_key).experience
        agent_state, metrics = agent.update(state.agent, batch, update_key)
        return state.replace(agent=agent_state, updates=state.updates + 1), metrics

    def iteration(state: TrainingState, _) -> tuple[TrainingState, dict]:
        rng, act_key, update_key = jax.random.split(state.rng, 3)
        state, metrics = env_step(state.replace(rng=rng), act_key)
        if update_rounds:
            keys = jax.random.split(update_key, update_rounds)
            state, update_metrics = jax.lax.scan(update_round, state, keys)
            metrics.update(jax.tree.map(jnp.mean, update_metrics))
        return state, metrics

    def chunk(state: TrainingState) -> tuple[TrainingState, dict]:
        return jax.lax.scan(iteration, state, None, length=length)

    return jax.jit(chunk, donate_argnums=0)


def summarize_chunk(metrics: dict) -> dict:
    """Host-side: per-iteration arrays -> scalars (episode means over completed episodes)."""
    episodes = float(metrics["episodes"].sum())
    out = {k: float(v.mean()) for k, v in metrics.items() if not k.endswith("_sum")}
    out["episodes"] = episodes
    if episodes:
        out["train_return"] = float(metrics["episode_return_sum"].sum()) / episodes
        out["train_success"] = float(metrics["success_sum"].sum()) / episodes
    return out



def make_offline_chunk(
    agent: SACAgent, *, length: int, batch_size: int
) -> Callable[[AgentState, jax.Array, Transition], tuple[AgentState, jax.Array, dict]]:
    """Jitted `chunk(agent_state, rng, dataset) -> (agent_state, rng, metrics)`: `length` gradient
    steps on minibatches sampled uniformly on device from the dataset held in device memory.

    The dataset is an argument, not a closed-over constant, so it is never baked into the program.
    """

    def chunk(agent_state: AgentState, rng: jax.Array, dataset: Transition):
        size = dataset.reward.shape[0]

        def step(carry, _):
            agent_state, rng = carry
            rng, sample_key, update_key = jax.random.split(rng, 3)
            index = jax.random.randint(sample_key, (batch_size,), 0, size)
            batch = jax.tree.map(lambda x: x[index], dataset)
            agent_state, metrics = agent.update(agent_state, batch, update_key)
            return (agent_state, rng), metrics

        (agent_state, rng), metrics = jax.lax.scan(step, (agent_state, rng), None, length=length)
        return agent_state, rng, metrics

    return jax.jit(chunk, donate_argnums=0)
