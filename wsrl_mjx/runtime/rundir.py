"""One writer per run directory (an flock held for the run's life) and atomic file writes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

LOCK_FILE = "run.lock"
# run dir -> [open lock file, depth, written]: re-entrant in one process
_held: dict[Path, list] = {}


class RunDirError(RuntimeError):
    """A run directory that cannot be written: in use by another process, not a directory,
    read-only or full. Maps to exit 2 on the command line."""


def make_run_dir(run_dir: str | Path) -> Path:
    """Create `run_dir` (and parents), turning OS errors into a message naming the path."""
    path = Path(run_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"run dir {path} exists and is not a directory") from None
    except OSError as e:  # read-only parent, a parent that is a file, a full disk
        raise RunDirError(f"cannot create run dir {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunDirError(f"run dir {path} is not writable")
    return path


def _holder(lock: IO[str]) -> str:
    lock.seek(0)
    try:
        info = json.loads(lock.read() or "{}")
    except ValueError:
        info = {}
    if not info:
        return "another process (no details recorded yet)"
    return (
        f"pid {info.get('pid')} on {info.get('host')} (command: {info.get('command')}; "
        f"started {info.get('started')})"
    )


@contextlib.contextmanager
def exclusive(run_dir: str | Path) -> Iterator[Path]:
    """Hold `run_dir/run.lock` exclusively; a second process gets `RunDirError` naming the
    holder. The kernel drops the lock when the holder dies, so a kill never leaves it stuck.

    The lock names this process from the start (so a second one is told who holds it), but
    that record only stays if the run wrote something (`claim`): a command refused by a check
    before then puts the previous record back, leaving every byte of the run dir as it was."""
    path = make_run_dir(run_dir).resolve()
    if path in _held:  # e.g. a collect run inside the same process: already ours
        _held[path][1] += 1
        try:
            yield path
        finally:
            _held[path][1] -= 1
        return
    try:
        # "a+" neither truncates a holder's record nor fails when the file is missing.
        lock = open(path / LOCK_FILE, "a+")  # noqa: SIM115
    except OSError as e:
        raise RunDirError(f"cannot write in run dir {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(lock)
        lock.close()
        raise RunDirError(
            f"run dir {path} is in use by {holder}; wait for it to finish or choose another "
            "run.run_dir (nothing was written)"
        ) from None
    lock.seek(0)
    previous = lock.read()
    try:
        _write_record(lock, json.dumps(_owner()) + "\n")
        _held[path] = [lock, 1, False]
        yield path
    finally:
        claimed = _held.pop(path, [None, 0, True])[2]
        if not claimed:
            _write_record(lock, previous)  # refused before writing: the last writer's record
        lock.close()  # releases the flock; the file stays, naming the last writer


def claim() -> None:
    """Mark every run dir this process holds as written by it: called when a run starts
    writing (its config, logs, checkpoints), after every check that may still refuse it."""
    for held in _held.values():
        held[2] = True


def _write_record(lock: IO[str], text: str) -> None:
    lock.seek(0)
    lock.truncate(0)
    lock.write(text)
    lock.flush()


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@contextlib.contextmanager
def holding(cfgs: Sequence[Any]) -> Iterator[None]:
    """Hold each config's run dir (one config per seed) exclusively for the block, the run's
    whole life. Not with run.distributed: there one process per host shares the run dir."""
    with contextlib.ExitStack() as held:
        if not cfgs[0].run.distributed:
            for c in cfgs:
                held.enter_context(exclusive(c.run.run_dir))
        yield


def file_mode() -> int:
    """0666 minus the umask: what `open()` would give a new file (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """`write(f)` to a temp file beside `path`, fsync, then `os.replace`: a kill at any moment
    leaves either the old file or the new one, never a torn or empty one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def git_commit(path: str | Path) -> str:
    """The commit checked out at `path` (empty when it is not a git checkout), so results can
    name the code that made them."""
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
