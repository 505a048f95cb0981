"""MJX environments: `envs.make(name, **overrides) -> Env`, and `BatchEnv` for N of them.

Registered tasks: MuJoCo Playground's DM Control suite (`envs.dm_control`) and, when present,
the maze tasks of `envs.maze`. See `envs.base` for the Env conventions.
"""

import importlib.util

from envs import dm_control  # noqa: F401  (registers the DM Control suite)
from envs.base import Env
from envs.registry import make, register, registered_names
from envs.wrappers import BatchEnv, BatchEnvState, VecStep

# envs/maze.py is optional (written separately); it registers its tasks on import.
if importlib.util.find_spec("envs.maze") is not None:
    from envs import maze  # noqa: F401

__all__ = ["BatchEnv", "BatchEnvState", "Env", "VecStep", "make", "register", "registered_names"]
