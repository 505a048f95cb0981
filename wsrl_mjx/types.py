"""State types shared by every phase: one pytree in, one pytree out of each compiled chunk."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

Params = Any


@struct.dataclass
class Learner:
    """Parameters and their optimizer state (the optimizer itself is static config)."""

    params: Params
    opt_state: optax.OptState


@struct.dataclass
class AgentState:
    """The whole agent. CQL/CalQL train exactly this, so it restores straight into online SAC.

    `extras` is the loss's own state, a typed dataclass defined beside it (`CQLExtras`: the
    Lagrange multiplier; `IQLExtras`: the V network), or None (SAC).
    """

    actor: Learner
    critic: Learner
    target_critic_params: Params
    temperature: Learner
    extras: Any
    step: jax.Array  # gradient steps taken (int32)


@struct.dataclass
class Transition:
    """One replay item; `reward` is already transformed (scale, bias)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array  # 1.0 = true termination: no bootstrap. Truncation bootstraps.
    truncated: jax.Array  # 1.0 = time limit (kept for datasets' `timeouts`; TD ignores it)


TRANSITION_FIELDS = tuple(f.name for f in dataclasses.fields(Transition))


@struct.dataclass
class OfflineTransition(Transition):
    mc_return: jax.Array  # Monte-Carlo return-to-go on transformed rewards (CalQL's bound)
    # The dataset's action at s' (the trajectory's next row; its own action on a trajectory's
    # last row), for losses that penalise the policy against it (ReBRAC's critic term). None
    # where rows do not come from a dataset (online rows).
    next_action: jax.Array | None = None


@struct.dataclass
class Counter:
    """A non-negative count that does not overflow at 2^31: two int32 leaves, hi * 2^30 + lo.

    JAX has no int64 without `jax_enable_x64`, and one int32 of env steps wraps after 2^31
    (about 86 s at 25M env steps/s). `counter + n` (n < 2^30, a Python int or int32 array)
    carries into `hi` inside jitted code; `int(counter)` reads the exact total on the host
    (up to 2^61).
    """

    hi: jax.Array
    lo: jax.Array

    BASE = 2**30  # lo stays below it, so lo + n < 2^31 never wraps

    @classmethod
    def create(cls, value: int = 0) -> Counter:
        if not 0 <= value < 2**61:
            raise ValueError(f"Counter value {value} is outside [0, 2^61)")
        hi, lo = divmod(int(value), cls.BASE)
        return cls(hi=jnp.asarray(hi, jnp.int32), lo=jnp.asarray(lo, jnp.int32))

    def __add__(self, n: int | jax.Array) -> Counter:
        if isinstance(n, int) and not 0 <= n < self.BASE:
            raise ValueError(f"Counter increment {n} is outside [0, 2^30)")
        lo = self.lo + jnp.asarray(n, jnp.int32)
        return Counter(hi=self.hi + lo // self.BASE, lo=lo % self.BASE)

    def __int__(self) -> int:
        hi, lo = jax.device_get((self.hi, self.lo))
        return int(np.asarray(hi)) * self.BASE + int(np.asarray(lo))


@struct.dataclass
class TrainingState:
    """Everything a resumable online run needs; donated to each chunk."""

    agent: AgentState
    buffer: Any  # flashbax TrajectoryBufferState[Transition]
    env: Any  # envs.BatchEnvState
    rng: jax.Array
    env_steps: Counter  # total env steps (all envs)
    updates: Counter  # sampled-batch update rounds done
    acting: Any = None  # the action rule's own state, e.g. JSRL's guide horizon per env
