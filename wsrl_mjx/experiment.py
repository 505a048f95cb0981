"""`experiment`: a methods x seeds matrix through the same loop, then a results table and plots.

An experiment file (configs/experiments/*.yaml):

    base: {...}                # a run config (sections as in configs/*.yaml) shared by every run
    dataset: path.npz          # optional; otherwise `collect` makes one (collect section of base)
    seeds: [0, 1, 2]
    budgets: [5000, 10000]     # env-step budgets of the results table
    methods:                   # name -> overrides of base for that method
      wsrl: {}
      wsrl-no-warmup: {online: {warmup_steps: 0}}
      calql: {finetune: {method: calql}}

One pre-training per seed is shared by every method of that seed. Runs are sequential (one
compiled program per method; vmapping seeds is not implemented) and a finished run is skipped
when the experiment is re-run, so a killed experiment continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from wsrl_mjx.checkpoint import Checkpointer
from wsrl_mjx.config import Config, ConfigError, from_dict, merge, read_yaml, to_dict
from wsrl_mjx.finetune import run_finetune
from wsrl_mjx.logger import read_metrics
from wsrl_mjx.pipeline import collect, resolve_run_dir
from wsrl_mjx.plots import plot_groups
from wsrl_mjx.pretrain import run_pretrain

KEYS = {"base", "dataset", "seeds", "budgets", "methods", "run_dir", "title"}
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


def load_experiment(path: str | Path, overrides: dict | None = None) -> Experiment:
    path = Path(path)
    spec = read_yaml(path, "experiment file") or {}
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(KEYS))}"
        )
    if not spec.get("methods"):
        raise ConfigError(f"{path}: 'methods' must map method names to config overrides")
    base = merge(spec.get("base") or {}, overrides or {})
    methods = {}
    for name, changes in spec["methods"].items():
        try:
            methods[name] = from_dict(merge(base, changes or {}))
        except ConfigError as e:
            raise ConfigError(f"{path}: method {name!r}: {e}") from None
    seeds = tuple(int(s) for s in spec.get("seeds", [0]))
    budgets = tuple(int(b) for b in spec.get("budgets", []))
    # `--set run.run_dir=...` moves the whole experiment (each run's own dir is set per run).
    run_dir = (overrides or {}).get("run", {}).get("run_dir") or spec.get(
        "run_dir", f"runs/experiments/{path.stem}"
    )
    return Experiment(
        spec.get("title", path.stem),
        base,
        methods,
        seeds,
        budgets,
        spec.get("dataset", ""),
        resolve_run_dir(run_dir),
    )


def _with_run(cfg: Config, run_dir: Path, seed: int, **finetune: Any) -> Config:
    return dataclasses.replace(
        cfg,
        run=dataclasses.replace(cfg.run, run_dir=str(run_dir), seed=seed),
        finetune=dataclasses.replace(cfg.finetune, **finetune),
    )


def _once(run_dir: Path, fn) -> dict:
    """Run `fn()` unless `run_dir` already finished; record what it returned (JSON part)."""
    done = run_dir / DONE_FILE
    if done.is_file():
        print(f"[experiment] {run_dir} finished earlier: skipped", flush=True)
        return json.loads(done.read_text())
    summary = fn()
    record = {k: v for k, v in summary.items() if k not in ("state", "snapshots", "phases")}
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(record, default=str))
    return record


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}


def check_same_experiment(exp: Experiment) -> None:
    """Finished runs are reused on a re-run, so a run_dir must not mix settings: refuse a re-run
    in which a method already recorded there has other settings (e.g. other --set values).
    New methods and seeds may be added."""
    record = exp.run_dir / SETTINGS_FILE
    settings = {
        name: _flatten(
            json.loads(json.dumps({"dataset": exp.dataset, **to_dict(cfg)}, default=str))
        )
        for name, cfg in exp.methods.items()
    }
    saved = json.loads(record.read_text()) if record.is_file() else {}
    for name in saved.keys() & settings.keys():
        old, new = saved[name], settings[name]
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if changed:
            key = changed[0].rstrip(".")
            raise ConfigError(
                f"{exp.run_dir} holds method {name!r} with other settings ({key} differs: "
                f"{old.get(changed[0])!r} there, {new.get(changed[0])!r} now); its finished runs "
                "would be reused: choose another run_dir (--set run.run_dir=...) or delete that one"
            )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({**saved, **settings}, indent=2))


def run_experiment(exp: Experiment) -> dict:
    check_same_experiment(exp)
    base = from_dict(exp.base)
    dataset = exp.dataset
    if not dataset:
        dataset = _once(exp.run_dir / "behaviour", lambda: collect(base, exp.run_dir))["path"]

    runs: dict[str, list[Path]] = {name: [] for name in exp.methods}
    for seed in exp.seeds:
        pre_dir = exp.run_dir / "pretrain" / f"seed{seed}"
        pre_cfg = dataclasses.replace(
            _with_run(base, pre_dir, seed),
            offline=dataclasses.replace(base.offline, dataset=dataset),
        )
        pre_resume = Checkpointer(pre_dir / "checkpoints").latest_step() is not None
        _once(pre_dir, lambda cfg=pre_cfg, r=pre_resume: run_pretrain(cfg, resume=r))
        for name, cfg in exp.methods.items():
            run_dir = exp.run_dir / name / f"seed{seed}"
            ft_cfg = _with_run(cfg, run_dir, seed, checkpoint=str(pre_dir), dataset=dataset)
            print(f"[experiment] {name} seed {seed} -> {run_dir}", flush=True)
            # A run killed part-way has checkpoints but no done file: continue it.
            resume = Checkpointer(run_dir / "checkpoints").latest_step() is not None
            _once(run_dir, lambda cfg=ft_cfg, r=resume: run_finetune(cfg, resume=r))
            runs[name].append(run_dir)

    table = results_table(runs, exp.budgets)
    record = {"title": exp.title, "dataset": dataset, "seeds": list(exp.seeds), "table": table}
    (exp.run_dir / "results.json").write_text(json.dumps(record, indent=2))
    markdown = results_markdown(exp, table)
    (exp.run_dir / "results.md").write_text(markdown)
    plot = plot_groups(runs, exp.run_dir / "curves.png")
    print(markdown)
    print(f"[experiment] table: {exp.run_dir / 'results.md'}; plots: {plot}")
    return {"table": table, "runs": {k: [str(p) for p in v] for k, v in runs.items()}}


def eval_at(records: list[dict], budget: int) -> float:
    """The last evaluation at or before `budget` env steps (NaN if none)."""
    evals = [r for r in records if r["phase"] == "eval" and r["env_steps"] <= budget]
    return evals[-1]["eval_return"] if evals else math.nan


def results_table(runs: dict[str, list[Path]], budgets: tuple[int, ...]) -> dict:
    """{method: {budget or "final": {mean, std, min, max, seeds}}}; "final" is each run's last
    evaluation (methods with a warmup may end a few steps past the others)."""
    table = {}
    for name, dirs in runs.items():
        records = [read_metrics(d) for d in dirs]
        ends = [
            max((r["env_steps"] for r in rec if r["phase"] == "eval"), default=None)
            for rec in records
        ]
        if None in ends:
            raise ConfigError(
                f"{dirs[ends.index(None)]} logged no evaluation: is the run complete?"
            )
        row = {}
        for budget, column in [*((b, str(b)) for b in budgets), (max(ends), "final")]:
            values = np.array([eval_at(r, budget) for r in records])
            row[column] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
                "seeds": values.tolist(),
            }
        row["final"]["env_steps"] = ends
        table[name] = row
    return table


def results_markdown(exp: Experiment, table: dict) -> str:
    columns = list(next(iter(table.values())))
    lines = [
        f"# {exp.title}",
        "",
        f"Evaluation return (mean ± std over seeds {list(exp.seeds)}, deterministic policy) at "
        "env-step budgets and at the end of each run.",
        "",
        "| method | "
        + " | ".join("end of run" if c == "final" else f"{c} steps" for c in columns)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, row in table.items():
        cells = [f"{row[c]['mean']:.1f} ± {row[c]['std']:.1f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
