"""The env a config names, and the one check that a checkpoint or dataset was made for it."""

from __future__ import annotations

import dataclasses

import envs
from wsrl_mjx.config import DEFAULT_ENV, Config, ConfigError, EnvConfig
from wsrl_mjx.runtime.errors import CheckpointError

ENV_KEYS = ("env", "observation_size", "action_size")


def make_env(cfg: EnvConfig) -> envs.Env:
    overrides = dict(cfg.overrides)
    if cfg.episode_length is not None:
        overrides["episode_length"] = cfg.episode_length
    try:
        return envs.make(cfg.name or DEFAULT_ENV, **overrides)
    except ValueError as e:  # unknown name or task key: a config error, named as such
        raise ConfigError(f"env.name / env.overrides: {e}") from None


def make_eval_env(cfg: Config, env: envs.Env) -> envs.Env:
    """The env evaluations run in: `env` itself, or with eval.overrides a twin made with them
    on top of env.overrides (a dataset whose evaluation env differs from its recording one)."""
    if not cfg.eval.overrides:
        return env
    overrides = {**cfg.env.overrides, **cfg.eval.overrides}
    return make_env(dataclasses.replace(cfg.env, overrides=overrides))


def env_meta(env: envs.Env) -> dict:
    """What a checkpoint records of its env: name and sizes."""
    return {
        "env": env.name,
        "observation_size": env.observation_size,
        "action_size": env.action_size,
    }


def check_saved_env(saved: dict, expected: dict, what: str) -> None:
    """Refuse a checkpoint (`what` names it) whose recorded env differs, naming the key."""
    for key in ENV_KEYS:
        if saved.get(key) != expected.get(key):
            raise CheckpointError(
                f"{what} was made for {key}={saved.get(key)!r}, this run has "
                f"{key}={expected.get(key)!r}"
            )
