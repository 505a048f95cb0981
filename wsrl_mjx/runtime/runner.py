"""The runner's services, written once for every phase: each seed's host side between chunks
(`HostLoop`: the NaN guard, progress, one log record per seed, the evaluation and checkpoint
cadences, the graceful stop on SIGINT/SIGTERM of `wsrl_mjx.runtime.signals`, time totals), a
run's start (`open_checkpointers`: the overwrite and resume guards, before anything is built;
`open_loops`: the saved config and each seed's logger, progress bar and cadences) and the
process settings (`begin`). The chunk loops themselves are the phases' own (`phases/online.py`,
`phases/pretrain.py`): they call these services and nothing here calls back into them. A
resumed run keeps the uninterrupted run's cadence: "due" means the first multiple of the
interval after the step the last evaluation or checkpoint was made at.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jax

from wsrl_mjx.config import Config, save_config
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.errors import TrainingDiverged
from wsrl_mjx.runtime.logger import Logger, Progress
from wsrl_mjx.runtime.rundir import claim
from wsrl_mjx.runtime.sharding import initialize_distributed, request_cpu_devices
from wsrl_mjx.runtime.signals import StopRequested, stop_requested

EVAL_SEED_OFFSET = 10_000  # evaluation keys: PRNGKey(run.seed + EVAL_SEED_OFFSET)


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
    stop_signal: int | None = None  # the signal that asked for a stop, read at each checkpoint

    def record(
        self, step: int, updates: int, phase: str, summary: dict, extra: dict | None = None
    ) -> None:
        """After a chunk: the NaN guard, the progress bar, then one log record of the chunk's
        summary, the rates and `extra`."""
        check_finite(summary, step, self.checkpointer, self.unit)
        rates = self.progress.update(step, updates)
        if self.unit == "gradient step":  # offline: an update is a gradient step
            rates = {"gradient_steps_per_s": rates["updates_per_s"]}
        self.logger.log(step, phase, {**summary, **rates, **(extra or {})})

    def evaluation_due(self, step: int, force: bool = False) -> bool:
        """Evaluate after the chunk that reached `step`? On the cadence, or when forced (the
        run's end, the warmup's end)."""
        return self.evaluation.due(step, force)

    def checkpoint_due(self, step: int, force: bool = False) -> bool:
        """Checkpoint now? On the cadence, when forced (the run's end, a converged run), or when
        SIGINT/SIGTERM asked for a stop: a stop checkpoints first, so nothing is lost."""
        self.stop_signal = stop_requested()
        return self.checkpoints.due(step, force or self.stop_signal is not None)

    def stop_if_requested(self, step: int, finished: bool) -> None:
        """After `checkpoint_due`'s checkpoint: stop if a signal asked for it (a run whose last
        chunk just ended finishes instead)."""
        if self.stop_signal is not None and not finished:
            directory = str(self.checkpointer.directory)
            raise StopRequested(self.stop_signal, step, self.unit, directory)

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
