"""An experiment file read and checked (`load_experiment`, `check_spec`), the bookkeeping files of
its run dir (done.json, experiment.json) and where its runs go: the pre-training groups its
methods share and their folders. The file's format: `wsrl_mjx.studies.experiment`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from wsrl_mjx.config import Config, ConfigError, merge, read_yaml, to_dict
from wsrl_mjx.methods import check_registered
from wsrl_mjx.runtime.policy import expand_time, flat_settings, from_dict
from wsrl_mjx.runtime.rundir import atomic_write

KEYS = {"base", "dataset", "seeds", "budgets", "methods", "run_dir", "title", "outputs"}
DONE_FILE = "done.json"
SETTINGS_FILE = "experiment.json"


@dataclasses.dataclass(frozen=True)
class Experiment:
    title: str
    base: dict
    methods: dict[str, Config]  # name -> the config of seed 0 (seed and run_dir set per run)
    seeds: tuple[int, ...]
    budgets: tuple[int, ...]
    dataset: str
    run_dir: Path
    # Folder (inside run_dir) for results.md/.json, report.md and curves.png: experiments that
    # share a run_dir (and so its finished runs and pre-trainings) write their own tables.
    outputs: str = ""


def load_experiment(
    path: str | Path, overrides: dict | None = None, dataset: str | None = None
) -> Experiment:
    """An experiment file with `--set` overrides of its base config; `dataset` replaces the
    file's own (`{env}` expands in both)."""
    path = Path(path)
    spec = read_yaml(path, "experiment file") or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a mapping of {', '.join(sorted(KEYS))}")
    unknown = sorted(map(str, set(spec) - KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(KEYS))}"
        )
    check_spec(path, spec)
    base = merge(spec.get("base") or {}, overrides or {})
    methods = {}
    for name, changes in spec["methods"].items():
        try:
            methods[name] = check_registered(from_dict(merge(base, changes or {})))
        except ConfigError as e:
            raise ConfigError(f"{path}: method {name!r}: {e}") from None
    seeds = tuple(spec.get("seeds", [0]))
    budgets = tuple(spec.get("budgets", []))
    # `--set run.run_dir=...` moves the whole experiment (each run's own dir is set per run).
    run_dir = (overrides or {}).get("run", {}).get("run_dir") or spec.get(
        "run_dir", f"runs/experiments/{path.stem}"
    )
    # `{env}` in the title, dataset and run_dir is the base config's env.name, so one file
    # serves several tasks (`--set env.name=...`).
    env_name = next(iter(methods.values())).env.name
    expand = lambda text: str(text).replace("{env}", env_name)  # noqa: E731
    return Experiment(
        expand(spec.get("title", path.stem)),
        base,
        methods,
        seeds,
        budgets,
        expand(spec.get("dataset", "") if dataset is None else dataset),
        Path(expand_time(expand(run_dir))),
        spec.get("outputs", ""),
    )


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_spec(path: Path, spec: dict) -> None:
    """The experiment file's own keys: types, and names that are safe as folder names (a method
    name is its runs' folder; `outputs` a folder inside the run dir)."""

    def fail(message: str) -> None:
        raise ConfigError(f"{path}: {message}")

    methods = spec.get("methods")
    if not isinstance(methods, dict) or not methods:
        fail("'methods' must map method names to config overrides")
    for name, changes in methods.items():
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
            fail(f"method name {name!r}: use letters, digits, '_', '-' and '.' (a folder name)")
        if changes is not None and not isinstance(changes, dict):
            fail(f"method {name!r}: expected a mapping of config overrides, got {changes!r}")
    for key in ("seeds", "budgets"):
        values = spec.get(key, [])
        if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
        ):
            fail(f"'{key}' must be a list of integers >= 0, got {values!r}")
    if not spec.get("seeds", [0]):
        fail("'seeds' is empty")
    if not isinstance(spec.get("base") or {}, dict):
        fail(f"'base' must be a mapping (a run config), got {spec['base']!r}")
    for key in ("title", "dataset", "run_dir", "outputs"):
        if not isinstance(spec.get(key, ""), str):
            fail(f"'{key}' must be a string, got {spec[key]!r}")
    outputs = spec.get("outputs", "")
    if outputs and (Path(outputs).is_absolute() or ".." in Path(outputs).parts):
        fail(f"'outputs' {outputs!r} must be a folder inside the experiment's run dir")


def read_record(path: Path) -> dict:
    """A bookkeeping JSON file (done.json, experiment.json); a damaged one is a clear error."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is damaged ({e}); delete it to redo what it records") from None
    if not isinstance(record, dict):
        raise ConfigError(
            f"{path} is damaged (not a JSON object); delete it to redo what it records"
        )
    return record


def write_record(path: Path, record: dict, **dump: Any) -> None:
    """Written atomically, so a kill never leaves an empty or torn bookkeeping file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, default=str, **dump).encode()
    atomic_write(path, lambda f: f.write(text))


def check_same_experiment(exp: Experiment) -> None:
    """Finished runs are reused on a re-run, so a run_dir must not mix settings: refuse a re-run
    in which a method already recorded there has other settings (e.g. other --set values).
    New methods and seeds may be added. A key the record does not hold (one added to the
    schema since) counts as unchanged while it has its default value."""
    record = exp.run_dir / SETTINGS_FILE
    flat = lambda cfg: flat_settings({"dataset": exp.dataset, **to_dict(cfg)})  # noqa: E731
    current = {name: flat(cfg) for name, cfg in exp.methods.items()}
    defaults = flat(Config())
    # Records written before the keys lost their trailing dot ("env.name.") still compare.
    saved = {
        name: {k.rstrip("."): v for k, v in flat_record.items()}
        for name, flat_record in (read_record(record) if record.is_file() else {}).items()
    }
    for name in saved.keys() & current.keys():
        old, new = saved[name], current[name]
        changed = sorted(
            k
            for k in old.keys() | new.keys()
            if old.get(k, defaults.get(k)) != new.get(k, defaults.get(k))
            and k != "run.run_dir"  # a moved experiment is the same experiment
        )
        if changed:
            key = changed[0]
            raise ConfigError(
                f"{exp.run_dir} holds method {name!r} with other settings ({key} differs: "
                f"{old.get(key)!r} there, {new.get(key)!r} now); its finished runs "
                "would be reused: choose another run_dir (--set run.run_dir=...) or delete that one"
            )
    write_record(record, {**saved, **current}, indent=2)


PRETRAIN_SECTIONS = ("env", "agent", "offline")
# Keys of those sections that pre-training never reads (it takes one critic step per batch).
ONLINE_ONLY = {"agent": ("critic_minibatches", "idle_optimizer_steps")}


def pretrain_settings(cfg: Config) -> dict:
    settings = {k: to_dict(getattr(cfg, k)) for k in PRETRAIN_SECTIONS}
    for section, keys in ONLINE_ONLY.items():
        for key in keys:
            settings[section].pop(key)
    return settings


def pretrain_groups(exp: Experiment) -> dict[str, tuple[str, Config]]:
    """method -> (pre-training name, config to pre-train with). Methods whose pre-training
    settings (env, agent, offline) are the same share one pre-training per seed: "pretrain" for
    the base config's, otherwise "pretrain-<first method with those settings>" (e.g. an IQL
    baseline, or an ablation that changes the networks)."""
    base = from_dict(exp.base)
    named = {json.dumps(pretrain_settings(base), sort_keys=True, default=str): "pretrain"}
    groups = {}
    for name, cfg in exp.methods.items():
        key = json.dumps(pretrain_settings(cfg), sort_keys=True, default=str)
        groups[name] = (named.setdefault(key, f"pretrain-{name}"), cfg)
    return groups


def pretrain_dir(exp: Experiment, group: str, seed: int) -> Path:
    return exp.run_dir / group / f"seed{seed}"
