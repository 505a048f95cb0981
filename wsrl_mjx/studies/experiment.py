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

One pre-training per seed is shared by every method of that seed with the same pre-training
settings (env, agent and offline sections); a method that changes them, e.g.
`iql: {finetune: {method: iql}, offline: {algorithm: iql}}`, gets its own. By default runs are
sequential (one compiled program per run) and a finished
run is skipped when the experiment is re-run, so a killed experiment continues where it stopped.
`--workers N` runs the independent runs in N processes instead (each fine-tuning after the
pre-training it restores; each run's output in its run dir's worker.log), `--backend ray` runs
each as a Ray task on a cluster (`wsrl_mjx.studies.job_pool`); `--vmap-seeds` runs
each method's seeds as one vmapped program (`run.num_seeds`; one run dir per seed as before),
split over `--seed-devices` devices (CPU devices on a CPU: how one process uses several cores).

Besides the score table, `report.md` holds what the claims rest on: each pre-training's state at
the switch (evaluation, temperature, entropy against its target, Q, and whether they settled),
and per method the score at the switch, the first evaluation after updates start, the minimum,
the final score, the warmup episodes' return and success, and the held-out offline Q/TD.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from wsrl_mjx.config import (
    Config,
    ConfigError,
    expand_time,
    flat_settings,
    from_dict,
    merge,
    read_yaml,
    to_dict,
)
from wsrl_mjx.datasets.scores import normalized_of, references
from wsrl_mjx.methods import check_registered, online_mc_bound
from wsrl_mjx.phases.finetune import run_finetune, run_finetune_seeds
from wsrl_mjx.phases.pipeline import collect
from wsrl_mjx.phases.pretrain import pretrain_seeds, run_pretrain
from wsrl_mjx.runtime.checkpoint import has_checkpoint
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.rundir import atomic_write, git_commit
from wsrl_mjx.studies.job_pool import (  # WORKER_LOG, RunsFailed: re-exported for callers
    WORKER_LOG,  # noqa: F401
    RunsFailed,  # noqa: F401
    run_jobs_parallel,
    run_jobs_ray,
)
from wsrl_mjx.studies.plots import plot_groups

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


def _read_record(path: Path) -> dict:
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


def _write_record(path: Path, record: dict, **dump: Any) -> None:
    """Written atomically, so a kill never leaves an empty or torn bookkeeping file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, default=str, **dump).encode()
    atomic_write(path, lambda f: f.write(text))


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
        return _read_record(done)
    summary = fn()
    record = {k: v for k, v in summary.items() if k not in ("state", "snapshots", "phases")}
    record["commit"] = git_commit(Path(__file__).parent)  # the code the run finished with
    _write_record(done, record)
    return json.loads(json.dumps(record, default=str))


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
        for name, flat_record in (_read_record(record) if record.is_file() else {}).items()
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
    _write_record(record, {**saved, **current}, indent=2)


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the matrix: a pre-training, or a fine-tuning that restores `after`."""

    kind: str  # "pretrain" or "finetune"
    name: str  # method (fine-tuning) or pre-training group
    seed: int
    run_dir: Path
    cfg: Config
    after: Path | None = None  # the pre-training run dir this fine-tuning restores


def plan_jobs(exp: Experiment, dataset: str) -> list[Job]:
    """Every run of the matrix in the sequential order: per seed, per method, its pre-training
    (the first time that group and seed is needed) and then its fine-tuning."""
    jobs: list[Job] = []
    planned: set[Path] = set()
    groups = pretrain_groups(exp)
    for seed in exp.seeds:
        for name, cfg in exp.methods.items():
            group, pre_cfg = groups[name]
            pre_dir = pretrain_dir(exp, group, seed)
            if pre_dir not in planned:
                pre_cfg = dataclasses.replace(
                    _with_run(pre_cfg, pre_dir, seed),
                    offline=dataclasses.replace(pre_cfg.offline, dataset=dataset),
                )
                jobs.append(Job("pretrain", group, seed, pre_dir, pre_cfg))
                planned.add(pre_dir)
            run_dir = exp.run_dir / name / f"seed{seed}"
            ft_cfg = _with_run(cfg, run_dir, seed, checkpoint=str(pre_dir), dataset=dataset)
            jobs.append(Job("finetune", name, seed, run_dir, ft_cfg, after=pre_dir))
    return jobs


def run_job(job: Job) -> dict:
    """Run one job unless it finished earlier; a run killed part-way (checkpoints but no done
    file) is continued."""
    resume = has_checkpoint(job.run_dir)
    if job.kind == "pretrain":
        return _once(job.run_dir, lambda: run_pretrain(job.cfg, resume=resume))
    print(f"[experiment] {job.name} seed {job.seed} -> {job.run_dir}", flush=True)
    return _once(job.run_dir, lambda: run_finetune(job.cfg, resume=resume))


def run_pretrain_group(jobs: list[Job]) -> None:
    """The pre-trainings of one setting not finished yet, as one vmapped program over their
    seeds (`pretrain_seeds`) when all start fresh or all resume; otherwise one at a time."""
    group = [job for job in jobs if not (job.run_dir / DONE_FILE).is_file()]
    killed = [has_checkpoint(j.run_dir) for j in group]
    if len(group) < 2 or len(set(killed)) > 1:
        for job in jobs:
            run_job(job)
        return
    seeds = [j.seed for j in group]
    print(f"[experiment] {group[0].name} seeds {seeds} in one program", flush=True)
    summaries = pretrain_seeds([j.cfg for j in group], resume=killed[0])
    for job, summary in zip(group, summaries, strict=True):
        _once(job.run_dir, lambda summary=summary: summary)


def run_seed_groups(jobs: list[Job], devices: int = 1) -> None:
    """Per method, in the experiment's order: the pre-trainings it restores (those not run yet,
    as one program over their seeds: `run_pretrain_group`), then its fine-tunings as one
    program over its seeds (`run_finetune_seeds`):
    those not finished yet, when all start fresh or all resume; a mix of fresh and killed seeds
    runs one seed at a time. So the first methods' results land before the last pre-trainings
    run. A program's seeds are split over the largest count up to `devices` that divides them
    (`run.num_devices`)."""
    pretrainings = {job.run_dir: job for job in jobs if job.kind == "pretrain"}
    methods: dict[str, list[Job]] = {}
    for job in jobs:
        if job.kind == "finetune":
            methods.setdefault(job.name, []).append(job)
    for name, all_seeds in methods.items():
        needed = [pretrainings.pop(j.after) for j in all_seeds if j.after in pretrainings]
        run_pretrain_group(needed)
        group = [job for job in all_seeds if not (job.run_dir / DONE_FILE).is_file()]
        if not group:
            continue
        killed = [has_checkpoint(j.run_dir) for j in group]
        if len(group) == 1 or len(set(killed)) > 1:
            for job in group:
                run_job(job)
            continue
        seeds = [j.seed for j in group]
        split = max(d for d in range(1, devices + 1) if len(group) % d == 0)
        if split > 1 and online_mc_bound(group[0].cfg):
            split = 1  # online CalQL's MC-return buffer runs on one device
            print(f"[experiment] {name}: online MC bound, seeds on one device", flush=True)
        print(
            f"[experiment] {name} seeds {seeds} in one program over {split} device(s)", flush=True
        )
        cfgs = [
            dataclasses.replace(j.cfg, run=dataclasses.replace(j.cfg.run, num_devices=split))
            for j in group
        ]
        summaries = run_finetune_seeds(cfgs, resume=killed[0])
        for job, summary in zip(group, summaries, strict=True):
            _once(job.run_dir, lambda summary=summary: summary)
    for job in pretrainings.values():  # pre-trainings no method restores (none today)
        run_job(job)


def run_experiment(
    exp: Experiment,
    report_only: bool = False,
    workers: int = 1,
    vmap_seeds: bool = False,
    seed_devices: int = 1,
    backend: str = "processes",
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
) -> dict:
    """Run what is missing, then write the tables and plots. `report_only`: run nothing and
    write them from the runs that finished so far (while the experiment is still going).
    `workers` > 1 runs independent runs in that many processes (pre-trainings first);
    `vmap_seeds` runs each method's seeds as one vmapped program (`run.num_seeds`), split over
    up to `seed_devices` devices. `backend="ray"` runs every run as a Ray task on the cluster at
    `address` (a local one without), each asking for `cpus_per_run` CPUs and `gpus_per_run`
    GPUs (`wsrl_mjx.studies.job_pool`)."""
    if report_only:
        return write_outputs(exp, *finished_runs(exp))
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give 1 or more processes")
    if workers > 1 and vmap_seeds:
        raise ConfigError("--vmap-seeds runs in this process; use it without --workers")
    if backend not in ("processes", "ray"):
        raise ConfigError(f"--backend {backend!r}: give processes or ray")
    if backend == "ray" and (vmap_seeds or workers > 1):
        raise ConfigError("--backend ray places every run itself: drop --workers / --vmap-seeds")
    if address and backend != "ray":
        raise ConfigError("--address names a Ray cluster: use it with --backend ray")
    if seed_devices < 1 or (seed_devices > 1 and not vmap_seeds):
        raise ConfigError(f"--seed-devices {seed_devices}: give 1 or more, with --vmap-seeds")
    if workers > 1 and any(cfg.run.distributed for cfg in exp.methods.values()):
        raise ConfigError("--workers runs independent processes; it cannot use run.distributed")
    check_same_experiment(exp)
    base = from_dict(exp.base)
    dataset = exp.dataset
    if not dataset:
        dataset = _once(exp.run_dir / "behaviour", lambda: collect(base, exp.run_dir))["path"]

    jobs = plan_jobs(exp, dataset)
    if backend == "ray":
        run_jobs_ray(
            jobs, run_job, address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run
        )
    elif workers > 1:
        run_jobs_parallel(jobs, workers, run_job)
    elif vmap_seeds:
        run_seed_groups(jobs, seed_devices)
    else:
        for job in jobs:
            run_job(job)
    runs: dict[str, list[Path]] = {name: [] for name in exp.methods}
    pretrained: dict[str, list[Path]] = {}
    for job in jobs:
        target = pretrained.setdefault(job.name, []) if job.kind == "pretrain" else runs[job.name]
        target.append(job.run_dir)
    return write_outputs(exp, runs, pretrained)


def finished_runs(exp: Experiment) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(fine-tuning runs, pre-trainings) of `exp` that hold a done file."""
    groups = pretrain_groups(exp)
    done = lambda d: (d / DONE_FILE).is_file()  # noqa: E731
    runs = {
        name: [d for s in exp.seeds if done(d := exp.run_dir / name / f"seed{s}")]
        for name in exp.methods
    }
    pretrained: dict[str, list[Path]] = {}
    for group, _ in groups.values():
        dirs = [d for s in exp.seeds if done(d := pretrain_dir(exp, group, s))]
        pretrained[group] = dirs
    runs = {name: dirs for name, dirs in runs.items() if dirs}
    if not runs:
        raise ConfigError(f"{exp.run_dir}: no finished run to report yet")
    return runs, pretrained


def write_outputs(exp: Experiment, runs: dict, pretrained: dict) -> dict:
    """results.json/.md (scores at budgets), report.md (the switch) and curves.png."""
    dataset = exp.dataset or str(exp.run_dir / "behaviour")
    seeds = sorted({int(d.name.removeprefix("seed")) for dirs in runs.values() for d in dirs})
    table = results_table(runs, exp.budgets)
    record = {"title": exp.title, "dataset": dataset, "seeds": seeds, "table": table}
    out = exp.run_dir / exp.outputs
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(record, indent=2))
    markdown = results_markdown(exp, table, runs)
    (out / "results.md").write_text(markdown)
    report = switch_report(exp, runs, pretrained)
    (out / "report.md").write_text(report)
    plot = plot_groups(runs, out / "curves.png")
    print(markdown)
    print(report)
    print(f"[experiment] tables: {out / 'results.md'}, {out / 'report.md'}; plots: {plot}")
    return {"table": table, "runs": {k: [str(p) for p in v] for k, v in runs.items()}}


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


def eval_at(records: list[dict], budget: int, key: str = "eval_return") -> float:
    """`key` of the last evaluation at or before `budget` env steps (NaN if none, or if it
    lacks `key`: a task without a success rate)."""
    evals = [r for r in records if r["phase"] == "eval" and r["env_steps"] <= budget]
    return evals[-1].get(key, math.nan) if evals else math.nan


def results_table(runs: dict[str, list[Path]], budgets: tuple[int, ...]) -> dict:
    """{method: {budget or "final": {mean, std, min, max, seeds, success_seeds}}}: statistics of
    the returns (`seeds`: per seed) and each seed's success rate (NaN for tasks without one);
    "final" is each run's last evaluation (methods with a warmup may end a few steps past the
    others)."""
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
                # Sample standard deviation over seeds (NaN for one seed).
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                "min": float(np.min(values)),
                "max": float(np.max(values)),
                "seeds": values.tolist(),
                "success_seeds": [eval_at(r, budget, "eval_success") for r in records],
            }
        row["final"]["env_steps"] = ends
        table[name] = row
    return table


def results_markdown(exp: Experiment, table: dict, runs: dict | None = None) -> str:
    columns = list(next(iter(table.values())))
    seeds = {name: len(row["final"]["seeds"]) for name, row in table.items()}
    partial = [f"{n} ({k} of {len(exp.seeds)})" for n, k in seeds.items() if k < len(exp.seeds)]
    lines = [
        f"# {exp.title}",
        "",
        f"Evaluation return (mean ± sample std over seeds {list(exp.seeds)}, deterministic policy) "
        "at env-step budgets and at the end of each run."
        + (f" Partial: fewer seeds finished for {', '.join(partial)}." if partial else ""),
        "",
        "| method | "
        + " | ".join("end of run" if c == "final" else f"{c} steps" for c in columns)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, row in table.items():
        cells = [f"{row[c]['mean']:.1f} ± {row[c]['std']:.1f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    env = exp.base.get("env", {}).get("name", "")
    refs = references(env)
    if refs is not None:
        lines += [
            "",
            f"Normalized score ({NORMALIZED_FROM[refs.metric]}, wsrl_mjx.datasets.scores):",
            "",
        ]
        lines += lines[4:6]
        for name, row in table.items():
            cells = [_normalized_cell(env, row[c]) for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


NORMALIZED_FROM = {"return": "D4RL's reference returns", "success": "100 x success rate"}


def _normalized_cell(env: str, cell: dict) -> str:
    """Mean ± sample std over seeds of the normalized score ("n/a" if a seed has none)."""
    records = zip(cell["seeds"], cell["success_seeds"], strict=True)
    scores = [normalized_of(env, {"return": r, "success": s}) for r, s in records]
    if None in scores:
        return "n/a"
    spread = np.std(scores, ddof=1) if len(scores) > 1 else math.nan
    return f"{np.mean(scores):.1f} ± {spread:.1f}"


# --- the switch report -------------------------------------------------------------------------

SETTLE_TOLERANCE = 0.1  # relative change between the last two fifths of pre-training


def _fifths(values: list[float]) -> tuple[float, float]:
    """Means of the second-to-last and the last fifth of a series."""
    k = max(len(values) // 5, 1)
    return float(np.mean(values[-2 * k : -k] or values[:1])), float(np.mean(values[-k:]))


def pretrain_state(run_dir: Path) -> dict:
    """The agent at the switch: last eval, alpha, entropy vs its target, Q on training batches,
    and whether alpha, entropy and Q settled (changed by < 10 % between the last two fifths of
    the logged chunks; entropy relative to |target| + 1)."""
    records = read_metrics(run_dir)
    train = [r for r in records if r["phase"] == "pretrain"]
    evals = [r for r in records if r["phase"] == "eval"]
    cfg = from_dict(_config_of(run_dir))
    done = _read_record(run_dir / DONE_FILE)
    out = {
        "algorithm": cfg.offline.algorithm,
        "steps": train[-1]["env_steps"] if train else 0,
        "eval_return": evals[-1]["eval_return"] if evals else math.nan,
        "eval_success": evals[-1].get("eval_success", math.nan) if evals else math.nan,
        "target_entropy": done.get("target_entropy", math.nan),
    }
    settled = True
    for key in ("alpha", "entropy", "q_pred"):
        series = [r[key] for r in train if key in r]
        if not series:
            out[key] = math.nan
            continue
        before, last = _fifths(series)
        out[key] = series[-1]
        scale = abs(out["target_entropy"]) + 1.0 if key == "entropy" else abs(before) + 1e-8
        settled &= abs(last - before) / scale < SETTLE_TOLERANCE
    out["settled"] = settled
    return out


def _config_of(run_dir: Path) -> dict:
    return read_yaml(run_dir / "config.yaml")


def run_diagnostics(run_dir: Path) -> dict:
    """Per fine-tuning run: scores around the switch, warmup episodes, held-out offline Q/TD."""
    records = read_metrics(run_dir)
    evals = [r for r in records if r["phase"] == "eval"]
    warmup = [r for r in records if r["phase"] == "warmup"]
    online = [r for r in records if r["phase"] not in ("eval", "warmup", "q_trace")]
    switch = warmup[-1]["env_steps"] if warmup else 0
    at_switch = [e for e in evals if e["env_steps"] <= switch][-1]
    after = [e for e in evals if e["env_steps"] > switch]
    episodes = sum(r.get("episodes", 0) for r in warmup)
    has_success = any("train_success" in r for r in warmup)  # tasks with a success signal
    success = sum(r.get("train_success", 0) * r.get("episodes", 0) for r in warmup)
    returns = sum(r.get("train_return", 0) * r.get("episodes", 0) for r in warmup)
    q = [r["offline_q"] for r in online if "offline_q" in r]
    td = [r["offline_td"] for r in online if "offline_td" in r]
    return {
        "switch_step": switch,
        "at_switch": at_switch["eval_return"],
        "first_after": after[0]["eval_return"] if after else math.nan,
        "min_after": min((e["eval_return"] for e in after), default=math.nan),
        "recovered_at": recovered_at(after, at_switch["eval_return"]),
        "final": evals[-1]["eval_return"],
        # Mean evaluation episode length: in goal tasks that end on success, shorter is better
        # (it still moves when the success rate sits at 1).
        "length_at_switch": at_switch.get("eval_length", math.nan),
        "final_length": evals[-1].get("eval_length", math.nan),
        "warmup_episodes": episodes,
        "warmup_return": returns / episodes if episodes else math.nan,
        "warmup_success": success / episodes if episodes and has_success else math.nan,
        "offline_q": (q[0], min(q), q[-1]) if q else (math.nan,) * 3,
        "offline_td": (td[0], max(td), td[-1]) if td else (math.nan,) * 3,
    }


def recovered_at(after: list[dict], switch_score: float) -> float:
    """The first evaluation at or above the switch's score that follows the lowest evaluation
    after the switch, counted only when that lowest one is below the switch's score (a dip).
    NaN: no dip, or never back."""
    if not after:
        return math.nan
    lowest = min(range(len(after)), key=lambda i: after[i]["eval_return"])
    if after[lowest]["eval_return"] >= switch_score:
        return math.nan
    back = (e["env_steps"] for e in after[lowest:] if e["eval_return"] >= switch_score)
    return next(back, math.nan)


def _mean(values) -> float:
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else math.nan


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.{digits}f}"


def _back_at(steps: list[float]) -> str:
    back = [s for s in steps if not math.isnan(s)]
    return f"{np.mean(back):.0f} ({len(back)}/{len(steps)})" if back else f"never (0/{len(steps)})"


def switch_report(exp: Experiment, runs: dict[str, list[Path]], pretrained: dict) -> str:
    lines = [
        f"# {exp.title}: the switch in detail",
        "",
        "## Pre-training at the switch",
        "",
        "Last logged chunk of each pre-training (alpha, policy entropy against its target, mean Q "
        "on training batches) and its last evaluation. *Settled*: alpha, entropy and Q changed "
        f"by less than {SETTLE_TOLERANCE:.0%} between the last two fifths of the logged chunks "
        "(entropy relative to |target| + 1).",
        "",
        "| run | algorithm | gradient steps | eval return | alpha | entropy / target | Q "
        "| settled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dirs in pretrained.values():
        for d in dirs:
            p = pretrain_state(d)
            lines.append(
                f"| {d.parent.name}/{d.name} | {p['algorithm']} | {p['steps']} | "
                f"{_fmt(p['eval_return'])} | {_fmt(p['alpha'], 3)} | "
                f"{_fmt(p['entropy'])} / {_fmt(p['target_entropy'], 1)} | {_fmt(p['q_pred'], 1)} | "
                f"{'yes' if p['settled'] else 'no'} |"
            )
    lines += [
        "",
        "## Fine-tuning around the switch (means over seeds)",
        "",
        "*at switch*: the last evaluation before the first update (for WSRL the pre-trained "
        "policy after its warmup); *first after*: the first evaluation after updates start; "
        "*min after*: the lowest evaluation after that (the dip); *length*: mean evaluation "
        "episode length at the switch -> at the end (goal tasks end on success); *back at*: "
        "after a dip only, the first evaluation after the lowest one that is at or above the "
        "switch's score again (env steps, mean over the seeds that dipped and got back); "
        "warmup: the episodes that ended before the first update; held-out offline Q and TD: "
        "first / extreme / last.",
        "",
        "| method | first update at | at switch | first after | min after | back at | final "
        "| length | warmup episodes | warmup return | warmup success "
        "| offline Q first / min / last | offline TD first / max / last |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, dirs in runs.items():
        d = [run_diagnostics(x) for x in dirs]
        avg = {k: _mean([x[k] for x in d]) for k in d[0] if not isinstance(d[0][k], tuple)}
        q = [_mean([x["offline_q"][i] for x in d]) for i in range(3)]
        td = [_mean([x["offline_td"][i] for x in d]) for i in range(3)]
        lines.append(
            f"| {name} | {avg['switch_step']:.0f} | {_fmt(avg['at_switch'])} | "
            f"{_fmt(avg['first_after'])} | {_fmt(avg['min_after'])} | "
            f"{_back_at([x['recovered_at'] for x in d])} | {_fmt(avg['final'])} | "
            f"{_fmt(avg['length_at_switch'], 0)} -> {_fmt(avg['final_length'], 0)} | "
            f"{avg['warmup_episodes']:.0f} | {_fmt(avg['warmup_return'])} | "
            f"{_fmt(avg['warmup_success'])} | {' / '.join(_fmt(v, 1) for v in q)} | "
            f"{' / '.join(_fmt(v, 3) for v in td)} |"
        )
    return "\n".join(lines) + "\n"
