"""`experiment --workers N`: the plan of runs, and its execution in N spawned processes.

The process tests run a cheap stand-in for each run (it records when and where it ran), so
they check the scheduling itself: processes, order, concurrency and failures.
"""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from wsrl_mjx.config import ConfigError
from wsrl_mjx.studies.experiment import WORKER_LOG, Job, RunsFailed, plan_jobs, run_jobs_parallel
from wsrl_mjx.studies.experiment_spec import load_experiment

SPEC = """
title: workers
seeds: [0, 1]
base:
  env: {name: PointMass}
  agent: {actor_hidden: [8, 8], critic_hidden: [8, 8], num_critics: 2}
methods:
  wsrl: {}
  calql: {finetune: {method: calql}}
  iql: {finetune: {method: iql}, offline: {algorithm: iql}}
"""


@pytest.fixture
def jobs(tmp_path) -> list[Job]:
    path = tmp_path / "workers.yaml"
    path.write_text(SPEC)
    exp = load_experiment(path, {"run": {"run_dir": str(tmp_path / "exp")}})
    return plan_jobs(exp, "data.npz")


def _trace(job: Job) -> dict:
    return json.loads((job.run_dir / "trace.json").read_text())


def traced_runner(job: Job) -> dict:
    """Stands in for a run: checks its pre-training finished, records pid and times. The two
    pre-trainings of a seed wait for each other to start: with one process they would time
    out, so finishing proves they ran at the same time. The IQL pre-training of seed 1 fails."""
    start = time.time()
    (job.run_dir / "started").touch()
    if job.kind == "finetune":
        assert "end" in json.loads((job.after / "trace.json").read_text())
    else:
        other = "pretrain-iql" if job.name == "pretrain" else "pretrain"
        partner = job.run_dir.parents[1] / other / f"seed{job.seed}"
        deadline = time.time() + 120
        while not (partner / "started").exists():
            if time.time() > deadline:
                raise TimeoutError(f"{partner} never started beside {job.run_dir}")
            time.sleep(0.05)
        if job.name == "pretrain-iql" and job.seed == 1:
            raise ConfigError("injected failure")
    if job.name == "calql" and job.seed == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # a dead worker, e.g. the kernel's OOM killer
    print(f"running {job.kind} {job.name}")  # goes to the run's worker.log
    record = {"pid": os.getpid(), "start": start, "end": time.time()}
    (job.run_dir / "trace.json").write_text(json.dumps(record))
    return record


def test_plan_pretrains_once_per_group_and_seed_before_its_finetunings(jobs):
    pre = [j for j in jobs if j.kind == "pretrain"]
    fine = [j for j in jobs if j.kind == "finetune"]
    assert [(j.name, j.seed) for j in pre] == [
        ("pretrain", 0),
        ("pretrain-iql", 0),
        ("pretrain", 1),
        ("pretrain-iql", 1),
    ]
    assert len(fine) == 6
    order = {j.run_dir: i for i, j in enumerate(jobs)}
    for j in fine:
        group = "pretrain-iql" if j.name == "iql" else "pretrain"
        assert j.after == j.run_dir.parents[1] / group / f"seed{j.seed}"
        assert order[j.after] < order[j.run_dir]
        assert j.cfg.finetune.checkpoint == str(j.after) and j.cfg.run.seed == j.seed
    assert all(j.cfg.offline.dataset == "data.npz" and j.after is None for j in pre)
    assert {j.cfg.offline.algorithm for j in pre if j.name == "pretrain-iql"} == {"iql"}


def test_workers_run_jobs_in_parallel_and_a_failure_or_dead_worker_fails_only_its_runs(jobs):
    with pytest.raises(RunsFailed) as failure:
        run_jobs_parallel(jobs, 2, runner=traced_runner)
    broken = next(j.run_dir for j in jobs if j.name == "pretrain-iql" and j.seed == 1)
    killed = next(j.run_dir for j in jobs if j.name == "calql" and j.seed == 0)
    skipped = {j.run_dir for j in jobs if j.after == broken}
    message = str(failure.value)
    assert f"{broken}: ConfigError: injected failure" in message
    assert f"{killed}: its worker process died (signal 9)" in message
    assert len(skipped) == 1 and f"{next(iter(skipped))}: skipped" in message
    assert message.startswith("3 run(s) did not finish")
    ran = [j for j in jobs if (j.run_dir / "trace.json").exists()]
    # Everything but the failed pre-training, the fine-tuning that needed it and the killed
    # worker's run finished, in other processes, 2 at a time at most.
    assert {j.run_dir for j in ran} == {j.run_dir for j in jobs} - {broken, killed, *skipped}
    traces = {j.run_dir: _trace(j) for j in ran}
    assert os.getpid() not in {t["pid"] for t in traces.values()}
    spans = sorted((t["start"], t["end"]) for t in traces.values())
    assert max(sum(s <= start < e for s, e in spans) for start, _ in spans) <= 2
    for j in ran:
        if j.after is not None:
            assert traces[j.after]["end"] <= traces[j.run_dir]["start"]
        assert f"running {j.kind} {j.name}" in (j.run_dir / WORKER_LOG).read_text()
    assert "ConfigError: injected failure" in (broken / WORKER_LOG).read_text()  # traceback


def test_the_command_exits_1_naming_the_failed_runs(monkeypatch, tmp_path, capsys):
    from wsrl_mjx import run
    from wsrl_mjx.studies import experiment

    def fail(*args, **kwargs):
        raise RunsFailed("1 run(s) did not finish: runs/x/wsrl/seed0")

    path = tmp_path / "workers.yaml"
    path.write_text(SPEC)
    monkeypatch.setattr(experiment, "run_experiment", fail)
    assert run.main(["experiment", "--config", str(path), "--workers", "2"]) == 1
    assert "error: 1 run(s) did not finish: runs/x/wsrl/seed0" in capsys.readouterr().err


def test_workers_must_be_positive(tmp_path):
    from wsrl_mjx.studies.experiment import run_experiment

    path = tmp_path / "workers.yaml"
    path.write_text(SPEC)
    exp = load_experiment(path, {"run": {"run_dir": str(tmp_path / "exp")}})
    with pytest.raises(ConfigError, match="--workers 0"):
        run_experiment(exp, workers=0)
    with pytest.raises(ConfigError, match="--seed-devices 2: give 1 or more, with --vmap-seeds"):
        run_experiment(exp, seed_devices=2)
    assert not Path(tmp_path / "exp").exists()  # refused before anything was written


def test_vmap_seeds_groups_each_methods_fresh_seeds_into_one_program(jobs, monkeypatch):
    """--vmap-seeds: per method, the pre-trainings it needs (each once, its seeds in one
    program), then one program over
    its seeds not finished yet; a method with a killed seed beside a fresh one runs seed by
    seed; finished seeds are left alone. --seed-devices 3: the 2 seeds go over the 2 devices
    that divide them."""
    from wsrl_mjx.runtime.checkpoint import Checkpointer
    from wsrl_mjx.studies import experiment

    ran, programs = [], []

    def fake_job(job):
        ran.append((job.kind, job.name, job.seed))
        return {}

    def fake_seeds(cfgs, resume):
        programs.append(([c.run.seed for c in cfgs], resume, {c.run.num_devices for c in cfgs}))
        return [{"run_dir": c.run.run_dir} for c in cfgs]

    pretrain_programs = []

    def fake_pretrain_seeds(cfgs, resume):
        job_of = {str(j.run_dir): j for j in jobs}
        names = [(job_of[c.run.run_dir].name, c.run.seed) for c in cfgs]
        pretrain_programs.append((names, resume))
        ran.extend(("pretrain", name, seed) for name, seed in names)
        return [{"run_dir": c.run.run_dir} for c in cfgs]

    monkeypatch.setattr(experiment, "run_job", fake_job)
    monkeypatch.setattr(experiment, "run_finetune_seeds", fake_seeds)
    monkeypatch.setattr(experiment, "pretrain_seeds", fake_pretrain_seeds)
    by_name = {(j.kind, j.name, j.seed): j for j in jobs}
    done = by_name[("finetune", "calql", 0)].run_dir
    done.mkdir(parents=True)
    (done / experiment.DONE_FILE).write_text("{}")
    killed = by_name[("finetune", "iql", 0)].run_dir / "checkpoints"
    monkeypatch.setattr(
        Checkpointer, "latest_step", lambda self: 10 if Path(self.directory) == killed else None
    )
    experiment.run_seed_groups(jobs, devices=3)
    pretrain = [r for r in ran if r[0] == "pretrain"]
    assert len(pretrain) == len(set(pretrain)) == 4  # each pre-training once
    for kind, name, seed in ran:  # a fine-tuning runs after the pre-training it restores
        if kind == "finetune":
            after = by_name[(kind, name, seed)].after
            assert any(by_name[p].run_dir == after for p in ran[: ran.index((kind, name, seed))])
    assert programs == [([0, 1], False, {2})]  # wsrl's two fresh seeds: one program
    # Each pre-training setting's two fresh seeds: one program too, before its first method.
    assert [names for names, _ in pretrain_programs] == [
        [(name, 0), (name, 1)] for name in dict.fromkeys(r[1] for r in pretrain)
    ]
    assert not any(resume for _, resume in pretrain_programs)
    assert ("finetune", "calql", 1) in ran and ("finetune", "calql", 0) not in ran
    assert {("finetune", "iql", 0), ("finetune", "iql", 1)} <= set(ran)  # killed + fresh
    for seed in (0, 1):  # the program's runs are recorded finished
        assert (by_name[("finetune", "wsrl", seed)].run_dir / experiment.DONE_FILE).is_file()


def test_vmap_seeds_keeps_online_calql_on_one_device(jobs, monkeypatch):
    """Online CalQL's MC-return buffer runs on one device: its seeds stay in one program there,
    the other methods' seeds go over the devices."""
    from wsrl_mjx.studies import experiment

    programs = []
    monkeypatch.setattr(experiment, "run_job", lambda job: {})
    monkeypatch.setattr(experiment, "pretrain_seeds", lambda cfgs, resume: [{} for _ in cfgs])
    monkeypatch.setattr(
        experiment,
        "run_finetune_seeds",
        lambda cfgs, resume: (
            programs.append((cfgs[0].finetune.method, {c.run.num_devices for c in cfgs}))
            or [{} for _ in cfgs]
        ),
    )
    experiment.run_seed_groups(jobs, devices=2)
    assert programs == [("wsrl", {2}), ("calql", {1}), ("iql", {2})]


# --- the Ray backend, on a local Ray cluster ---------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance on the loopback address, 2 CPUs (CI's), shared by the Ray tests."""
    ray = pytest.importorskip("ray")
    import sys

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    # The workers import the package but not this test module: send its runners by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def test_ray_backend_runs_the_matrix_and_names_a_failure_and_a_dead_task(jobs, local_ray):
    """The same rules as the process pool: a pre-training's fine-tunings wait for it, the
    two pre-trainings of a seed ran at once (each waits for the other to start), a failed run
    and a task whose worker was killed (SIGKILL) fail alone, and both are named."""
    from wsrl_mjx.studies.job_pool import run_jobs_ray

    with pytest.raises(RunsFailed) as failure:
        run_jobs_ray(jobs, traced_runner, cpus_per_run=1)
    broken = next(j.run_dir for j in jobs if j.name == "pretrain-iql" and j.seed == 1)
    killed = next(j.run_dir for j in jobs if j.name == "calql" and j.seed == 0)
    skipped = {j.run_dir for j in jobs if j.after == broken}
    message = str(failure.value)
    assert message.startswith("3 run(s) did not finish")
    assert f"{broken}: ConfigError: injected failure" in message
    assert f"{killed}: its Ray worker died (WorkerCrashedError" in message
    assert f"{next(iter(skipped))}: skipped" in message
    ran = {j.run_dir for j in jobs if (j.run_dir / "trace.json").exists()}
    assert ran == {j.run_dir for j in jobs} - {broken, killed, *skipped}
    for j in jobs:
        if j.run_dir in ran and j.after is not None:
            assert _trace(j)["start"] >= json.loads((j.after / "trace.json").read_text())["end"]
    assert "ConfigError: injected failure" in (broken / WORKER_LOG).read_text()


def counting_runner(job: Job) -> dict:
    """Counts its calls per run; skips a finished run and fails the wsrl run of seed 1 while a
    flag file exists, as `experiment.run_job` does through its done file."""
    from wsrl_mjx.studies.experiment import _once

    def work() -> dict:
        with open(job.run_dir / "calls", "a") as f:
            f.write("x")
        if job.name == "wsrl" and job.seed == 1 and (job.run_dir.parents[1] / "fail").exists():
            raise RuntimeError("injected failure")
        return {"ran": job.name}

    return _once(job.run_dir, work)


def test_ray_backend_rerun_skips_finished_runs_and_retries_the_failed_one(jobs, local_ray):
    from wsrl_mjx.studies.job_pool import run_jobs_ray

    root = jobs[0].run_dir.parents[1]
    root.mkdir(parents=True, exist_ok=True)
    (root / "fail").touch()
    with pytest.raises(RunsFailed, match="1 run"):
        run_jobs_ray(jobs, counting_runner)
    (root / "fail").unlink()
    finished = run_jobs_ray(jobs, counting_runner)
    assert len(finished) == len(jobs)
    calls = {j.run_dir: (j.run_dir / "calls").read_text() for j in jobs}
    failed = next(j.run_dir for j in jobs if j.name == "wsrl" and j.seed == 1)
    assert calls[failed] == "xx"  # retried once
    assert all(c == "x" for d, c in calls.items() if d != failed)  # finished: skipped


def test_ray_backend_without_ray_or_with_a_wrong_flag_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    from wsrl_mjx.studies.experiment import run_experiment
    from wsrl_mjx.studies.job_pool import run_jobs_ray

    path = tmp_path / "workers.yaml"
    path.write_text(SPEC)
    exp = load_experiment(path, {"run": {"run_dir": str(tmp_path / "exp")}})
    with pytest.raises(ConfigError, match="--address names a Ray cluster"):
        run_experiment(exp, address="10.0.0.1:6379")
    with pytest.raises(ConfigError, match="drop --workers"):
        run_experiment(exp, backend="ray", workers=2)
    real = builtins.__import__
    monkeypatch.setattr(
        builtins,
        "__import__",
        lambda name, *a, **k: (
            (_ for _ in ()).throw(ImportError(name)) if name == "ray" else real(name, *a, **k)
        ),
    )
    with pytest.raises(RunsFailed, match=r"pip install 'wsrl-mjx\[ray\]'"):
        run_jobs_ray([], counting_runner)
