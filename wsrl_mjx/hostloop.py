"""The host side between compiled chunks, shared by pre-training and the online phases.

After every chunk: the NaN guard, the progress bar's rates, one log record, and evaluation and
checkpointing when their cadence (or the end of a phase) says so. A resumed run keeps the
uninterrupted run's cadence: "due" means the first multiple of the interval after the step the
last evaluation or checkpoint was made at.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from wsrl_mjx.checkpoint import Checkpointer, TrainingDiverged
from wsrl_mjx.logger import Logger, Progress


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
        return self.checkpoints.due(step, force)

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
