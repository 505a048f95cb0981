"""The run policy: what a config must hold to run, and the rules every run follows.

The ranges of values that type-check but cannot run (`RANGES`, `check_ranges`), checked by the
validated loaders `load_config` / `from_dict` (the schema and its parsing: `wsrl_mjx.config`);
`{time}` in a run dir (`expand_run_dir`); budgets in whole chunks (`check_budget`,
`check_online_budget`, `OVERRUN_LIMIT`); seeds (`seed_configs`, `check_single_seed`,
`check_seeds_share`); the one resume rule (`RESUME_MAY_CHANGE`, `check_resume_settings`) over
`flat_settings`, the one flattening of a config. Imports only `wsrl_mjx.config`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsrl_mjx.config import (
    Config,
    ConfigError,
    build,
    merge,
    parse_overrides,
    plain,
    read_yaml,
    to_dict,
)

# (dotted key, test, what is valid): values that type-check but cannot run.
SEED_MAX = 2**31 - 1 - 2**20
INT_MAX = 2**31 - 1  # counters, sizes and indices are int32 on the device (x64 is off)
_positive = (lambda v: v >= 1, "an integer >= 1")
_nonnegative = (lambda v: v >= 0, ">= 0")
_above_zero = (lambda v: v > 0, "> 0")
_unit = (lambda v: 0 < v <= 1, "in (0, 1]")
_open_unit = (lambda v: 0 < v < 1, "in (0, 1)")
RANGES = {
    "agent.num_critics": _positive,
    "agent.num_target_critics": _positive,
    "agent.batch_size": _positive,
    "agent.critic_minibatches": _positive,
    "agent.num_backup_actions": _positive,
    "agent.actor_lr": _above_zero,
    "agent.critic_lr": _above_zero,
    "agent.temperature_lr": _above_zero,
    "agent.init_temperature": _above_zero,
    "agent.discount": _unit,
    "agent.tau": _unit,
    "online.num_envs": _positive,
    "online.total_env_steps": _positive,
    "online.warmup_steps": _nonnegative,
    "online.update_rounds": _nonnegative,
    "online.chunk_length": _positive,
    "online.buffer_capacity": _positive,
    "offline.steps": _positive,
    "offline.chunk_length": _positive,
    "offline.eval_every_steps": _positive,
    "offline.plateau_from": (lambda v: v >= 0, ">= 0"),
    "offline.plateau_window": _positive,
    "offline.plateau_score": (lambda v: v >= 0, ">= 0"),
    "offline.plateau_q": (lambda v: v >= 0, ">= 0"),
    "offline.checkpoint_every_steps": _positive,
    "offline.holdout_fraction": _open_unit,
    "offline.cql_num_actions": _positive,
    "offline.lagrange_init": _above_zero,
    "collect.size": _positive,
    "collect.num_envs": _positive,
    "collect.medium_fraction": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "finetune.holdout_rows": _positive,
    "eval.num_episodes": _positive,
    "eval.every_env_steps": _positive,
    "eval.video_every": _nonnegative,
    "run.checkpoint_every_env_steps": _positive,
    "run.keep_checkpoints": _positive,
    "collect.medium_candidates": _positive,
    "collect.expert_candidates": _positive,
    "collect.medium_window": (lambda v: v >= 0, ">= 0"),
    "run.num_devices": _positive,
    "run.num_seeds": _positive,
    # Seeds become 32-bit PRNG keys and native reset seeds, plus offsets (evaluation +10,000,
    # collect's rollouts +100 each, seed+k for k < num_seeds): leave room for them.
    "run.seed": (
        lambda v: 0 <= v <= SEED_MAX,
        f"in [0, {2**31 - 1} - 2**20 = {2**31 - 1 - 2**20}]",
    ),
}


def check_ranges(config: Config) -> None:
    for key, value in flat_settings(config).items():  # before any of them reaches C
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
            raise ConfigError(f"{key}={value}: must be at most {INT_MAX} (a 32-bit integer)")
    for key, (valid, text) in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if not valid(value):
            raise ConfigError(f"{key}={value!r}: must be {text}")
    for name in ("actor_hidden", "critic_hidden"):
        widths = getattr(config.agent, name)
        if any(w < 1 for w in widths):
            raise ConfigError(f"agent.{name}={list(widths)}: every layer width must be >= 1")
    agent = config.agent
    if agent.target_critic_draw == "without_replacement" and (
        agent.num_target_critics > agent.num_critics
    ):
        raise ConfigError(
            f"agent.num_target_critics={agent.num_target_critics} distinct members of "
            f"agent.num_critics={agent.num_critics}: draw at most as many as there are"
        )
    if config.online.buffer_capacity < config.online.num_envs:
        raise ConfigError(
            f"online.buffer_capacity={config.online.buffer_capacity} is smaller than "
            f"online.num_envs={config.online.num_envs}: one vector step would not fit"
        )
    batch = config.agent.batch_size * config.agent.critic_minibatches
    if config.online.buffer_capacity < batch:
        raise ConfigError(
            f"online.buffer_capacity={config.online.buffer_capacity} is smaller than one sampled "
            f"batch (agent.batch_size x agent.critic_minibatches = {batch})"
        )


OVERRUN_LIMIT = 0.10  # whole chunks may end a run past its budget by up to this fraction


def expand_time(path: str) -> str:
    """`{time}` in a run or experiment folder becomes a timestamp: a new folder per run."""
    return path.replace("{time}", time.strftime("%Y%m%d-%H%M%S"))


def expand_run_dir(cfg: Config, resume: bool = False) -> Config:
    """`cfg` with `{time}` in run.run_dir expanded, for every command alike. A `--resume`
    continues one named run, and the hosts of a distributed run must agree on their folder, so
    both refuse `{time}`."""
    if "{time}" not in cfg.run.run_dir:
        return cfg
    if resume:
        raise ConfigError(
            "--resume continues one run: name it with --set run.run_dir=DIR "
            f"(run.run_dir is {cfg.run.run_dir!r}, a new folder per run)"
        )
    if cfg.run.distributed:
        raise ConfigError(
            f"run.distributed: run.run_dir={cfg.run.run_dir!r} would name another folder on each "
            "host; give every host the same run.run_dir"
        )
    run = dataclasses.replace(cfg.run, run_dir=expand_time(cfg.run.run_dir))
    return dataclasses.replace(cfg, run=run)


def check_single_seed(config: Config, command: str) -> None:
    """run.num_seeds > 1 vmaps online, finetune and pretrain runs; the others run one seed."""
    if config.run.num_seeds > 1:
        raise ConfigError(
            f"run.num_seeds={config.run.num_seeds}: {command} runs one seed; several seeds in one "
            "program are for `online`, `finetune` and `pretrain` (or an experiment's seeds)"
        )


def check_budget(key: str, requested: int, planned: int, granule: str) -> None:
    """Runs go in whole compiled chunks, so `planned` steps may exceed the budget `requested`
    set by `key`: refuse an overrun above OVERRUN_LIMIT, and say so on stderr below it."""
    if planned > requested * (1 + OVERRUN_LIMIT):
        raise ConfigError(
            f"{key}={requested} would run {planned} steps ({granule}), "
            f"{planned / requested - 1:.0%} more than asked; make {key} a multiple of that or "
            "use a shorter chunk"
        )
    if planned != requested:
        print(f"note: {key}={requested}: runs {planned} steps ({granule})", file=sys.stderr)


def check_online_budget(config: Config, planned: int, no_update_steps: int | None = None) -> None:
    """An online run of `planned` env steps in all, the first `no_update_steps` (default the
    warmup) without updates: refuse one that would be all warmup."""
    o = config.online
    no_update_steps = o.warmup_steps if no_update_steps is None else no_update_steps
    if no_update_steps >= o.total_env_steps:
        raise ConfigError(
            f"{no_update_steps} env steps before the first update (online.warmup_steps="
            f"{o.warmup_steps}, online.first_update={o.first_update}) >= online.total_env_steps="
            f"{o.total_env_steps}: the run would be all warmup, with no update"
        )
    granule = f"whole chunks of num_envs x chunk_length = {o.num_envs * o.chunk_length} env steps"
    check_budget("online.total_env_steps", o.total_env_steps, planned, granule)


# Settings a resumed online run may change: where things are written or read from, how often it
# evaluates and checkpoints, its total budget, how its seeds are laid out on devices; never what
# it learns. Each change is noted on stderr.
ONLINE_RESUME_MAY_CHANGE = {
    "run.run_dir",
    "eval.video_every",
    "run.allow_unverified_checkpoints",
    "run.progress",
    "run.tensorboard",
    "run.keep_checkpoints",
    "run.checkpoint_every_env_steps",
    "run.num_devices",
    "run.num_seeds",
    "eval.every_env_steps",
    "online.total_env_steps",
    "finetune.checkpoint",  # a moved pre-training: the run restores its own state
    "finetune.dataset",
    "offline.dataset",
}


def flat_settings(config: Any) -> dict[str, Any]:
    """A config (or the dict a run recorded of one) as JSON-plain values by dotted key
    ("env.name", "env.overrides.ctrl_cost_weight"): the one flattening that resume checks,
    seeds in one program and experiment re-runs compare."""
    values = config if isinstance(config, dict) else to_dict(config)
    return _flatten(json.loads(json.dumps(plain(values), default=str)))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree:  # a leaf, or an empty mapping (no overrides)
        return {prefix: tree}
    return {
        k: v
        for key, sub in tree.items()
        for k, v in _flatten(sub, f"{prefix}.{key}" if prefix else str(key)).items()
    }


def check_seeds_share(cfgs: list[Config]) -> None:
    """Seeds in one program share every setting but seed, run dir and pre-trained checkpoint
    (an experiment's seeds each restore their own pre-training)."""

    def flat(cfg: Config) -> dict:
        return flat_settings(
            dataclasses.replace(
                cfg,
                run=dataclasses.replace(cfg.run, seed=0, run_dir=""),
                finetune=dataclasses.replace(cfg.finetune, checkpoint=""),
            )
        )

    first = flat(cfgs[0])
    for cfg in cfgs[1:]:
        other = flat(cfg)
        differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if differ:
            raise ConfigError(
                "seeds run as one program must share every setting but the seed, run dir and "
                f"checkpoint; {differ[0]} differs: {first.get(differ[0])!r} and "
                f"{other.get(differ[0])!r}"
            )


# What a pre-training learns from: its env, agent and offline settings, its seed and precision;
# of those a resume may change only its budget and cadences (and where the file moved: the
# dataset's fingerprint still names the data). Everything else is not pre-training's business.
PRETRAIN_RESUME_MAY_CHANGE = {
    "offline.steps",
    "offline.plateau_from",
    "offline.plateau_window",
    "offline.plateau_score",
    "offline.plateau_q",
    "offline.eval_every_steps",
    "offline.checkpoint_every_steps",
    "offline.dataset",
}


def _pretrain_may_change(key: str) -> bool:
    learnt = key.startswith(("env.", "agent.", "offline.")) or key in (
        "run.seed",
        "run.matmul_precision",
    )
    return not learnt or key in PRETRAIN_RESUME_MAY_CHANGE


def _online_may_change(key: str) -> bool:
    # collect.* decides what is made from a behaviour run after it ends, never the run itself.
    return key in ONLINE_RESUME_MAY_CHANGE or key.startswith("collect.")


# The one resume rule, per phase: which dotted keys a `--resume` may change.
RESUME_MAY_CHANGE: dict[str, Callable[[str], bool]] = {
    "online": _online_may_change,
    "finetune": _online_may_change,
    "collect": _online_may_change,
    "pretrain": _pretrain_may_change,
}


def check_resume_settings(
    saved: dict, config: Config | dict, may_change: set[str] | Callable[[str], bool]
) -> None:
    """Refuse to resume a run with settings that change what it computes, naming every key
    that differs from the ones the run started with (`saved`: its config as recorded in the
    checkpoint); keys in `may_change` are allowed and noted. A key the record lacks (added to
    the schema since) counts as unchanged while it has its default value."""
    allowed = may_change if callable(may_change) else may_change.__contains__
    now, was = flat_settings(config), flat_settings(saved)
    defaults = flat_settings(Config())
    differ = sorted(k for k in now if was.get(k, defaults.get(k)) != now[k])
    refused = [k for k in differ if not allowed(k)]
    if refused:
        listed = "; ".join(
            f"{k}: {was.get(k, defaults.get(k))!r} then, {now[k]!r} now" for k in refused
        )
        raise ConfigError(
            f"--resume with other settings than the run started with ({listed}); use the same "
            "values, or start a new run.run_dir (nothing was changed)"
        )
    for k in differ:
        print(f"note: --resume: {k} changed from {was.get(k)!r} to {now[k]!r}", file=sys.stderr)


def from_dict(values: dict, cls: type = Config) -> Any:
    config = build(cls, values, "")
    if cls is Config:
        check_ranges(config)
    return config


def load_config(
    path: str | Path | None = None,
    overrides: list[str] = (),
    cls: type = Config,
    base: dict | None = None,
):
    """Defaults <- `base` (e.g. what a fine-tuning inherits) <- YAML file <- `--set` overrides,
    validated against the schema."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        loaded = read_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        values = loaded
    values = merge(merge(base or {}, values), parse_overrides(list(overrides)))
    return from_dict(values, cls)


def seed_configs(cfg: Config) -> list[Config]:
    """`run.num_seeds` runs: seeds seed, seed+1, ... each in its own run_dir/seed<k>."""
    if cfg.run.num_seeds == 1:
        return [cfg]
    return [
        dataclasses.replace(
            cfg,
            run=dataclasses.replace(
                cfg.run, seed=seed, num_seeds=1, run_dir=str(Path(cfg.run.run_dir) / f"seed{seed}")
            ),
        )
        for seed in range(cfg.run.seed, cfg.run.seed + cfg.run.num_seeds)
    ]
