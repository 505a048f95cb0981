"""Actor and critic-ensemble networks (flax.linen) and tanh-Gaussian policy math."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsrl_mjx.config import AgentConfig

Params = Any


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


class CriticEnsemble(nn.Module):
    """E critics evaluated by one vmap over their MLP bodies: output [E, ...].

    `shared_head=True` is the official code's layout (its `ensemblize` wraps only the MLP body, so
    the final Dense(1) is one kernel shared by every member); False gives each member its own.
    """

    hidden: Sequence[int]
    layer_norm: bool
    init_scale: float
    last_init_scale: float
    num_critics: int
    shared_head: bool

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        members = lambda module, in_axes: nn.vmap(  # noqa: E731
            module,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=in_axes,
            out_axes=0,
            axis_size=self.num_critics,
        )
        body = members(MLP, None)(
            self.hidden, self.layer_norm, self.init_scale, self.last_init_scale, name="body"
        )
        head_init = nn.initializers.orthogonal(self.init_scale)
        head_module = nn.Dense if self.shared_head else members(nn.Dense, 0)
        head = head_module(1, kernel_init=head_init, name="head")
        return head(body(x))[..., 0]


def critic_ensemble(cfg: AgentConfig, num_critics: int) -> CriticEnsemble:
    return CriticEnsemble(
        cfg.critic_hidden,
        cfg.critic_layer_norm,
        cfg.hidden_init_scale,
        cfg.last_hidden_init_scale,
        num_critics,
        cfg.critic_head == "shared",
    )


def select_critics(critic_params: Params, index: jax.Array, shared_head: bool) -> Params:
    """The params of ensemble members `index` (e.g. the 2 sampled target critics); a shared
    head has no member axis and is kept whole."""
    params = critic_params["params"]
    take = lambda tree: jax.tree.map(lambda x: x[index], tree)  # noqa: E731
    head = params["head"] if shared_head else take(params["head"])
    return {"params": {"body": take(params["body"]), "head": head}}


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
    critic: CriticEnsemble
    num_critics: int

    def critic_subset(self, critic_params: Params, index: jax.Array) -> Params:
        return select_critics(critic_params, index, self.critic.shared_head)


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

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


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
