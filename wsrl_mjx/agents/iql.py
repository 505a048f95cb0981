"""IQL baseline (docs/algorithm.md): expectile V, critics towards r + gamma V(s'), AWR actor.

It shares SAC's actor and critic layout (`ActorCritic`, so its actor and critics map onto the
online agent) but none of SAC's losses; V lives in `IQLExtras`. The temperature is carried but
unused. Its TD target (for the online diagnostics too) is r + gamma V(s').
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from flax import struct

from wsrl_mjx.agents.base import ActorCritic, Metrics, apply_gradients, polyak
from wsrl_mjx.agents.networks import ValueNet, make_networks, tanh_gaussian_log_prob
from wsrl_mjx.config import AgentConfig, OfflineConfig
from wsrl_mjx.types import AgentState, Learner, Transition


@struct.dataclass
class IQLExtras:
    """The state-value network V(s) and its optimizer state."""

    value: Learner


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff**2


@dataclass(frozen=True)
class IQLAgent(ActorCritic):
    offline: OfflineConfig = OfflineConfig()

    @property
    def value_net(self) -> ValueNet:
        c = self.cfg
        return ValueNet(
            c.critic_hidden, c.critic_layer_norm, c.hidden_init_scale, c.last_hidden_init_scale
        )

    @property
    def actor_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.offline.iql_lr)

    @property
    def critic_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.offline.iql_lr)

    def init_extras(self, rng: jax.Array) -> IQLExtras:
        params = self.value_net.init(rng, jnp.zeros((1, self.observation_size), jnp.float32))
        return IQLExtras(Learner(params, optax.adam(self.offline.iql_lr).init(params)))

    def value(self, state: AgentState, obs: jax.Array) -> jax.Array:
        return self.value_net.apply(state.extras.value.params, obs)

    def td_target(self, state: AgentState, batch: Transition, rng: jax.Array) -> jax.Array:
        """y = r + gamma * (1 - terminated) * V(s')."""
        next_v = self.value(state, batch.next_obs)
        return batch.reward + self.cfg.discount * (1.0 - batch.terminated) * next_v

    def update(
        self, state: AgentState, batch: Transition, rng: jax.Array
    ) -> tuple[AgentState, Metrics]:
        o = self.offline
        target_q = self.q_values(state.target_critic_params, batch.obs, batch.action).min(0)

        def value_loss(params):
            v = self.value_net.apply(params, batch.obs)
            return expectile_loss(target_q - v, o.iql_expectile).mean(), v

        old_value = state.extras.value
        (v_loss, _), v_grads = jax.value_and_grad(value_loss, has_aux=True)(old_value.params)
        value = apply_gradients(old_value, v_grads, optax.adam(o.iql_lr))
        # offline.iql_update: "pre_update" (official) computes the AWR weights and the critic
        # target with V from before this step; "sequential" (Kostrikov et al.) with V just updated.
        read_value = old_value if o.iql_update == "pre_update" else value
        v = self.value_net.apply(read_value.params, batch.obs)
        weights = jnp.minimum(jnp.exp(o.iql_temperature * (target_q - v)), o.iql_max_weight)
        target = self.td_target(state.replace(extras=IQLExtras(read_value)), batch, rng)
        state = state.replace(extras=IQLExtras(value))

        def actor_loss(params):
            mean, log_std = self.networks.actor.apply(params, batch.obs)
            log_prob = tanh_gaussian_log_prob(mean, log_std, batch.action)
            return -(jax.lax.stop_gradient(weights) * log_prob).mean()

        a_loss, a_grads = jax.value_and_grad(actor_loss)(state.actor.params)
        actor = apply_gradients(state.actor, a_grads, self.actor_optimizer)

        def critic_loss(params):
            q = self.q_values(params, batch.obs, batch.action)
            return jnp.mean((q - target) ** 2), q

        (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic.params)
        critic = apply_gradients(state.critic, c_grads, self.critic_optimizer)
        state = state.replace(
            actor=actor,
            critic=critic,
            target_critic_params=polyak(state.target_critic_params, critic.params, self.cfg.tau),
            step=state.step + 1,
        )
        metrics = {
            "critic_loss": c_loss,
            "td_loss": c_loss,
            "q_pred": q.mean(),
            "q_target": target.mean(),
            "value_loss": v_loss,
            "actor_loss": a_loss,
            "adv_weight": weights.mean(),
        }
        return state, metrics


def make_iql(
    agent_cfg: AgentConfig, offline: OfflineConfig, observation_size: int, action_size: int
) -> IQLAgent:
    # The paper's IQL keeps 2 critics (plus the value net) whatever the SAC ensemble size.
    cfg = dataclasses.replace(agent_cfg, critic_minibatches=1, num_critics=2)
    return IQLAgent(cfg, make_networks(cfg, action_size), observation_size, action_size, offline)
