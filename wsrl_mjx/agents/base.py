"""What every agent is to the loops, evaluation and fine-tuning: the `Agent` protocol.

An agent is a frozen dataclass of pure functions over `AgentState` (brax/flashbax style), closed
over by jit and never traced as data. `ActorCritic` holds what every loss here shares: the
tanh-Gaussian actor, the critic ensemble, the temperature, their optimizers and `init`. A loss
subclasses it (SAC, and CQL/CalQL on top of SAC; IQL on its own) and keeps any state of its own
in `AgentState.extras` as a typed dataclass (`None` when it has none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import optax

from wsrl_mjx.agents.networks import Networks, critic_ensemble, sample_tanh_gaussian
from wsrl_mjx.config import AgentConfig
from wsrl_mjx.runtime.checkpoint import CheckpointError, check_tree_matches
from wsrl_mjx.types import AgentState, Learner, Params, Transition

Metrics = dict[str, jax.Array]


@runtime_checkable
class Agent(Protocol):
    """The interface the fused loop (`update`, `act`), evaluation (`act`), fine-tuning (`init`,
    the state layout) and the online diagnostics (`diagnostics`) depend on."""

    cfg: AgentConfig
    observation_size: int
    action_size: int

    def init(self, rng: jax.Array) -> AgentState: ...

    def act(
        self, actor_params: Params, obs: jax.Array, rng: jax.Array, deterministic: bool = False
    ) -> jax.Array: ...

    def update(
        self, state: AgentState, batch: Transition, rng: jax.Array
    ) -> tuple[AgentState, Metrics]: ...

    def diagnostics(self, state: AgentState, batch: Transition, rng: jax.Array) -> Metrics: ...

    def from_pretrained(self, pretrained: AgentState, fresh: AgentState, what: str) -> AgentState:
        """The hand-over: a pre-trained agent's state (any offline loss's) as this online loss
        starts from it; `fresh` is this loss's own init, `what` names the checkpoint."""
        ...


def polyak(target: Params, online: Params, tau: float) -> Params:
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def apply_gradients(
    learner: Learner, grads: Params, optimizer: optax.GradientTransformation
) -> Learner:
    updates, opt_state = optimizer.update(grads, learner.opt_state, learner.params)
    return Learner(optax.apply_updates(learner.params, updates), opt_state)


def temperature_param(value: float) -> jax.Array:
    """Inverse softplus, so that softplus(param) == value at init."""
    return jnp.asarray(math.log(math.expm1(value)), jnp.float32)


@dataclass(frozen=True)
class ActorCritic:
    """Shared by every loss: networks, optimizers, `init`, acting and Q evaluation."""

    cfg: AgentConfig
    networks: Networks
    observation_size: int
    action_size: int

    @property
    def target_entropy(self) -> float:
        te = self.cfg.target_entropy
        return -float(self.action_size) if te is None else te

    @property
    def actor_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.actor_lr)

    @property
    def critic_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.critic_lr)

    @property
    def temperature_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.temperature_lr)

    @property
    def target_critic_subset(self):
        """The ensemble module at the size of the sampled target pair (same params layout)."""
        return critic_ensemble(self.cfg, self.cfg.num_target_critics)

    # --- state ---------------------------------------------------------------------------------

    def init_extras(self, rng: jax.Array) -> Any:
        """The loss's own state (a typed dataclass), or None."""
        return None

    def init(self, rng: jax.Array) -> AgentState:
        actor_key, critic_key, extras_key = jax.random.split(rng, 3)
        obs = jnp.zeros((1, self.observation_size), jnp.float32)
        action = jnp.zeros((1, self.action_size), jnp.float32)
        actor_params = self.networks.actor.init(actor_key, obs)
        critic_params = self.networks.critic.init(critic_key, obs, action)
        temperature = temperature_param(self.cfg.init_temperature)
        return AgentState(
            actor=Learner(actor_params, self.actor_optimizer.init(actor_params)),
            critic=Learner(critic_params, self.critic_optimizer.init(critic_params)),
            # A copy, not the same buffers: donating a state that aliases them fails.
            target_critic_params=jax.tree.map(jnp.copy, critic_params),
            temperature=Learner(temperature, self.temperature_optimizer.init(temperature)),
            extras=self.init_extras(extras_key),
            step=jnp.zeros((), jnp.int32),
        )

    def from_pretrained(self, pretrained: AgentState, fresh: AgentState, what: str) -> AgentState:
        """The pre-trained agent in this loss's layout (`fresh` is this loss's init).

        Actor, critics, targets, temperature, step and every optimizer state carry over. The
        loss's own state carries over when it is of the same kind (CalQL -> CalQL keeps the
        Lagrange multiplier); a loss without one (SAC) leaves the offline loss's behind (the CQL
        multiplier, IQL's V). A loss that needs state the checkpoint does not hold is refused:
        nothing is made up in its place. A loss with another layout overrides this.
        """
        if fresh.extras is None:
            return pretrained.replace(extras=None)
        kind = type(fresh.extras).__name__
        if type(pretrained.extras) is not type(fresh.extras):
            held = type(pretrained.extras).__name__ if pretrained.extras is not None else "nothing"
            raise CheckpointError(
                f"{what}: the online loss needs its {kind} state but the checkpoint holds {held}; "
                "fine-tune with the offline settings it was pre-trained with (e.g. "
                "offline.cql_lagrange) or pre-train again"
            )
        check_tree_matches(pretrained.extras, fresh.extras, f"{what} ({kind})")
        return pretrained

    # --- acting and Q --------------------------------------------------------------------------

    def alpha(self, state: AgentState) -> jax.Array:
        return jax.nn.softplus(state.temperature.params)

    def sample_actions(
        self, actor_params: Params, obs: jax.Array, rng: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        mean, log_std = self.networks.actor.apply(actor_params, obs)
        return sample_tanh_gaussian(mean, log_std, rng)

    def act(
        self, actor_params: Params, obs: jax.Array, rng: jax.Array, deterministic: bool = False
    ) -> jax.Array:
        if deterministic:
            mean, _ = self.networks.actor.apply(actor_params, obs)
            return jnp.tanh(mean)
        return self.sample_actions(actor_params, obs, rng)[0]

    def q_values(self, critic_params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
        return self.networks.critic.apply(critic_params, obs, action)  # [E, ...]

    def diagnostics(self, state: AgentState, batch: Transition, rng: jax.Array) -> Metrics:
        """Q and TD error against the loss's own `td_target` (the downward-spiral probe)."""
        target = self.td_target(state, batch, rng)
        q = self.q_values(state.critic.params, batch.obs, batch.action)
        return {
            "offline_q": q.mean(),
            "offline_td": jnp.mean((q - target) ** 2),
            "offline_q_target": target.mean(),
        }
