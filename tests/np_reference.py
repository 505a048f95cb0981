"""NumPy re-implementation of the networks, for tests that pin the agents' math."""

import jax
import numpy as np


def mlp(params: dict, x: np.ndarray, n_hidden: int, layer_norm: bool) -> np.ndarray:
    for i in range(n_hidden):
        dense = params[f"Dense_{i}"]
        x = x @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
        if layer_norm:
            ln = params[f"LayerNorm_{i}"]
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            x = (x - mu) / np.sqrt(var + 1e-6) * np.asarray(ln["scale"]) + np.asarray(ln["bias"])
        x = np.maximum(x, 0.0)
    return x


def critics(critic_params, obs, action, cfg, members=None):
    """Q of every ensemble member (or the listed ones) -> [len(members), ...]. The MLP bodies
    have a member axis; the head has one only with `critic_head="per_member"`."""
    p = jax.tree.map(np.asarray, critic_params["params"])
    n_members = jax.tree.leaves(p["body"])[0].shape[0]
    members = range(n_members) if members is None else members
    shared = cfg.critic_head == "shared"
    out = []
    for m in members:
        body = jax.tree.map(lambda x, m=m: x[m], p["body"])
        head = p["head"] if shared else jax.tree.map(lambda x, m=m: x[m], p["head"])
        x = np.concatenate([obs, action], -1)
        h = mlp(body, x, len(cfg.critic_hidden), cfg.critic_layer_norm)
        out.append((h @ head["kernel"] + head["bias"])[..., 0])
    return np.stack(out)


def value(value_params, obs, cfg):
    p = jax.tree.map(np.asarray, value_params["params"])
    h = mlp(p["MLP_0"], obs, len(cfg.critic_hidden), cfg.critic_layer_norm)
    return (h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])[..., 0]


def actor(actor_params, obs, cfg):
    """(mean, log_std) of the "exp" parameterisation."""
    p = jax.tree.map(np.asarray, actor_params["params"])
    h = mlp(p["MLP_0"], obs, len(cfg.actor_hidden), cfg.actor_layer_norm)
    mean = h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    log_std = h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    return mean, np.clip(log_std, np.log(cfg.std_min), np.log(cfg.std_max))


def tanh_gaussian(mean, log_std, eps):
    """Squashed sample and its log-probability from standard-normal noise eps."""
    u = mean + np.exp(log_std) * eps
    log_prob = -0.5 * eps**2 - log_std - 0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(u) ** 2)
    return np.tanh(u), log_prob.sum(-1)


def tanh_gaussian_log_prob(mean, log_std, action):
    u = np.arctanh(np.clip(action, -1 + 1e-6, 1 - 1e-6))
    z = (u - mean) / np.exp(log_std)
    log_prob = -0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(u) ** 2)
    return log_prob.sum(-1)


def softplus(x):
    return np.log1p(np.exp(x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
