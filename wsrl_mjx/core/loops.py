"""Compiled chunks: `lax.scan` over vector env steps (and update rounds) with the state donated.

One chunk maker serves both the warmup (no updates, frozen or random actor) and the online phase
(U update rounds after every vector step), so the two can never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from envs import BatchEnv
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.types import (
    TRANSITION_FIELDS,
    AgentState,
    OfflineTransition,
    Params,
    TrainingState,
    Transition,
)


@struct.dataclass
class Aux:
    """Read-only inputs of a chunk: retained offline data (RLPD, retention ablations) and what
    the action rule reads (JSRL: the guide's actor params); None where unused."""

    offline: OfflineTransition | None = None
    acting: Any = None


# The vmapped axis of several seeds in one program (`make_chunk`'s num_seeds > 1).
SEED_AXIS = "seed"

# (training state, aux, rng) -> (actions [N, A] in [-1, 1], new state.acting)
ActionFn = Callable[[TrainingState, Aux, jax.Array], tuple[jax.Array, Any]]
# (training state, aux, rng) -> one update round's batch
SampleFn = Callable[[TrainingState, Aux, jax.Array], Transition]


@dataclass(frozen=True)
class ActionRule:
    """How a method acts online: `act`, its read-only input (`Aux.acting`) and the initial
    value of its own loop state (`TrainingState.acting`)."""

    act: ActionFn
    aux: Any = None
    state: Any = None


def policy_actions(agent: Agent) -> ActionFn:
    """Stochastic samples of the agent's current actor (training and warmup)."""
    return lambda state, aux, rng: (
        agent.act(state.agent.actor.params, state.env.obs, rng),
        state.acting,
    )


def random_actions(action_size: int) -> ActionFn:
    """Uniform actions: the random-action warmup ablation."""
    return lambda state, aux, rng: (
        jax.random.uniform(rng, (state.env.obs.shape[0], action_size), minval=-1.0, maxval=1.0),
        state.acting,
    )


def guided_actions(agent: Agent, max_guide_steps: int) -> ActionFn:
    """JSRL: the frozen guide (actor params in `aux.acting`) acts for the first h steps of each
    episode, h ~ U{0..max_guide_steps} drawn at the episode's start (kept per env in
    `state.acting`); then the learner acts."""

    def act(state: TrainingState, aux: Aux, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        act_key, horizon_key = jax.random.split(rng)
        obs, steps = state.env.obs, state.env.steps
        fresh = jax.random.randint(horizon_key, steps.shape, 0, max_guide_steps + 1)
        horizon = jnp.where(steps == 0, fresh, state.acting)
        learner = agent.act(state.agent.actor.params, obs, act_key)
        guide: Params = aux.acting
        action = jnp.where((steps < horizon)[:, None], agent.act(guide, obs, act_key), learner)
        return action, horizon

    return act


def replay_sampler(buffer) -> SampleFn:
    """Uniform over everything stored online (WSRL: no offline data ever)."""
    return lambda state, aux, rng: buffer.sample(state.buffer, rng).experience


def mixed_sampler(
    online_buffer, num_minibatches: int, batch_size: int, offline_per_minibatch: int
) -> SampleFn:
    """Retention / RLPD: every critic minibatch holds `offline_per_minibatch` rows drawn from
    `aux.offline` and the rest from the online buffer (`online_buffer` samples exactly
    num_minibatches * (batch_size - offline_per_minibatch) items)."""
    online_rows = batch_size - offline_per_minibatch

    def sample(state: TrainingState, aux: Aux, rng: jax.Array) -> OfflineTransition:
        online_key, offline_key = jax.random.split(rng)
        online = online_buffer.sample(state.buffer, online_key).experience
        offline = aux.offline
        size = offline.reward.shape[0]
        index = jax.random.randint(offline_key, (num_minibatches, offline_per_minibatch), 0, size)
        shape = lambda x: x.reshape((num_minibatches, online_rows, *x.shape[1:]))  # noqa: E731
        # Online rows carry their MC return only from the MC buffer (online CalQL); otherwise
        # -inf, i.e. no CalQL bound there.
        mc = getattr(online, "mc_return", None)
        online = OfflineTransition(
            **{f: shape(getattr(online, f)) for f in TRANSITION_FIELDS},
            mc_return=jnp.full((num_minibatches, online_rows), -jnp.inf)
            if mc is None
            else shape(mc),
        )
        offline = OfflineTransition(
            **{f: getattr(offline, f)[index] for f in (*TRANSITION_FIELDS, "mc_return")}
        )
        mixed = jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=1), online, offline)
        return jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), mixed)

    return sample


def make_chunk(
    batch_env: BatchEnv,
    agent: Agent,
    buffer,
    *,
    length: int,
    update_rounds: int,
    action_fn: ActionFn,
    sample_fn: SampleFn | None = None,
    reward_scale: float = 1.0,
    reward_bias: float = 0.0,
    sharding: Any = None,
    num_seeds: int = 1,
    aux_axes: Aux | None = None,
) -> Callable[[TrainingState, Any], tuple[TrainingState, dict]]:
    """Jitted `chunk(state, aux) -> (state, metrics)`: `length` iterations of
    {one vector step of N envs -> buffer add -> `update_rounds` sampled-batch updates}.

    `state` is donated; `aux` (an `Aux`, or None) is read-only. Metrics come back per iteration
    ([length] arrays) so the host can log means and a dense Q trace; nothing leaves the device
    inside the chunk.

    `num_seeds` > 1: the state has a leading seed axis and the chunk is vmapped over it (one
    program for all seeds); `aux_axes` says which parts of `aux` are per seed (axis 0) and
    which are shared (None).

    `sharding` (None on one device): with one seed a `wsrl_mjx.runtime.sharding.DataSharding`, which
    pins the state's layout on a device mesh after every iteration and splits every sampled
    batch over the mesh; with several a `SeedSharding`, which keeps each seed's slice of the
    state and metrics on its own device.
    """
    seed_sharding, sharding = (sharding, None) if num_seeds > 1 else (None, sharding)
    num_envs = batch_env.num_envs
    sample_fn = sample_fn or replay_sampler(buffer)

    def env_step(state: TrainingState, aux: Aux, rng: jax.Array) -> tuple[TrainingState, dict]:
        action, acting = action_fn(state, aux, rng)
        env_state, step = batch_env.step(state.env, action)
        transition = Transition(
            obs=step.obs,
            action=step.action,
            reward=step.reward * reward_scale + reward_bias,  # the one place it is applied
            next_obs=step.next_obs,
            terminated=step.terminated,
            truncated=step.truncated,
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
            acting=acting,
        )
        return state, episode

    def update_round(state: TrainingState, aux: Aux, rng: jax.Array):
        sample_key, update_key = jax.random.split(rng)
        batch = sample_fn(state, aux, sample_key)
        if sharding is not None:
            batch = sharding.constrain_batch(batch)
        agent_state, metrics = agent.update(state.agent, batch, update_key)
        return state.replace(agent=agent_state, updates=state.updates + 1), metrics

    def chunk(state: TrainingState, aux: Aux | None = None) -> tuple[TrainingState, dict]:
        def iteration(state: TrainingState, _) -> tuple[TrainingState, dict]:
            rng, act_key, update_key = jax.random.split(state.rng, 3)
            state, metrics = env_step(state.replace(rng=rng), aux, act_key)
            if update_rounds:
                keys = jax.random.split(update_key, update_rounds)
                state, update_metrics = jax.lax.scan(
                    lambda s, k: update_round(s, aux, k), state, keys
                )
                metrics.update(jax.tree.map(jnp.mean, update_metrics))
            if sharding is not None:
                state = sharding.constrain_state(state)
            return state, metrics

        state, metrics = jax.lax.scan(iteration, state, None, length=length)
        if sharding is not None:
            state, metrics = sharding.constrain_state(state), sharding.constrain_replicated(metrics)
        return state, metrics

    if num_seeds > 1:
        if batch_env.seed_axis is None:
            raise ValueError("several seeds step a BatchEnv made with a seed_axis (SEED_AXIS)")
        aux_axes = aux_axes if aux_axes is not None else Aux()
        chunk = jax.vmap(chunk, in_axes=(0, aux_axes), axis_name=batch_env.seed_axis)
        if seed_sharding is not None:
            chunk = seed_sharding.per_device(chunk, aux_axes)
    # Several seeds over devices: outputs (state, metrics) keep each seed on its device, so
    # every call sees the layout it was compiled for (zero-size leaves included).
    out_shardings = seed_sharding.split if seed_sharding is not None else None
    return jax.jit(chunk, donate_argnums=0, out_shardings=out_shardings)


def strong_copy(tree: Any) -> Any:
    """Copy every leaf into its own buffer (so the tree can be donated), strongly typed and
    committed to the default device: what a jitted function returns. Initial states hold weakly
    typed leaves (flashbax's `current_index`, MJX's `data.time`) and uncommitted ones, and
    either makes the second call of a jitted chunk compile again (a whole extra compile)."""
    device = jax.local_devices()[0]  # devices()[0] is process 0's with several processes
    return jax.tree.map(
        lambda x: jax.device_put(jnp.array(x, dtype=x.dtype, copy=True), device), tree
    )


def pad_rows(dataset: Transition, rows: int) -> Transition:
    """`dataset` with zero rows appended up to `rows` (seeds' splits stacked in one program)."""
    return jax.tree.map(
        lambda x: jnp.pad(x, [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1)), dataset
    )


def stack_seeds(trees: list) -> Any:
    """Seeds' trees as one tree with a leading seed axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def seed_slice(tree: Any, k: int, seeded: bool) -> Any:
    """Seed k's slice of a tree with a leading seed axis (the tree itself for one seed)."""
    return jax.tree.map(lambda x: x[k], tree) if seeded else tree


def summarize_chunk(metrics: dict, has_success: bool = True) -> dict:
    """Host-side: per-iteration arrays -> scalars (episode means over completed episodes);
    `train_success` only for tasks with a success signal."""
    episodes = float(metrics["episodes"].sum())
    out = {k: float(v.mean()) for k, v in metrics.items() if not k.endswith("_sum")}
    out["episodes"] = episodes
    if episodes:
        out["train_return"] = float(metrics["episode_return_sum"].sum()) / episodes
        if has_success:
            out["train_success"] = float(metrics["success_sum"].sum()) / episodes
    return out


def make_offline_chunk(
    agent: Agent, *, length: int, batch_size: int, seeded: bool = False
) -> Callable[[AgentState, jax.Array, Transition, jax.Array], tuple[AgentState, jax.Array, dict]]:
    """Jitted `chunk(agent_state, rng, dataset, size) -> (agent_state, rng, metrics)`: `length`
    gradient steps on minibatches sampled uniformly on device from the first `size` rows of the
    dataset held in device memory. `seeded`: every argument and result has a leading seed axis
    (one program for all seeds; each seed's split is padded to the longest, `size` says where
    its own rows end, so a seed samples what it would alone).

    The dataset is an argument, not a closed-over constant, so it is never baked into the program.
    """

    def chunk(agent_state: AgentState, rng: jax.Array, dataset: Transition, size: jax.Array):
        def step(carry, _):
            agent_state, rng = carry
            rng, sample_key, update_key = jax.random.split(rng, 3)
            index = jax.random.randint(sample_key, (batch_size,), 0, size)
            batch = jax.tree.map(lambda x: x[index], dataset)
            agent_state, metrics = agent.update(agent_state, batch, update_key)
            return (agent_state, rng), metrics

        (agent_state, rng), metrics = jax.lax.scan(step, (agent_state, rng), None, length=length)
        return agent_state, rng, metrics

    return jax.jit(jax.vmap(chunk) if seeded else chunk, donate_argnums=0)
