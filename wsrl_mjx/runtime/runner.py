"""The runner: `run_phase` runs any phase, offline or online, one compiled chunk at a time.

A phase (`Phase`) is a value: its compiled chunk, the step it ends at and its log label. What
differs between offline and online runs on the host (how a state counts its steps, what a
chunk's log record holds, how a policy is evaluated and what a checkpoint records) is the
`Run`'s; what every run does after every chunk is here, written once: the NaN guard, progress,
one log record per seed, evaluation and checkpoint when due (and at the end), and a graceful
stop on SIGINT/SIGTERM. `open_run` starts a run's host side, also written once: the
overwrite and resume guards, the restore on resume, the saved config and each seed's logger,
progress bar and cadences.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jax

from wsrl_mjx.config import Config, save_config
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.hostloop import Cadence, HostLoop
from wsrl_mjx.runtime.logger import Logger, Progress
from wsrl_mjx.runtime.rundir import claim
from wsrl_mjx.runtime.sharding import initialize_distributed

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
        if loop.eval_due(step, force=finished or ended):
            run.evaluate(state, step, phase.eval_label or phase.name)
            converged = phase.converged is not None and phase.converged()
        if loop.checkpoint_due(step, force=finished or converged):
            run.save(state, step)
        if converged:
            break
        if not finished:
            loop.stop_if_requested(step)
    return state


def begin(cfg: Config) -> None:
    """Process-wide settings a run needs before anything is compiled."""
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


def open_run(
    cfgs: Sequence[Config],
    checkpointers: Sequence[Checkpointer],
    resume: bool,
    state: Any,
    restore: Callable[[list[Checkpointer], Any], Any],
    step: Callable[[Any], int],
    *,
    total: int,
    label: str,
    cadences: Cadences,
    times: dict[str, float] | None = None,
) -> tuple[list[HostLoop], Any]:
    """A run's start, offline and online alike, from each seed's checkpoints (`open_checkpointers`,
    called first thing, before anything is built or compiled): the initial `state` or on resume
    `restore(checkpointers, state)` (which refuses what cannot continue), and each seed's host
    loop from the state's `step`."""
    if resume:
        state = restore(checkpointers, state)
    loops = open_loops(
        cfgs,
        checkpointers,
        start=step(state),
        resume=resume,
        total=total,
        label=label,
        cadences=cadences,
        times=times,
    )
    return loops, state


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
