"""MJX environments: `envs.make(name, **overrides) -> Env`, and `BatchEnv` for N of them.

Registered tasks: MuJoCo Playground's DM Control suite (`envs.dm_control`), the goal-reaching
mazes of `envs.maze` (`pointmaze-*`, `antmaze-*`), `antgoal` (`envs.ant_goal`), and MJX twins
of Gymnasium MuJoCo v5 (`envs.gym_mujoco`) and Gymnasium-Robotics PointMaze and AntMaze
(`envs.gym_pointmaze`, `envs.gym_antmaze`) under their Gymnasium ids. See `envs.base` for the
Env conventions.
"""

from envs import (
    ant_goal,  # noqa: F401  (registers antgoal, the low-level ant task for antmaze data)
    dm_control,  # noqa: F401  (registers the DM Control suite)
    gym_antmaze,  # noqa: F401  (registers the Gymnasium-Robotics AntMaze twins)
    gym_mujoco,  # noqa: F401  (registers the Gymnasium MuJoCo v5 twins)
    gym_pointmaze,  # noqa: F401  (registers the Gymnasium-Robotics PointMaze twins)
    maze,  # noqa: F401  (registers pointmaze-* / antmaze-*)
)
from envs.base import Env
from envs.registry import (
    make,
    native_family,
    native_package,
    register,
    registered_names,
    twin_names,
)
from envs.wrappers import BatchEnv, BatchEnvState, VecStep

__all__ = [
    "BatchEnv",
    "BatchEnvState",
    "Env",
    "VecStep",
    "make",
    "native_family",
    "native_package",
    "register",
    "registered_names",
    "twin_names",
]
