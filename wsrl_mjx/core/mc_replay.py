"""Online replay with Monte-Carlo returns-to-go: what keeps CalQL's bound alive online.

The official CalQL fine-tuning buffer computes each online episode's returns-to-go G when the
episode ends and samples only transitions of finished episodes, so the bound max(Q, G) of the
CalQL regulariser applies to online rows too. The fused loop adds one vector step of N envs at a
time, so this buffer keeps, per env, the buffer slots and rewards of its running episode; when an
env's episode ends its G is computed (same rule as `data.mc_returns`: no bootstrap at the end,
a sparse all-failure episode gets r_neg / (1 - gamma)) and written into those slots, which then
become sampleable.

It has the item buffer's interface (`init`, `add`, `sample(...).experience`) so the chunk builder
and the samplers use it unchanged; `sample` returns `OfflineTransition`s (with `mc_return`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from wsrl_mjx.config import Config, ConfigError
from wsrl_mjx.core.replay import make_replay
from wsrl_mjx.types import OfflineTransition, Transition


@struct.dataclass
class EpisodeTracker:
    """Each env's running episode: the buffer slots and rewards of its steps so far."""

    slot: jax.Array  # [N, T] int32
    reward: jax.Array  # [N, T] float32 (transformed rewards, as stored)
    length: jax.Array  # [N] int32


@struct.dataclass
class MCReplayState:
    items: Any  # flashbax item-buffer state of `Transition`s
    mc_return: jax.Array  # [capacity] G of each slot, valid where `finished`
    finished: jax.Array  # [capacity] bool: the slot's episode has ended (sampleable)
    tracker: EpisodeTracker

    @property
    def experience(self) -> Any:
        return self.items.experience


@struct.dataclass
class MCSample:
    experience: OfflineTransition


def discounted_returns(reward: jax.Array, discount: float) -> jax.Array:
    """G_t = sum_{k >= t} discount^(k - t) r_k along the last axis (zero past the end)."""

    def compose(later, earlier):  # x -> b + a x, applied earlier-after-later
        a_later, b_later = later
        a_earlier, b_earlier = earlier
        return a_later * a_earlier, b_earlier + a_earlier * b_later

    scale = jnp.full_like(reward, discount)
    return jax.lax.associative_scan(compose, (scale, reward), reverse=True, axis=reward.ndim - 1)[1]


@dataclass(frozen=True)
class MCReplay:
    """A frozen dataclass of pure functions over `MCReplayState` (flashbax style)."""

    capacity: int
    sample_batch_size: int
    num_envs: int
    max_episode_length: int
    discount: float
    sparse_negative_reward: float | None
    items: Any  # the flashbax item buffer holding the transitions themselves

    def init(self, example: Transition) -> MCReplayState:
        n, t = self.num_envs, self.max_episode_length
        return MCReplayState(
            items=self.items.init(example),
            mc_return=jnp.zeros((self.capacity,), jnp.float32),
            finished=jnp.zeros((self.capacity,), bool),
            tracker=EpisodeTracker(
                slot=jnp.zeros((n, t), jnp.int32),
                reward=jnp.zeros((n, t), jnp.float32),
                length=jnp.zeros((n,), jnp.int32),
            ),
        )

    def add(self, state: MCReplayState, batch: Transition) -> MCReplayState:
        """Add one vector step ([N, ...]); finish the episodes that ended with it."""
        slots = (state.items.current_index + jnp.arange(self.num_envs)) % self.capacity
        items = self.items.add(state.items, batch)
        finished = state.finished.at[slots].set(False)  # overwritten slots start unfinished
        tr = state.tracker
        envs = jnp.arange(self.num_envs)
        step = jnp.minimum(tr.length, self.max_episode_length - 1)
        tracker = EpisodeTracker(
            slot=tr.slot.at[envs, step].set(slots),
            reward=tr.reward.at[envs, step].set(batch.reward),
            length=step + 1,
        )
        done = jnp.maximum(batch.terminated, batch.truncated) > 0
        mc_return, finished = jax.lax.cond(
            done.any(),
            lambda: self._finish(tracker, done, state.mc_return, finished),
            lambda: (state.mc_return, finished),
        )
        tracker = tracker.replace(length=jnp.where(done, 0, tracker.length))
        return MCReplayState(items, mc_return, finished, tracker)

    def _finish(self, tracker: EpisodeTracker, done: jax.Array, mc_return, finished):
        valid = jnp.arange(self.max_episode_length)[None, :] < tracker.length[:, None]
        reward = jnp.where(valid, tracker.reward, 0.0)
        returns = discounted_returns(reward, self.discount)
        if self.sparse_negative_reward is not None:
            r_neg = jnp.float32(self.sparse_negative_reward)
            failed = jnp.all(jnp.where(valid, tracker.reward == r_neg, True), axis=1)
            returns = jnp.where(failed[:, None], r_neg / (1.0 - self.discount), returns)
        write = valid & done[:, None]
        slot = jnp.where(write, tracker.slot, self.capacity)  # out of range: dropped
        mc_return = mc_return.at[slot].set(returns, mode="drop")
        finished = finished.at[slot].set(True, mode="drop")
        return mc_return, finished

    def sample(self, state: MCReplayState, rng: jax.Array) -> MCSample:
        """Uniform over the transitions of finished episodes (never an unfinished one)."""
        weight = state.finished.astype(jnp.float32)
        index = jax.random.choice(
            rng, self.capacity, (self.sample_batch_size,), p=weight / jnp.maximum(weight.sum(), 1)
        )
        rows = jax.tree.map(lambda x: x[0, index], state.items.experience)
        return MCSample(OfflineTransition(**vars(rows), mc_return=state.mc_return[index]))


def make_mc_replay(
    capacity: int,
    sample_batch_size: int,
    num_envs: int,
    max_episode_length: int,
    discount: float,
    sparse_negative_reward: float | None = None,
) -> MCReplay:
    if capacity < num_envs * max_episode_length:
        raise ValueError(
            f"online.buffer_capacity={capacity} is smaller than one episode of every env "
            f"({num_envs} x {max_episode_length}): running episodes would be overwritten before "
            "their returns are known"
        )
    return MCReplay(
        capacity,
        sample_batch_size,
        num_envs,
        max_episode_length,
        discount,
        sparse_negative_reward,
        make_replay(capacity, sample_batch_size),  # the plain buffer's checks run here
    )


def online_replay_maker(cfg: Config, episode_length: int, mc_bound: bool):
    """sample size -> the online buffer: plain FIFO, or with MC returns for online CalQL."""
    capacity = cfg.online.buffer_capacity
    if not mc_bound:
        return lambda rows: make_replay(capacity, rows)
    if cfg.run.num_devices > 1:
        raise ConfigError(
            "finetune.online_mc_bound=true runs on one device; set run.num_devices=1 or "
            "finetune.online_mc_bound=false"
        )

    def make(rows: int):
        try:
            return make_mc_replay(
                capacity,
                rows,
                cfg.online.num_envs,
                episode_length,
                cfg.agent.discount,
                cfg.offline.sparse_negative_reward,
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None

    return make
