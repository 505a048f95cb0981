"""A graceful stop on SIGINT / SIGTERM: the running phase finishes its chunk, checkpoints and
raises `StopRequested`; a second signal stops at once. Imported by the command line before any
heavy library."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager


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
