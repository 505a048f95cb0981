"""Typed run configuration: nested frozen dataclasses, YAML files and `--set key=value` overrides.

Every hyperparameter lives here; defaults are the paper's values, or its official code's where
the two differ (docs/algorithm.md). Loading is strict: an unknown
key, a value of the wrong type or a value outside a field's choices raises `ConfigError` naming
the key and what is valid, so a typo never silently runs the default. The validated loaders
(`load_config`, `from_dict`: this schema plus the ranges of values that cannot run) and the rules
every run follows are `wsrl_mjx.runtime.policy`'s.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
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


def build(cls: type, values: dict, prefix: str) -> Any:
    """The dataclass `cls` from `values`, each key type-checked (`prefix`: its section)."""
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
            kwargs[name] = build(tp, value, key + ".")
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


def unflatten_keys(flat: dict[str, Any]) -> dict:
    """{"agent.critic_hidden": [32, 32]} -> {"agent": {"critic_hidden": [32, 32]}}."""
    tree: dict = {}
    for key, value in flat.items():
        _set_nested(tree, key, value)
    return tree


def save_config(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(plain(to_dict(config)), sort_keys=False))


def plain(x: Any) -> Any:
    """Tuples to lists so the YAML stays readable and reloads through the same schema."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [plain(v) for v in x]
    return x
