"""High-UTD SAC as docs/algorithm.md describes it: the WSRL fine-tuner and the base of CQL/CalQL.

SAC adds its losses and the M-minibatch update to `ActorCritic` (`wsrl_mjx.agents.base`). CQL/CalQL
subclass it and override `critic_loss` (and `update` for the Lagrange multiplier).
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import jax
import jax.numpy as jnp
import optax

from wsrl_mjx.agents.base import (
    ActorCritic,
    Metrics,
    apply_gradients,
    polyak,
    temperature_param,
)
from wsrl_mjx.agents.networks import make_networks
from wsrl_mjx.config import AgentConfig
from wsrl_mjx.types import AgentState, Learner, Params, Transition

__all__ = ["Metrics", "SACAgent", "apply_gradients", "make_sac", "polyak", "temperature_param"]


def split_minibatches(batch: Transition, num: int) -> Transition:
    """[num * B, ...] -> [num, B, ...] for a scan over critic minibatches."""
    return jax.tree.map(lambda x: x.reshape((num, x.shape[0] // num, *x.shape[1:])), batch)


@dataclass(frozen=True)
class SACAgent(ActorCritic):
    # --- losses --------------------------------------------------------------------------------

    def td_target(self, state: AgentState, batch: Transition, rng: jax.Array) -> jax.Array:
        """y = r + gamma * (1 - terminated) * min over num_target_critics target members."""
        action_key, index_key = jax.random.split(rng)
        n = self.cfg.num_backup_actions if self.cfg.max_target_backup else 1
        next_obs = jnp.broadcast_to(batch.next_obs, (n, *batch.next_obs.shape))
        next_action, next_log_prob = self.sample_actions(
            state.actor.params, next_obs, action_key
        )  # [n, B, A], [n, B]
        index = self.draw_members(index_key)  # only the drawn members' params are run
        pair = self.networks.critic_subset(state.target_critic_params, index)
        next_q = self.target_critic_subset.apply(pair, next_obs, next_action).min(0)  # [n, B]
        if self.cfg.backup_entropy:
            next_q = next_q - self.alpha(state) * next_log_prob
        next_q = next_q.max(0)  # max-target backup over n sampled actions (n = 1: identity)
        return batch.reward + self.cfg.discount * (1.0 - batch.terminated) * next_q

    def draw_members(self, key: jax.Array) -> jax.Array:
        """The `num_target_critics` ensemble members a min over Q is taken over, drawn as
        `agent.target_critic_draw` says (the official code: with replacement)."""
        count, members = self.cfg.num_target_critics, self.networks.num_critics
        if self.cfg.target_critic_draw == "without_replacement":
            return jax.random.permutation(key, members)[:count]
        return jax.random.randint(key, (count,), 0, members)

    def critic_loss(
        self,
        critic_params: Params,
        state: AgentState,
        batch: Transition,
        target: jax.Array,
        rng: jax.Array,
    ) -> tuple[jax.Array, Metrics]:
        q = self.q_values(critic_params, batch.obs, batch.action)  # [E, B]
        td_loss = jnp.mean((q - target) ** 2)
        return td_loss, {"critic_loss": td_loss, "td_loss": td_loss, "q_pred": q.mean()}

    def actor_loss(
        self, actor_params: Params, state: AgentState, batch: Transition, rng: jax.Array
    ) -> tuple[jax.Array, Metrics]:
        action, log_prob = self.sample_actions(actor_params, batch.obs, rng)
        q = self.q_values(state.critic.params, batch.obs, action).min(0)
        loss = jnp.mean(self.alpha(state) * log_prob - q)
        return loss, {"actor_loss": loss, "entropy": -log_prob.mean(), "actor_q": q.mean()}

    def temperature_loss(self, temperature: jax.Array, entropy: jax.Array) -> jax.Array:
        return jax.nn.softplus(temperature) * (entropy - self.target_entropy)

    # --- updates -------------------------------------------------------------------------------

    def idle_step(self, learner: Learner, optimizer: optax.GradientTransformation) -> Learner:
        """A zero-gradient optimizer step, as the official code takes for every loss a high-UTD
        step skips (`agent.idle_optimizer_steps`); a no-op when that is off or M = 1."""
        if not self.cfg.idle_optimizer_steps or self.cfg.critic_minibatches == 1:
            return learner
        return apply_gradients(learner, jax.tree.map(jnp.zeros_like, learner.params), optimizer)

    def critic_step(
        self, state: AgentState, batch: Transition, rng: jax.Array
    ) -> tuple[AgentState, Metrics]:
        target_key, loss_key = jax.random.split(rng)
        target = jax.lax.stop_gradient(self.td_target(state, batch, target_key))
        grads, metrics = jax.grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, target, loss_key
        )
        critic = apply_gradients(state.critic, grads, self.critic_optimizer)
        state = state.replace(
            critic=critic,
            target_critic_params=polyak(state.target_critic_params, critic.params, self.cfg.tau),
            actor=self.idle_step(state.actor, self.actor_optimizer),
            temperature=self.idle_step(state.temperature, self.temperature_optimizer),
        )
        return state, {**metrics, "q_target": target.mean()}

    def temperature_entropy(
        self, state: AgentState, batch: Transition, actor_entropy: jax.Array, rng: jax.Array
    ) -> jax.Array:
        """The entropy estimate the temperature is tuned on (`agent.temperature_entropy`)."""
        if self.cfg.temperature_entropy == "actor_batch":
            return actor_entropy
        # Official: fresh samples at s' from the actor before its step, as many per s' as the
        # TD target draws (num_backup_actions with the max-target backup).
        n = self.cfg.num_backup_actions if self.cfg.max_target_backup else 1
        next_obs = jnp.broadcast_to(batch.next_obs, (n, *batch.next_obs.shape))
        _, log_prob = self.sample_actions(state.actor.params, next_obs, rng)
        return -log_prob.mean()

    def actor_step(
        self, state: AgentState, batch: Transition, rng: jax.Array
    ) -> tuple[AgentState, Metrics]:
        entropy_key = jax.random.fold_in(rng, 1)  # the actor's own draws stay those of `rng`
        grads, metrics = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, rng
        )
        entropy = jax.lax.stop_gradient(
            self.temperature_entropy(state, batch, metrics["entropy"], entropy_key)
        )
        actor = apply_gradients(state.actor, grads, self.actor_optimizer)
        temp_grad = jax.grad(self.temperature_loss)(state.temperature.params, entropy)
        temperature = apply_gradients(state.temperature, temp_grad, self.temperature_optimizer)
        critic = self.idle_step(state.critic, self.critic_optimizer)  # targets stay put
        state = state.replace(actor=actor, temperature=temperature, critic=critic)
        return state, {**metrics, "alpha": self.alpha(state), "temperature_entropy": entropy}

    def update(
        self, state: AgentState, batch: Transition, rng: jax.Array
    ) -> tuple[AgentState, Metrics]:
        """One UTD round: critic updates on each of the M minibatches, then actor + alpha on all."""
        m = self.cfg.critic_minibatches
        chex.assert_shape(batch.reward, (m * self.cfg.batch_size,))
        critic_keys = jax.random.split(rng, m + 1)

        def critic_body(s, xs):
            minibatch, key = xs
            return self.critic_step(s, minibatch, key)

        state, critic_metrics = jax.lax.scan(
            critic_body, state, (split_minibatches(batch, m), critic_keys[:m])
        )
        state, actor_metrics = self.actor_step(state, batch, critic_keys[m])
        metrics = {**jax.tree.map(jnp.mean, critic_metrics), **actor_metrics}
        return state.replace(step=state.step + 1), metrics


def make_sac(cfg: AgentConfig, observation_size: int, action_size: int) -> SACAgent:
    return SACAgent(cfg, make_networks(cfg, action_size), observation_size, action_size)
