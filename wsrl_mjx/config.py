"""Typed run configuration: nested frozen dataclasses, YAML files and `--set key=value` overrides.

Every hyperparameter lives here; defaults are the paper's values, or its official code's where
the two differ (docs/algorithm.md). Loading is strict: an unknown
key, a value of the wrong type or a value outside a field's choices raises `ConfigError` naming
the key and what is valid, so a typo never silently runs the default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


DEFAULT_ENV = "PointMass"  # env.name when empty and no dataset or checkpoint names one


@dataclass(frozen=True)
class EnvConfig:
    # Empty: pretrain/pipeline/finetune take the env from the dataset's env_spec (Minari) or
    # the checkpoint; without either (and for online/collect) it is DEFAULT_ENV.
    name: str = ""
    episode_length: int | None = None  # None keeps the task's own time limit
    reward_scale: float = 1.0  # applied once, when a transition enters the buffer
    reward_bias: float = 0.0
    overrides: dict = field(default_factory=dict)  # extra task config keys, see envs.make


@dataclass(frozen=True)
class AgentConfig:
    """Online SAC (docs/algorithm.md); CQL/CalQL/IQL add their keys under offline."""

    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    num_critics: int = 10
    num_target_critics: int = 2  # the members the TD target takes the min over
    # How they are drawn: "with_replacement" (the official code: with 2 critics, half the
    # targets use one member twice) or "without_replacement" (REDQ's and standard SAC's min
    # over distinct members; with num_target_critics = num_critics, the min over all).
    target_critic_draw: str = choice("with_replacement", "with_replacement", "without_replacement")
    critic_layer_norm: bool = True
    # The official WSRL runs (`--use_redq`) put LayerNorm in the actor too (docs/algorithm.md).
    actor_layer_norm: bool = True
    # "shared": one final Dense(1) for every member, as the official `ensemblize`; "per_member".
    critic_head: str = choice("shared", "shared", "per_member")
    std_parameterization: str = choice("exp", "exp", "uniform")
    std_min: float = 1e-5
    std_max: float = 10.0
    hidden_init_scale: float = math.sqrt(2.0)  # orthogonal init of every Dense
    last_hidden_init_scale: float = 1e-2  # the last hidden Dense, as in the official code
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 1e-4
    init_temperature: float = 1.0
    target_entropy: float | None = None  # None = -|A|
    discount: float = 0.99
    tau: float = 0.005
    batch_size: int = 256  # one critic minibatch
    critic_minibatches: int = 4  # UTD: critic updates per sampled batch
    # Official (True): with critic_minibatches > 1, the optimizers whose loss a step skips still
    # step with a zero gradient (the actor and temperature on critic steps, the critic on the
    # actor step), so Adam keeps moving on momentum: per round of 4 the actor and temperature
    # move ~2.24x their learning rate and the critic ~4.47x (False: 1x and 4x).
    idle_optimizer_steps: bool = True
    max_target_backup: bool = False
    num_backup_actions: int = 10
    backup_entropy: bool = False
    # The entropy the temperature is tuned on. "next_obs" (official): fresh policy samples at
    # s' from the actor before its step (num_backup_actions per s' with max_target_backup);
    # "actor_batch": the entropy of the actor loss's samples at s.
    temperature_entropy: str = choice("next_obs", "next_obs", "actor_batch")


@dataclass(frozen=True)
class OnlineConfig:
    num_envs: int = 16
    total_env_steps: int = 20_000  # including warmup
    warmup_steps: int = 1_000  # env steps over all envs with no updates
    warmup_policy: str = choice("policy", "policy", "random")
    # When updates start. "official": after max(warmup_steps, the online rows of one sampled
    # batch) env steps, and for CalQL with the online bound also not before every env has run
    # one full episode length (so finished episodes exist to sample); the frozen (or, from
    # scratch, random-init) policy acts until then, as in the official loop, so warmup_steps=0
    # still collects one batch first. "after_warmup": right after warmup_steps.
    first_update: str = choice("official", "official", "after_warmup")
    # Sampled batches per vector step (each: critic_minibatches critic updates + 1 actor update).
    update_rounds: int = 1
    chunk_length: int = 50  # vector steps per compiled chunk
    # True (official): a step where the time limit fires is a truncation (bootstrapped) even if
    # the env also terminated there, as the official TruncationWrapper over gym's TimeLimit;
    # False: the termination wins (no bootstrap).
    time_limit_truncates: bool = True
    buffer_capacity: int = 100_000


@dataclass(frozen=True)
class OfflineConfig:
    """Offline pre-training (docs/algorithm.md): CQL/CalQL on SAC's networks, or IQL."""

    algorithm: str = "calql"  # an offline loss of the registry (methods.check_registered)
    dataset: str = ""  # .npz made by `collect`, or a D4RL/Minari .hdf5 file
    steps: int = 20_000  # gradient steps, one per batch of agent.batch_size
    chunk_length: int = 500  # gradient steps per compiled chunk
    eval_every_steps: int = 5_000
    checkpoint_every_steps: int = 5_000  # gradient steps; `pretrain --resume` continues from it
    # Stop before offline.steps once score and held-out Q plateau (0 = never): at the first
    # evaluation at or after this step where the mean score (normalized where the env has
    # references) of the last plateau_window evaluations is within plateau_score of the window
    # before, and the mean held-out Q moved by less than plateau_q (a share) over the window.
    # With several seeds in one program the rule reads the means over seeds.
    plateau_from: int = 0
    plateau_window: int = 3
    plateau_score: float = 3.0
    plateau_q: float = 0.1
    holdout_fraction: float = 0.05  # held-out offline batch for the online diagnostics
    max_target_backup: bool = True
    cql_num_actions: int = 10  # per source: uniform, pi(s), pi(s')
    cql_weight: float = 5.0
    cql_temperature: float = 1.0
    cql_lagrange: bool = False  # antmaze: learned multiplier with a target gap
    cql_target_gap: float = 0.8
    lagrange_init: float = 1.0
    lagrange_lr: float = 3e-4
    sparse_negative_reward: float | None = None  # CalQL's all-negative trajectory rule
    # Minari goal datasets: reward >= 1 transitions are terminal (D4RL antmaze convention)
    terminals_from_reward: bool = False
    iql_expectile: float = 0.7
    iql_temperature: float = 3.0  # AWR inverse temperature beta
    iql_max_weight: float = 100.0
    iql_lr: float = 3e-4
    # "pre_update" (official): V, actor and critic losses all at the parameters from before the
    # step (the AWR weights and the critic target use the old V); "sequential" (Kostrikov et
    # al.'s implementation): V first, then the AWR weights and critic target with the new V.
    iql_update: str = choice("pre_update", "pre_update", "sequential")


@dataclass(frozen=True)
class CollectConfig:
    """D4RL-style datasets from a behaviour SAC agent trained with the online loop."""

    out_dir: str = "data"
    kinds: tuple[str, ...] = ("random", "medium", "medium-replay", "expert")
    size: int = 20_000  # transitions per collection (medium-replay: what the buffer held)
    num_envs: int = 16  # parallel envs while collecting
    medium_fraction: float = 0.4  # medium = snapshot whose eval return is nearest this x final
    # What medium aims at: "final" (medium_fraction x the behaviour run's final return),
    # "reference" (medium_fraction of the env's normalized range) or "d4rl" (the normalized score
    # of D4RL's own medium dataset for the env, wsrl_mjx.datasets.scores.D4RL_MEDIUM_SCORES).
    medium_target: str = choice("final", "final", "reference", "d4rl")
    # medium: of this many snapshots nearest the target by their evaluation, the one whose
    # rollout (the whole dataset's episodes) is nearest it; 1 = the nearest by evaluation.
    medium_candidates: int = 1
    # D4RL's medium is an early-stopped SAC: with k > 0, medium is only picked among snapshots
    # taken up to the first k consecutive evaluations that average at or above the target (so
    # medium-replay is the run's first part, not a late dip of a near-expert); 0 = any snapshot.
    medium_window: int = 0
    # expert: of this many snapshots from the run's second half with the best evaluations (the
    # final policy always among them), the one whose rollout returns most; 1 = the final policy.
    expert_candidates: int = 1
    behaviour_env_steps: int | None = None  # behaviour SAC budget; None = online.total_env_steps
    pretrain_on: str = "medium"  # which collection `pipeline` pre-trains on
    # "minari": each .npz is also written as a Minari dataset wsrl-mjx/<env>/<kind>-v0 under
    # out_dir/minari (env_spec: the native Gymnasium env), for CORL, d3rlpy and Minari's tools.
    format: str = choice("npz", "npz", "minari")


@dataclass(frozen=True)
class FinetuneConfig:
    """Online fine-tuning from a pre-trained checkpoint; the method picks loss, init and data."""

    method: str = "wsrl"  # a method of the registry (methods.check_registered)
    checkpoint: str = ""  # a `pretrain` run directory (or its checkpoints/ folder)
    dataset: str = ""  # offline data for retention/RLPD; default: the checkpoint's dataset
    offline_ratio: float | None = None  # share of each batch from offline data; None = method's
    init_actor: bool = True  # ablation "no policy init": False
    init_critic: bool = True  # ablation "no Q init": False
    jsrl_max_guide_steps: int | None = None  # None = the episode length
    holdout_rows: int = 1024  # held-out offline rows for the Q/TD diagnostics
    # CalQL fine-tuning (official: True): online rows get their Monte-Carlo return when their
    # episode ends and only finished episodes are sampled, so the CalQL bound stays active
    # online. False: online rows carry no bound (CQL started from a CalQL checkpoint).
    online_mc_bound: bool = True


@dataclass(frozen=True)
class EvalConfig:
    num_episodes: int = 16  # parallel deterministic episodes (tanh of the mean)
    every_env_steps: int = 5_000
    episode_length: int | None = None  # None = the training episode length
    # Task config keys in which the evaluation env differs from the training env (env.overrides
    # under these): a Minari dataset's eval_env_spec kwargs, e.g. the evaluation maze_map.
    overrides: dict = field(default_factory=dict)
    # > 0: a video of one twin episode at the first evaluation past each multiple of this many
    # steps (env steps; gradient steps in pre-training), in run_dir/videos/ and TensorBoard.
    video_every: int = 0


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    run_dir: str = "runs/default"
    checkpoint_every_env_steps: int = 10_000
    keep_checkpoints: int = 2
    tensorboard: bool = True
    progress: bool = True
    matmul_precision: str = choice("highest", "highest", "default", "high")
    # Devices (runtime/sharding.py). One seed: data parallelism, envs, buffer and batches split
    # over them, parameters replicated (online.num_envs divisible by it). Several seeds: the
    # seeds split over them (num_seeds divisible by it). On a CPU the CLI makes that many.
    num_devices: int = 1
    distributed: bool = False  # jax.distributed.initialize() first (one process per host)
    # Seeds seed, seed+1, ... trained as one program (online and finetune): the whole training
    # state is vmapped over them; each seed writes its own run dir, run_dir/seed<k>.
    num_seeds: int = 1
    # A checkpoint step whose integrity record (checksums of its arrays and metadata) is
    # missing or incomplete is treated as damaged; true restores it unverified, with a note.
    allow_unverified_checkpoints: bool = False


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)


# The built-in main job (`python -m wsrl_mjx.run` without a command or --config).
DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "pipeline.yaml"


# --- loading -----------------------------------------------------------------------------------


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where lossless."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, _) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, key) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp in (int, float) and isinstance(value, str):
        value = _parse_number(value, key)  # YAML 1.1 reads "3e-4" as a string
    if tp in (int, float) and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    raise ConfigError(f"{key}: unsupported type {tp}")


def _parse_number(text: str, key: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key}: expected a number, got {text!r}") from None


def _build(cls: type, values: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    not_names = [k for k in values if not isinstance(k, str)]
    if not_names:
        where = f"section '{prefix[:-1]}'" if prefix else "the top level"
        raise ConfigError(f"config key {not_names[0]!r} in {where} is not a name")
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f"section '{prefix[:-1]}'" if prefix else "the top level"
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' in {where}; valid keys: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in values.items():
        key, tp = prefix + name, hints[name]
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a section (mapping), got {value!r}")
            kwargs[name] = _build(tp, value, key + ".")
            continue
        value = _coerce(value, tp, key)
        choices = fields[name].metadata.get("choices", ())
        if choices and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        kwargs[name] = value
    return cls(**kwargs)


def _set_nested(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = tree.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{p}' is not a section")
        tree = node
    tree[leaf] = value


def parse_overrides(items: list[str]) -> dict:
    """`["agent.actor_lr=3e-4", "env.name=CheetahRun"]` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item}: cannot parse the value: {_yaml_message(e)}") from None
        _set_nested(tree, key.strip(), value)
    return tree


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


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
    return _flatten(json.loads(json.dumps(_plain(values), default=str)))


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
    config = _build(cls, values, "")
    if cls is Config:
        check_ranges(config)
    return config


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """A YAML file's contents; a missing, unreadable or malformed file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}): is it a YAML file?") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML syntax error: {_yaml_message(e)}") from None


def _yaml_message(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{getattr(e, 'problem', None) or e}{where}"


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


def unflatten_keys(flat: dict[str, Any]) -> dict:
    """{"agent.critic_hidden": [32, 32]} -> {"agent": {"critic_hidden": [32, 32]}}."""
    tree: dict = {}
    for key, value in flat.items():
        _set_nested(tree, key, value)
    return tree


def save_config(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(_plain(to_dict(config)), sort_keys=False))


def _plain(x: Any) -> Any:
    """Tuples to lists so the YAML stays readable and reloads through the same schema."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [_plain(v) for v in x]
    return x


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
