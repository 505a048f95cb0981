"""The host side between compiled chunks, shared by pre-training and the online phases.

After every chunk: the NaN guard, the progress bar's rates, one log record, and evaluation and
checkpointing when their cadence (or the end of a phase) says so. A resumed run keeps the
uninterrupted run's cadence: "due" means the first multiple of the interval after the step the
last evaluation or checkpoint was made at.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsrl_mjx.runtime.errors import TrainingDiverged

if TYPE_CHECKING:  # the command line imports this module before any heavy library
    from wsrl_mjx.runtime.checkpoint import Checkpointer
    from wsrl_mjx.runtime.logger import Logger, Progress


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


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived: the run stopped after its current chunk, with a checkpoint."""

    def __init__(self, signum: int, step: int, unit: str, directory: str) -> None:
        self.signum, self.exit_code = signum, 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} at {unit} {step}; checkpoint in {directory}. Continue with the "
            "same command and --resume"
        )


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested: list[int] = []  # the signal that asked for a stop, while graceful_stop is active


def stop_requested() -> int | None:
    return _requested[0] if _requested else None


@contextmanager
def graceful_stop() -> Iterator[None]:
    """While active, the first SIGINT / SIGTERM asks the running phase to finish its current
    chunk, write a checkpoint and raise `StopRequested` (a batch scheduler's SIGTERM, or
    Ctrl-C, loses no work); a second one stops the process at once."""

    def handler(signum: int, frame) -> None:
        if _requested:  # the second signal: stop now, as without this handler
            old = previous[signum]
            if callable(old):  # e.g. Python's SIGINT handler: KeyboardInterrupt
                old(signum, frame)
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        _requested.append(signum)
        print(
            f"\n[stop] {signal.Signals(signum).name}: finishing the current chunk, then a "
            "checkpoint (send it again to stop at once)",
            flush=True,
        )

    previous: dict = {}
    previous.update({s: signal.signal(s, handler) for s in _STOP_SIGNALS})
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        _requested.clear()


def ignore_signals_while_exiting() -> None:
    """After a command has finished and saved everything: a SIGINT / SIGTERM that arrives while
    the interpreter shuts down (Orbax and XLA threads and destructors can take a second or two)
    is ignored, so the process ends with the command's own exit code instead of "killed by the
    signal". Ignored at the OS level, since Python runs no handler late in its shutdown; a
    shutdown that hangs still ends with SIGKILL."""
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


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
    """Logging, the NaN guard, progress and the eval/checkpoint cadence of one phase's run."""

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

    def log(self, step: int, phase: str, metrics: dict) -> None:
        self.logger.log(step, phase, metrics)

    def eval_due(self, step: int, force: bool = False) -> bool:
        return self.evaluation.due(step, force)

    def checkpoint_due(self, step: int, force: bool = False) -> bool:
        """Also true when a stop was requested, so the run can stop with nothing lost."""
        return self.checkpoints.due(step, force or stop_requested() is not None)

    def stop_if_requested(self, step: int) -> None:
        """After a chunk's checkpoint: raise `StopRequested` if SIGINT/SIGTERM arrived."""
        signum = stop_requested()
        if signum is not None:
            raise StopRequested(signum, step, self.unit, str(self.checkpointer.directory))

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
