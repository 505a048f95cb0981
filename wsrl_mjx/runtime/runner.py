"""The runner: `run_phase` runs any phase, offline or online, one compiled chunk at a time.

A phase (`Phase`) is a value: its compiled chunk, the step it ends at and its log label. What
differs between offline and online runs on the host (how a state counts its steps, what a
chunk's log record holds, how a policy is evaluated and what a checkpoint records) is the
`Run`'s; what every run does after every chunk is here, written once: the NaN guard, progress,
one log record per seed (`HostLoop`), evaluation and checkpoint when due (and at the end), and a
graceful stop on SIGINT/SIGTERM (`wsrl_mjx.runtime.signals`). A resumed run keeps the
uninterrupted run's cadence: "due" means the first multiple of the interval after the step the
last evaluation or checkpoint was made at. A run's start is also written once:
`open_checkpointers` (the overwrite and resume guards, before anything is built) and
`open_loops` (the saved config and each seed's logger, progress bar and cadences); `begin`
applies the process settings.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jax

from wsrl_mjx.config import Config, save_config
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.errors import TrainingDiverged
from wsrl_mjx.runtime.logger import Logger, Progress
from wsrl_mjx.runtime.rundir import claim
from wsrl_mjx.runtime.sharding import initialize_distributed, request_cpu_devices
from wsrl_mjx.runtime.signals import StopRequested, stop_requested

EVAL_SEED_OFFSET = 10_000  # evaluation keys: PRNGKey(run.seed + EVAL_SEED_OFFSET)


@dataclass(frozen=True)
class Phase:
    """One phase: `chunk(state) -> (state, device metrics)` until the run's step reaches `end`.

    `timer` names the run's time total it adds to; a phase with `evaluate_at_end` (the warmup)
    is evaluated once when it ends, labelled `eval_label` (default: `name`); `converged()`, asked
    after each evaluation, ends the run there (checkpointed) before `end`."""

    name: str
    chunk: Callable[[Any], tuple[Any, Any]]
    end: int
    timer: str
    evaluate_at_end: bool = False
    eval_label: str = ""
    converged: Callable[[], bool] | None = None


@dataclass
class Cadence:
    """Every `every` steps: `due(step)` is true once per interval crossed (or when forced)."""

    every: int
    next: int

    @classmethod
    def after(cls, step: int, every: int) -> Cadence:
        return cls(every, (step // every + 1) * every)

    def due(self, step: int, force: bool = False) -> bool:
        if step < self.next and not force:
            return False
        self.next = (step // self.every + 1) * self.every
        return True


@dataclass
class HostLoop:
    """One seed's host side: its logger, checkpointer, progress bar, evaluation and checkpoint
    cadences, and the run's time totals."""

    logger: Logger
    checkpointer: Checkpointer
    progress: Progress
    evaluation: Cadence
    checkpoints: Cadence
    unit: str = "env step"
    times: dict[str, float] = field(default_factory=dict)

    def record(
        self,
        step: int,
        updates: int,
        phase: str,
        summary: dict,
        extra: Callable[[dict], dict] = lambda rates: rates,
    ) -> None:
        """After a chunk: the NaN guard, the progress bar, then one log record of the chunk's
        summary and `extra(rates)`."""
        check_finite(summary, step, self.checkpointer, self.unit)
        rates = self.progress.update(step, updates)
        self.logger.log(step, phase, {**summary, **extra(rates)})

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Adds the block's wall-clock seconds to `times[key]`."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - t

    def close(self) -> None:
        self.progress.close()
        self.logger.close()


def check_finite(
    metrics: dict, step: int, checkpointer: Checkpointer, unit: str = "env step"
) -> None:
    """Stop at the first non-finite metric, naming it and the last good checkpoint."""
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        last = checkpointer.latest_step()
        kept = f"last good checkpoint: {checkpointer.directory}/{last}" if last else "no checkpoint"
        raise TrainingDiverged(
            f"non-finite {', '.join(bad)} at {unit} {step}; stopping ({kept}). "
            "Lower the learning rates or check the rewards/observations."
        )


class Run(Protocol):
    """A run's host side between chunks; `loops` holds one `HostLoop` per seed (the first one
    has the progress bar and the time totals) and `total` is the run's last step."""

    loops: list[HostLoop]
    total: int

    def step(self, state: Any) -> int: ...

    def record(self, state: Any, metrics: Any, phase: Phase, start: int) -> None: ...

    def evaluate(self, state: Any, step: int, label: str) -> None: ...

    def save(self, state: Any, step: int) -> None: ...


def run_phase(run: Run, phase: Phase, state: Any) -> Any:
    """Whole chunks of `phase` until the run reaches `phase.end`; after each: its log record
    (the NaN guard first), evaluation and checkpoint when due and always at the end of the run,
    then a stop if SIGINT/SIGTERM asked for one (after the checkpoint, so nothing is lost)."""
    loop = run.loops[0]
    while (start := run.step(state)) < phase.end:
        with loop.timed(phase.timer):
            state, metrics = phase.chunk(state)
            run.record(state, metrics, phase, start)
        step = run.step(state)
        finished = step >= run.total
        ended = phase.evaluate_at_end and step >= phase.end
        converged = False
        if loop.evaluation.due(step, force=finished or ended):
            run.evaluate(state, step, phase.eval_label or phase.name)
            converged = phase.converged is not None and phase.converged()
        signum = stop_requested()  # a requested stop checkpoints first, so nothing is lost
        if loop.checkpoints.due(step, force=finished or converged or signum is not None):
            run.save(state, step)
        if converged:
            break
        if signum is not None and not finished:
            raise StopRequested(signum, step, loop.unit, str(loop.checkpointer.directory))
    return state


def begin(cfg: Config) -> None:
    """The process settings a run needs before any JAX work, applied here only: the CPU device
    count (run.num_devices), joining the cluster (run.distributed) and the matmul precision.
    The command line calls it right after reading the config; every run calls it again (each
    setting is a no-op once applied), so a run started from Python gets them too."""
    request_cpu_devices(cfg.run.num_devices)
    if cfg.run.distributed:
        initialize_distributed()
    jax.config.update("jax_default_matmul_precision", cfg.run.matmul_precision)


def eval_key(cfg: Config) -> jax.Array:
    return jax.random.PRNGKey(cfg.run.seed + EVAL_SEED_OFFSET)


def open_checkpointers(cfgs: Sequence[Config], resume: bool) -> list[Checkpointer]:
    """Each seed's checkpoint folder; refuses to overwrite a run, and to resume one that has no
    checkpoint, before anything in its run dir is written. Needs no program: commands call it
    before they build or compile anything, so such a refusal comes in seconds."""
    checkpointers = [
        Checkpointer(
            Path(c.run.run_dir) / "checkpoints",
            keep=c.run.keep_checkpoints,
            allow_unverified=c.run.allow_unverified_checkpoints,
        )
        for c in cfgs
    ]
    for ckpt in checkpointers:
        if resume and ckpt.latest_step() is None:
            raise CheckpointError(f"--resume: no checkpoint in {ckpt.directory}")
        if not resume and ckpt.latest_step() is not None:
            raise CheckpointError(
                f"{ckpt.directory.parent} already holds checkpoints; pass --resume to continue "
                "that run or choose another run.run_dir (nothing was overwritten)"
            )
    return checkpointers


def align_seeds(checkpointers: Sequence[Checkpointer]) -> int | None:
    """The step seeds in one program resume from when their newest checkpoints differ (a kill
    between the seeds' saves of one step): the newest step all of them hold, after the newer
    ones are deleted (the resumed run redoes them bit-exactly). None when they agree."""
    newest = [c.latest_step() for c in checkpointers]
    if len(set(newest)) <= 1:
        return None
    shared = set.intersection(*(set(c.all_steps()) for c in checkpointers))
    if not shared:
        raise CheckpointError(
            f"--resume: the seeds' newest checkpoints are at different steps {sorted(set(newest))}"
            " and they hold no step in common; start a new run.run_dir"
        )
    step = max(shared)
    for ckpt in checkpointers:
        newer = ckpt.discard_after(step)
        if newer:
            print(
                f"note: --resume: {ckpt.directory} also held step(s) {newer}, which the other "
                f"seeds did not reach before the stop; every seed resumes from {step}",
                file=sys.stderr,
                flush=True,
            )
    return step


@dataclass(frozen=True)
class Cadences:
    """How often a run evaluates and checkpoints, in its own steps."""

    evaluation: int
    checkpoints: int
    unit: str = "env step"


def open_loops(
    cfgs: Sequence[Config],
    checkpointers: Sequence[Checkpointer],
    *,
    start: int,
    resume: bool,
    total: int,
    label: str,
    cadences: Cadences,
    times: dict[str, float] | None = None,
) -> list[HostLoop]:
    """Each seed's host side from step `start`: its config saved in its run dir, its logger
    (which keeps the records before `start` on resume), a progress bar (the first seed's) and
    the evaluation and checkpoint cadences of an uninterrupted run."""
    claim()  # every check that may refuse the run has passed: its lock names this process
    loops = []
    for k, (cfg, ckpt) in enumerate(zip(cfgs, checkpointers, strict=True)):
        run_dir = Path(cfg.run.run_dir)
        save_config(cfg, run_dir / "config.yaml")
        logger = Logger(
            run_dir, tensorboard=cfg.run.tensorboard, resume_step=start if resume else None
        )
        loops.append(
            HostLoop(
                logger=logger,
                checkpointer=ckpt,
                progress=Progress(total, start, cfg.run.progress and k == 0, label),
                evaluation=Cadence.after(start, cadences.evaluation),
                checkpoints=Cadence.after(start, cadences.checkpoints),
                unit=cadences.unit,
                times=dict(times or {}),
            )
        )
    return loops


@contextmanager
def running(loops: Sequence[HostLoop]) -> Iterator[None]:
    """Closes every seed's logger and progress bar however the run ends; its checkpointers
    (which wait for a save in flight) only when it ended normally."""
    try:
        yield
    finally:
        for loop in loops:
            loop.close()
    for loop in loops:
        loop.checkpointer.close()
