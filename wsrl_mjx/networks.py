"""Actor and critic-ensemble networks (flax.linen) and tanh-Gaussian policy math."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsrl_mjx.config import AgentConfig


class MLP(nn.Module):
    """Dense -> (LayerNorm) -> ReLU per hidden layer; the last hidden Dense starts 100x smaller."""

    hidden: Sequence[int]
    layer_norm: bool
    init_scale: float
    last_init_scale: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.hidden):
            last = i == len(self.hidden) - 1
            scale = self.last_init_scale if last else self.init_scale
            x = nn.Dense(width, kernel_init=nn.initializers.orthogonal(scale))(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return x


class Critic(nn.Module):
    hidden: Sequence[int]
    layer_norm: bool
    init_scale: float
    last_init_scale: float

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        x = MLP(self.hidden, self.layer_norm, self.init_scale, self.last_init_scale)(x)
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(self.init_scale))(x)[..., 0]


def critic_ensemble(cfg: AgentConfig, num_critics: int) -> nn.Module:
    """E independent critics with stacked params, evaluated by one vmap: output [E, ...]."""
    ensemble = nn.vmap(
        Critic,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=0,
        axis_size=num_critics,
    )
    return ensemble(
        cfg.critic_hidden, cfg.critic_layer_norm, cfg.hidden_init_scale, cfg.last_hidden_init_scale
    )


class Actor(nn.Module):
    """Tanh-squashed diagonal Gaussian; returns (mean, log_std) of the pre-tanh Gaussian."""

    action_size: int
    hidden: Sequence[int]
    layer_norm: bool
    init_scale: float
    last_init_scale: float
    std_parameterization: str  # "exp": state-dependent head; "uniform": learned vector
    std_min: float
    std_max: float

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = MLP(self.hidden, self.layer_norm, self.init_scale, self.last_init_scale)(obs)
        init = nn.initializers.orthogonal(self.init_scale)
        mean = nn.Dense(self.action_size, kernel_init=init)(x)
        if self.std_parameterization == "exp":
            log_std = nn.Dense(self.action_size, kernel_init=init)(x)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))
            log_std = jnp.broadcast_to(log_std, mean.shape)
        log_std = jnp.clip(log_std, jnp.log(self.std_min), jnp.log(self.std_max))
        return mean, log_std


@dataclass(frozen=True)
class Networks:
    actor: Actor
    critic: nn.Module
    num_critics: int


def make_networks(cfg: AgentConfig, action_size: int, num_critics: int | None = None) -> Networks:
    num_critics = num_critics or cfg.num_critics
    actor = Actor(
        action_size,
        cfg.actor_hidden,
        cfg.actor_layer_norm,
        cfg.hidden_init_scale,
        cfg.last_hidden_init_scale,
        cfg.std_parameterization,
        cfg.std_min,
        cfg.std_max,
    )
    return Networks(actor, critic_ensemble(cfg, num_critics), num_critics)


# --- tanh-Gaussian policy ----------------------------------------------------------------------

_HALF_LOG_2PI = 0.5 * jnp.log(2.0 * jnp.pi)


def _tanh_log_det(pre_tanh: jax.Array) -> jax.Array:
    """log |d tanh(u)/du| = log(1 - tanh(u)^2), in the numerically stable form."""
    return 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))


def sample_tanh_gaussian(
    mean: jax.Array, log_std: jax.Array, rng: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample a = tanh(mean + std * eps) and its log-probability (summed)."""
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    pre_tanh = mean + jnp.exp(log_std) * eps
    log_prob = -0.5 * eps**2 - log_std - _HALF_LOG_2PI - _tanh_log_det(pre_tanh)
    return jnp.tanh(pre_tanh), log_prob.sum(-1)


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log pi(a|s) of a given squashed action (e.g. a dataset action, for AWR)."""
    pre_tanh = jnp.arctanh(jnp.clip(action, -1.0 + 1e-6, 1.0 - 1e-6))
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    log_prob = -0.5 * z**2 - log_std - _HALF_LOG_2PI - _tanh_log_det(pre_tanh)
    return log_prob.sum(-1)


class ValueNet(nn.Module):
    """State value V(s) for IQL."""

    hidden: Sequence[int]
    layer_norm: bool
    init_scale: float
    last_init_scale: float

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = MLP(self.hidden, self.layer_norm, self.init_scale, self.last_init_scale)(obs)
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(self.init_scale))(x)[..., 0]
