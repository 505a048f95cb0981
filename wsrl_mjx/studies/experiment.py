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
from pathlib import Path
from typing import Any

from wsrl_mjx.config import Config, ConfigError
from wsrl_mjx.methods import online_mc_bound
from wsrl_mjx.phases.finetune import run_finetune, run_finetune_seeds
from wsrl_mjx.phases.pipeline import collect
from wsrl_mjx.phases.pretrain import pretrain_seeds, run_pretrain
from wsrl_mjx.runtime.checkpoint import has_checkpoint
from wsrl_mjx.runtime.policy import from_dict
from wsrl_mjx.runtime.rundir import git_commit
from wsrl_mjx.studies.experiment_report import finished_runs, write_outputs
from wsrl_mjx.studies.experiment_spec import (
    DONE_FILE,
    Experiment,
    check_same_experiment,
    pretrain_dir,
    pretrain_groups,
    read_record,
    write_record,
)
from wsrl_mjx.studies.job_pool import (  # WORKER_LOG, RunsFailed: re-exported for callers
    WORKER_LOG,  # noqa: F401
    RunsFailed,  # noqa: F401
    run_jobs_parallel,
    run_jobs_ray,
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
        return read_record(done)
    summary = fn()
    record = {k: v for k, v in summary.items() if k not in ("state", "snapshots", "phases")}
    record["commit"] = git_commit(Path(__file__).parent)  # the code the run finished with
    write_record(done, record)
    return json.loads(json.dumps(record, default=str))


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
