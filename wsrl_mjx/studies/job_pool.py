"""Running an experiment's independent runs side by side: in local processes (`--workers N`) or
as Ray tasks on a cluster (`--backend ray [--address ADDR]`).

One scheduler (`run_jobs`) owns the rules both backends follow: a fine-tuning starts once the
pre-training it restores finished; a run that fails, or whose process dies, fails alone and the
fine-tunings that need it are skipped; at the end `RunsFailed` names every run that did not
finish and why. A backend only starts a job and tells which started jobs have ended. Each run
writes its output to `<run dir>/worker.log`; finished runs are skipped and killed ones resumed by
the runner itself (`experiment.run_job`), so a re-run of the same command retries what failed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol


class Job(Protocol):
    """What the scheduler needs of a run (`experiment.Job` is one): where it writes, and the
    run it waits for (a fine-tuning's pre-training)."""

    run_dir: Path
    after: Path | None


WORKER_LOG = "worker.log"
Outcome = tuple[str, Any]  # ("ok", the runner's record) or ("error", why, as text)


class RunsFailed(RuntimeError):
    """Some runs of an experiment failed (raised, or their worker process died)."""


def logged(job: Job, runner: Callable[[Job], dict]) -> Outcome:
    """In a worker: `runner(job)` with its output in <run_dir>/worker.log, not the terminal."""
    # Several processes on one accelerator must not each reserve most of its memory.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    job.run_dir.mkdir(parents=True, exist_ok=True)
    with (
        open(job.run_dir / WORKER_LOG, "a", buffering=1) as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            return "ok", runner(job)
        except BaseException as e:  # noqa: BLE001  (reported by the scheduler, which exits 1)
            traceback.print_exc()
            return "error", f"{type(e).__name__}: {e}"


def run_jobs(
    jobs: list[Job],
    capacity: int,
    start: Callable[[Job], Any],
    wait: Callable[[list[Any]], Iterable[tuple[Any, Outcome]]],
) -> dict[Path, dict]:
    """Run `jobs`, at most `capacity` at a time: `start(job)` returns a handle, `wait(handles)`
    yields (handle, outcome) for those that ended (at least one). Returns {run_dir: record} of
    the jobs that finished; raises `RunsFailed` naming the others."""
    waiting = list(jobs)
    running: dict[Any, Job] = {}
    finished: dict[Path, dict] = {}
    failed: dict[Path, str] = {}

    def start_ready() -> None:
        for job in list(waiting):
            if len(running) >= capacity:
                return
            if job.after in failed:
                waiting.remove(job)
                failed[job.run_dir] = f"skipped: its pre-training {job.after} failed"
                print(f"[experiment] {job.run_dir}: skipped, its pre-training failed")
            elif job.after is None or job.after in finished:
                waiting.remove(job)
                running[start(job)] = job
                print(f"[experiment] started {job.run_dir} (log: {WORKER_LOG})", flush=True)

    start_ready()
    while running:
        for handle, (status, value) in wait(list(running)):
            job = running.pop(handle)
            if status == "ok":
                finished[job.run_dir] = value
                print(f"[experiment] finished {job.run_dir}", flush=True)
            else:
                failed[job.run_dir] = value
                print(f"[experiment] FAILED {job.run_dir}: {value}", flush=True)
        start_ready()
    if failed:
        names = "\n".join(f"  {run_dir}: {why}" for run_dir, why in failed.items())
        raise RunsFailed(
            f"{len(failed)} run(s) did not finish (each worker's log: <run dir>/{WORKER_LOG}); "
            f"the others did; re-run the same command to retry them:\n{names}"
        )
    return finished


# --- local processes ----------------------------------------------------------------------------


def _run_in_process(job: Job, runner: Callable[[Job], dict], results: Any) -> None:
    results.send(logged(job, runner))


def run_jobs_parallel(
    jobs: list[Job], workers: int, runner: Callable[[Job], dict]
) -> dict[Path, dict]:
    """Each job in a process of its own, spawned (JAX does not survive a fork), `workers` at a
    time; a process that dies without a word (killed, out of memory) is a failure naming its
    exit code."""
    context = multiprocessing.get_context("spawn")
    processes: dict[Any, tuple[Any, Any]] = {}  # sentinel -> (process, its pipe)

    def start(job: Job) -> Any:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_run_in_process, args=(job, runner, send))
        process.start()
        send.close()
        processes[process.sentinel] = (process, receive)
        return process.sentinel

    def wait(sentinels: list[Any]) -> Iterable[tuple[Any, Outcome]]:
        for sentinel in multiprocessing.connection.wait(sentinels):
            process, receive = processes.pop(sentinel)
            process.join()
            yield sentinel, _process_outcome(process, receive)
            receive.close()

    return run_jobs(jobs, workers, start, wait)


def _process_outcome(process: Any, results: Any) -> Outcome:
    if results.poll():
        with contextlib.suppress(EOFError):
            return results.recv()
    code = process.exitcode
    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return "error", f"its worker process died ({how}) before reporting"


# --- Ray ----------------------------------------------------------------------------------------

RAY_EXTRA = "pip install 'wsrl-mjx[ray]' (or pip install 'ray>=2.40,<3')"


def run_jobs_ray(
    jobs: list[Job],
    runner: Callable[[Job], dict],
    *,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    max_running: int | None = None,
) -> dict[Path, dict]:
    """Each job a Ray task asking for `cpus_per_run` CPUs and `gpus_per_run` GPUs, on the
    cluster at `address` (a running `ray start --head`; None starts a local one bound to the
    loopback address). Ray places the tasks; a task whose worker dies is not retried by Ray
    (a re-run of the command resumes it from its checkpoint) and is reported by name."""
    try:
        import ray
    except ImportError:
        raise RunsFailed(f"--backend ray needs Ray: {RAY_EXTRA}") from None
    started_here = not ray.is_initialized()
    if started_here:
        local = {} if address else {"_node_ip_address": "127.0.0.1", "num_cpus": os.cpu_count()}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    task = ray.remote(max_retries=0, num_cpus=cpus_per_run, num_gpus=gpus_per_run)(logged)
    capacity = max_running or len(jobs) or 1  # Ray queues what the cluster cannot hold yet

    def wait(refs: list[Any]) -> Iterable[tuple[Any, Outcome]]:
        done, _ = ray.wait(refs, num_returns=1)
        for ref in done:
            try:
                yield ref, ray.get(ref)
            except ray.exceptions.RayError as e:  # the worker died: killed, out of memory
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                yield ref, ("error", f"its Ray worker died ({type(e).__name__}: {first})")

    try:
        return run_jobs(jobs, capacity, lambda job: task.remote(job, runner), wait)
    finally:
        if started_here:
            ray.shutdown()
