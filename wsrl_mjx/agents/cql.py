"""CQL(H) and CalQL as SAC plus a conservative critic term (docs/algorithm.md, "The losses").

They train exactly SAC's `AgentState` (same networks, same optimizers), so the offline agent
restores straight into the online SAC agent; only the CQL term, the MC bound and the Lagrange
multiplier (`CQLExtras`, present only with `offline.cql_lagrange`) are dropped at the switch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from flax import struct

from wsrl_mjx.agents.base import Metrics, apply_gradients, temperature_param
from wsrl_mjx.agents.networks import make_networks
from wsrl_mjx.agents.sac import SACAgent
from wsrl_mjx.config import AgentConfig, OfflineConfig
from wsrl_mjx.types import AgentState, Learner, OfflineTransition, Params


@struct.dataclass
class CQLExtras:
    """The learned CQL weight: softplus(lagrange.params) (`offline.cql_lagrange`)."""

    lagrange: Learner


@dataclass(frozen=True)
class CQLAgent(SACAgent):
    offline: OfflineConfig = OfflineConfig()

    @property
    def calql(self) -> bool:
        return self.offline.algorithm == "calql"

    @property
    def lagrange_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.offline.lagrange_lr)

    def init_extras(self, rng: jax.Array) -> CQLExtras | None:
        if not self.offline.cql_lagrange:
            return None
        param = temperature_param(self.offline.lagrange_init)
        return CQLExtras(Learner(param, self.lagrange_optimizer.init(param)))

    def cql_weight(self, state: AgentState) -> jax.Array:
        if self.offline.cql_lagrange:
            return jax.lax.stop_gradient(jax.nn.softplus(state.extras.lagrange.params))
        return jnp.asarray(self.offline.cql_weight, jnp.float32)

    def cql_diff(
        self, critic_params: Params, state: AgentState, batch: OfflineTransition, rng: jax.Array
    ) -> tuple[jax.Array, Metrics]:
        """Importance-sampled logsumexp over uniform, pi(s) and pi(s') actions minus Q(s, a_data),
        on 2 subsampled ensemble members; CalQL bounds the policy samples below by G(s, a)."""
        k, (b, a) = self.offline.cql_num_actions, batch.action.shape
        uniform_key, pi_key, next_key, index_key = jax.random.split(rng, 4)
        uniform = jax.random.uniform(uniform_key, (k, b, a), minval=-1.0, maxval=1.0)
        obs_k = jnp.broadcast_to(batch.obs, (k, *batch.obs.shape))
        next_obs_k = jnp.broadcast_to(batch.next_obs, (k, *batch.next_obs.shape))
        pi_action, pi_log_prob = self.sample_actions(state.actor.params, obs_k, pi_key)
        next_action, next_log_prob = self.sample_actions(state.actor.params, next_obs_k, next_key)

        pair = self.networks.critic_subset(critic_params, self.draw_members(index_key))
        q = lambda act: self.target_critic_subset.apply(pair, obs_k, act)  # noqa: E731  [2, k, B]
        q_uniform, q_pi, q_next = q(uniform), q(pi_action), q(next_action)
        bound = getattr(batch, "mc_return", None)  # absent on purely online batches
        if self.calql and bound is not None:
            bound = bound[None, None, :]
            bound_rate = jnp.mean(jnp.concatenate([q_pi, q_next], 1) < bound)
            q_pi, q_next = jnp.maximum(q_pi, bound), jnp.maximum(q_next, bound)
        log_uniform = a * math.log(0.5)
        temp = self.offline.cql_temperature
        stacked = jnp.concatenate(
            [q_uniform - log_uniform, q_pi - pi_log_prob, q_next - next_log_prob], axis=1
        )  # [2, 3k, B]
        logsumexp = jax.nn.logsumexp(stacked / temp, axis=1) * temp  # [2, B]
        q_data = self.target_critic_subset.apply(pair, batch.obs, batch.action)  # [2, B]
        diff = jnp.mean(logsumexp - q_data)
        metrics = {"cql_diff": diff, "cql_ood_q": jnp.mean(q_pi)}
        if self.calql and bound is not None:
            metrics["calql_bound_rate"] = bound_rate
        return diff, metrics

    def critic_loss(self, critic_params, state, batch, target, rng):
        td_loss, metrics = super().critic_loss(critic_params, state, batch, target, rng)
        diff, cql_metrics = self.cql_diff(critic_params, state, batch, rng)
        gap = self.offline.cql_target_gap if self.offline.cql_lagrange else 0.0
        weight = self.cql_weight(state)
        loss = td_loss + weight * (diff - gap)
        return loss, {**metrics, **cql_metrics, "critic_loss": loss, "cql_weight": weight}

    def update(self, state, batch, rng):
        state, metrics = super().update(state, batch, rng)
        if self.offline.cql_lagrange:
            # Maximise lambda * (cql_diff - gap): lambda grows while Q is not conservative enough.
            gap = metrics["cql_diff"] - self.offline.cql_target_gap
            loss = lambda p: -jax.nn.softplus(p) * gap  # noqa: E731
            lagrange = state.extras.lagrange
            grads = jax.grad(loss)(lagrange.params)
            lagrange = apply_gradients(lagrange, grads, self.lagrange_optimizer)
            state = state.replace(extras=CQLExtras(lagrange))
        return state, metrics


def offline_agent_config(agent: AgentConfig, offline: OfflineConfig) -> AgentConfig:
    """Offline: one gradient step per batch of `batch_size`, backup as configured."""
    return dataclasses.replace(
        agent, critic_minibatches=1, max_target_backup=offline.max_target_backup
    )


def make_cql(
    agent_cfg: AgentConfig, offline: OfflineConfig, observation_size: int, action_size: int
) -> CQLAgent:
    cfg = offline_agent_config(agent_cfg, offline)
    return CQLAgent(cfg, make_networks(cfg, action_size), observation_size, action_size, offline)
