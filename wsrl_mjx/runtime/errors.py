"""The errors a command reports as a message instead of a traceback, in a module that imports
nothing heavy: the command line catches them before JAX, Orbax or MuJoCo are loaded. Their
modules (`checkpoint`, `data`) re-export them under the same names."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that is missing, broken or does not fit the requested run (exit 2)."""


class BrokenCheckpoint(CheckpointError):
    """One step on disk that cannot be read back intact; an older step may still be good."""


class TrainingDiverged(RuntimeError):
    """A loss, metric or state array became NaN/inf; the last good checkpoint is kept (exit 3)."""


class DatasetError(ValueError):
    """A dataset file or array dict that cannot be used as it is; the message says why (exit 2)."""


class RenderError(RuntimeError):
    """A video that cannot be made here: no OpenGL, no writer for the format (exit 2)."""
