"""What a run starts from, read once: the env a config names (taken from the dataset or the
pre-training checkpoint when `env.name` is empty), the offline data with its reward transform and
MC returns, a pre-training's held-out split, and the pre-trained agent. `setup_pretrain` bundles
a pre-training's; `setup_finetune` a fine-tuning's (every file opened once)."""

from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import envs
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.config import DEFAULT_ENV, Config, ConfigError
from wsrl_mjx.core.environment import make_env
from wsrl_mjx.datasets import data, minari_io, readers
from wsrl_mjx.methods import METHODS, check_finetune_inputs, make_agent, offline_rows
from wsrl_mjx.phases.bridge import Pretrained, read_pretrained
from wsrl_mjx.types import OfflineTransition

HOLDOUT_FILE = "holdout.npz"
HOLDOUT_KEYS = (*data.DATASET_KEYS.values(), "mc_returns")


def load_offline_data(cfg: Config, env) -> tuple[str, data.OfflineData, np.ndarray]:
    """(fingerprint of the file's arrays, the validated dataset with the reward transform
    applied once, its MC returns-to-go)."""
    if not cfg.offline.dataset:
        raise data.DatasetError("offline.dataset is empty: pass --set offline.dataset=PATH")
    loaded = readers.load_any(
        cfg.offline.dataset,
        observation_size=env.observation_size,
        action_size=env.action_size,
        env=env.name,
        terminals_from_reward=cfg.offline.terminals_from_reward,
    )
    minari_io.check_recorded_env(env, loaded.metadata, cfg.env.overrides, cfg.offline.dataset)
    raw_fingerprint = data.fingerprint(loaded.arrays)
    loaded = data.transform_rewards(loaded, cfg.env.reward_scale, cfg.env.reward_bias)
    returns = loaded.returns_to_go(
        cfg.agent.discount, sparse_negative_reward=cfg.offline.sparse_negative_reward
    )
    return raw_fingerprint, loaded, returns


def resolve_env(
    cfg: Config, *, finetuning: bool = False, pretrained: Pretrained | None = None
) -> Config:
    """`cfg` with an empty env.name filled in: from the `pretrained` checkpoint's config when
    given; else from the dataset (finetune.dataset when `finetuning`, else offline.dataset):
    its env_spec (Minari; its kwargs become env.overrides under the given ones; the episode
    length as `episode_length` says) or its recorded env name."""
    if cfg.env.name:
        return cfg
    if pretrained is not None:
        saved = pretrained.meta["config"]["env"]
        env = dataclasses.replace(
            cfg.env,
            name=saved["name"],
            overrides={**saved.get("overrides", {}), **cfg.env.overrides},
            episode_length=cfg.env.episode_length or saved.get("episode_length"),
        )
        saved_eval = pretrained.meta["config"].get("eval", {}).get("overrides", {})
        evaluation = dataclasses.replace(cfg.eval, overrides={**saved_eval, **cfg.eval.overrides})
        return dataclasses.replace(cfg, env=env, eval=evaluation)
    dataset = cfg.finetune.dataset if finetuning else cfg.offline.dataset
    if not dataset:  # nothing names an env: the default one (load_offline_data / plan_finetune
        # then name what is missing)
        return dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, name=DEFAULT_ENV))
    spec, eval_spec = readers.recorded_env_spec(dataset)
    if not spec.get("id"):
        raise data.DatasetError(
            f"{dataset} names no env (no env_spec): set env.name to the env it was recorded in"
        )
    if spec["id"] not in envs.registered_names():
        twins = sorted({n.split("_")[0] + ("_*" if "_" in n else "") for n in envs.twin_names()})
        raise data.DatasetError(
            f"{dataset} was recorded in {spec['id']!r}, which has no MJX twin here (the twins of "
            f"Gymnasium envs: {', '.join(twins)}); a dataset can only be used in the env it was "
            "recorded in"
        )
    length, source = episode_length(cfg.env.episode_length, spec, eval_spec)
    env = dataclasses.replace(
        cfg.env,
        name=spec["id"],
        overrides={**spec.get("kwargs", {}), **cfg.env.overrides},
        episode_length=length,
    )
    evaluation = dataclasses.replace(
        cfg.eval, overrides={**eval_differences(spec, eval_spec), **cfg.eval.overrides}
    )
    print(
        f"[env] {env.name} from the dataset's env_spec (overrides {env.overrides}); "
        f"episode length: {source}"
        + (
            f"; evaluated with the eval_env_spec's {evaluation.overrides}"
            if evaluation.overrides
            else ""
        ),
        flush=True,
    )
    return dataclasses.replace(cfg, env=env, eval=evaluation)


def eval_differences(spec: dict, eval_spec: dict) -> dict:
    """The kwargs of a dataset's evaluation env that differ from its recording env's (Minari's
    antmaze datasets evaluate in another maze_map than they were recorded in); the episode
    limit is `episode_length`'s business."""
    recorded, evaluation = spec.get("kwargs") or {}, eval_spec.get("kwargs") or {}
    return {k: v for k, v in evaluation.items() if recorded.get(k) != v}


def episode_length(given: int | None, spec: dict, eval_spec: dict) -> tuple[int | None, str]:
    """(episode length, where it came from) for an env taken from a Minari dataset: the one
    given, else the dataset's `eval_env_spec` (what its makers evaluate with), else the env's
    own limit; never the recording's time limit, which small recordings set short."""
    recorded = spec.get("max_episode_steps")
    note = f" (the data was recorded with max_episode_steps={recorded})" if recorded else ""
    if given:
        return given, f"{given}, env.episode_length{note}"
    if eval_spec.get("max_episode_steps"):
        steps = int(eval_spec["max_episode_steps"])
        return steps, f"{steps}, the dataset's eval_env_spec{note}"
    return None, f"the env's own limit{note}"


def load_holdout(run_dir: Path, rows: int) -> OfflineTransition | None:
    path = run_dir / HOLDOUT_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k][:rows] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise data.DatasetError(
            f"{path} is damaged ({e}); it is the held-out split of that pre-training, made again "
            "by re-running it (or delete the file to fine-tune without the offline diagnostics)"
        ) from None
    missing = sorted(set(HOLDOUT_KEYS) - set(arrays))
    if missing:
        raise data.DatasetError(
            f"{path} lacks {', '.join(missing)}: not a complete held-out split (delete the file "
            "to fine-tune without the offline diagnostics)"
        )
    return data.to_device(arrays, arrays["mc_returns"])


@dataclass(frozen=True)
class OfflineSetup:
    """A pre-training's inputs: the config with its env resolved, the env, the offline agent,
    the dataset (reward transform applied) split into train and held-out rows (host arrays,
    MC returns included) and the raw file's fingerprint."""

    cfg: Config
    env: envs.Env
    agent: Agent
    loaded: data.OfflineData
    fingerprint: str
    train: dict
    holdout: dict


def setup_pretrain(cfg: Config) -> OfflineSetup:
    cfg = resolve_env(cfg)
    env = make_env(cfg.env)
    fingerprint, loaded, returns = load_offline_data(cfg, env)
    arrays = {**loaded.arrays, "mc_returns": returns}
    train, holdout = data.split_holdout(arrays, cfg.offline.holdout_fraction, cfg.run.seed)
    if len(train["rewards"]) < 2:
        raise data.DatasetError(
            f"{cfg.offline.dataset}: {loaded.size} transitions leave {len(train['rewards'])} to "
            f"train on after holding out offline.holdout_fraction={cfg.offline.holdout_fraction}"
            "; pre-training needs at least 2"
        )
    agent = make_agent(
        cfg.offline.algorithm, cfg.agent, cfg.offline, env.observation_size, env.action_size
    )
    return OfflineSetup(cfg, env, agent, loaded, fingerprint, train, holdout)


@dataclass(frozen=True)
class FinetuneSetup:
    """A fine-tuning's inputs, each file read once. Per seed: its config with the env resolved,
    its pre-trained checkpoint and that pre-training's held-out batch (None without them).
    Shared: the env, and the offline data the method samples (`offline_rows` of every critic
    minibatch; None for methods that never sample it)."""

    cfgs: list[Config]
    env: envs.Env
    pretrained: list[Pretrained | None]
    holdouts: list[OfflineTransition | None]
    offline: OfflineTransition | None
    offline_rows: int


def setup_finetune(cfgs: list[Config]) -> FinetuneSetup:
    """Each checkpoint and held-out split read once, however many seeds start from it (an
    empty env.name becomes the checkpoint's env); the offline data once, for the methods that
    sample it (finetune.dataset, else the checkpoint's dataset)."""
    first = cfgs[0]
    method = METHODS[first.finetune.method]
    rows = offline_rows(method, first.finetune.offline_ratio, first.agent.batch_size)
    for cfg in cfgs:
        check_finetune_inputs(cfg, method, rows)
    paths = sorted({c.finetune.checkpoint for c in cfgs if c.finetune.checkpoint})
    unverified = first.run.allow_unverified_checkpoints
    read = {path: read_pretrained(path, unverified) for path in paths}
    pretrained = [read.get(c.finetune.checkpoint) for c in cfgs]
    cfgs = [
        resolve_env(c, finetuning=True, pretrained=p) for c, p in zip(cfgs, pretrained, strict=True)
    ]
    env = make_env(cfgs[0].env)
    holdout = {p: load_holdout(read[p].run_dir, first.finetune.holdout_rows) for p in paths}
    holdouts = [holdout.get(c.finetune.checkpoint) for c in cfgs]
    offline = _retained_data(cfgs, pretrained, env) if rows else None
    return FinetuneSetup(cfgs, env, pretrained, holdouts, offline, rows)


def _retained_data(
    cfgs: list[Config], pretrained: list[Pretrained | None], env: envs.Env
) -> OfflineTransition:
    """The offline data a method samples online, loaded once for all seeds (which must name the
    same dataset): finetune.dataset, else the one the checkpoint was pre-trained on."""
    sources = sorted(
        {
            c.finetune.dataset or (p.meta.get("dataset", {}).get("path", "") if p else "")
            for c, p in zip(cfgs, pretrained, strict=True)
        }
    )
    if len(sources) > 1:
        raise ConfigError(f"seeds retain offline data from different datasets: {sources}")
    cfg = cfgs[0]
    data_cfg = dataclasses.replace(
        cfg, offline=dataclasses.replace(cfg.offline, dataset=sources[0])
    )
    _, loaded, returns = load_offline_data(data_cfg, env)
    return data.to_device(loaded.arrays, returns)
