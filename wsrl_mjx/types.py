"""State types shared by every phase: one pytree in, one pytree out of each compiled chunk."""

from __future__ import annotations

from typing import Any

import jax
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


@struct.dataclass
class OfflineTransition(Transition):
    mc_return: jax.Array  # Monte-Carlo return-to-go on transformed rewards (CalQL's bound)


@struct.dataclass
class TrainingState:
    """Everything a resumable online run needs; donated to each chunk."""

    agent: AgentState
    buffer: Any  # flashbax TrajectoryBufferState[Transition]
    env: Any  # envs.BatchEnvState
    rng: jax.Array
    env_steps: jax.Array  # int32 total env steps (all envs)
    updates: jax.Array  # int32 sampled-batch update rounds done
    acting: Any = None  # the action rule's own state, e.g. JSRL's guide horizon per env
