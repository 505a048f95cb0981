"""An online run's schedule, from the config alone: how many env steps the frozen policy
collects before the first update, the whole chunks that follow, and the replay ratio."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wsrl_mjx.config import Config


@dataclass
class Schedule:
    """Vector-step bookkeeping: warmup is one chunk; online runs whole chunks of T steps."""

    num_envs: int
    warmup_vector_steps: int
    chunk_length: int
    online_chunks: int

    @classmethod
    def from_config(cls, cfg: Config, no_update_steps: int | None = None) -> Schedule:
        """`no_update_steps`: env steps before the first update (default: the warmup)."""
        n = cfg.online.num_envs
        no_update_steps = cfg.online.warmup_steps if no_update_steps is None else no_update_steps
        warmup = math.ceil(no_update_steps / n)
        online_steps = max(cfg.online.total_env_steps - warmup * n, 0)
        chunks = math.ceil(online_steps / (n * cfg.online.chunk_length))
        return cls(n, warmup, cfg.online.chunk_length, chunks)

    @property
    def warmup_env_steps(self) -> int:
        return self.warmup_vector_steps * self.num_envs

    @property
    def total_env_steps(self) -> int:
        return self.warmup_env_steps + self.online_chunks * self.chunk_length * self.num_envs


def steps_before_updates(cfg: Config, online_rows: int, episode_length: int, mc_bound: bool) -> int:
    """Env steps the frozen policy collects before the first update (`online.first_update`).

    Official: max(K, the online rows of one sampled batch); with CalQL's online bound also one
    full episode length per env, so that every env has finished an episode before sampling.
    """
    k = cfg.online.warmup_steps
    if cfg.online.first_update == "after_warmup":
        return k
    steps = max(k, online_rows)
    if mc_bound:
        steps = max(steps, cfg.online.num_envs * episode_length)
    return steps


def replay_ratio(cfg: Config) -> dict:
    """Gradient samples and critic updates per env step, with N envs per vector step."""
    a, o = cfg.agent, cfg.online
    samples = o.update_rounds * a.critic_minibatches * a.batch_size / o.num_envs
    return {"replay_ratio": samples, "utd": o.update_rounds * a.critic_minibatches / o.num_envs}
