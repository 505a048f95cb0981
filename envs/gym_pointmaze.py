"""MJX twin of Gymnasium-Robotics PointMaze (`PointMaze_<Maze>[Dense]-v3`), registered under the
Gymnasium-Robotics ids, so Minari's `D4RL/pointmaze/*` datasets are valid data for it.

The model is Gymnasium-Robotics' own: its `point.xml` with the maze blocks its `Maze.make_maze`
adds; maze maps and time limits come from its registry (`gymnasium-robotics` is a runtime
dependency of this twin, imported when one is made). Semantics kept from `PointMazeEnv`
(goal / reset sampling, success, rewards, `continuing_task` / `reset_target` are `MazeEnv`'s,
shared with the AntMaze twin in `envs.gym_maze`):

- Frame: centred on the maze, x to the right, y *up the map rows reversed* -- cell (row, col)
  has its centre at `x = (col + 0.5) - width / 2`, `y = height / 2 - (row + 0.5)` (one unit per
  cell). The project's own `pointmaze-*` tasks (envs/maze.py) use D4RL's frame instead (start
  cell at the origin, y growing with the row index): a mirror image, not a shift.
- Reset: goal = a random goal cell centre + U(+-0.25) per coordinate; start = a random reset
  cell whose centre is more than 0.5 from the goal, + U(+-0.25); zero velocity.
- Step: action clipped to [-1, 1]; velocity clipped to +-5 before the physics step. Wall
  contacts use a margin-aware sphere-box collider (`gym_maze.sphere_box`): MJX's own ignores
  the geom margin that native MuJoCo honours (docs/gymnasium_twins.md).
- Success within `SUCCESS_DISTANCE` = 0.45 of the goal (not D4RL's 0.5). Sparse reward = success,
  dense reward = exp(-distance). With `continuing_task=True` (the default, and how Minari's
  datasets were recorded) an episode never terminates; with False it terminates on success.
  With `reset_target=True` a reached goal moves to a new random goal (observed from the next
  step on, as natively).

Observation (float32, 6): Gymnasium-Robotics' dict flattened as `[observation, desired_goal]` =
`[x, y, vx, vy, goal_x, goal_y]` (achieved_goal repeats x, y), the order
`wsrl_mjx.datasets.minari_io` flattens Minari's dict observations in.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from ml_collections import config_dict
from mujoco import mjx

from envs.base import Env
from envs.gym_maze import (
    POSITION_NOISE_RANGE,
    SPHERE_BOX,
    SUCCESS_DISTANCE,
    GymMazeTask,
    collision_functions,
    make_maze_spec,
    maze_default_config,
    maze_ids,
    register_twins,
    sphere_box,
)
from envs.gym_mujoco import gym_asset

__all__ = ["POINTMAZE_IDS", "POINTMAZE_TASKS", "SUCCESS_DISTANCE", "GymPointMaze", "default_config"]

MAZE_SIZE_SCALING = 1.0  # PointMazeEnv fixes one unit per cell ...
MAZE_HEIGHT = 0.4  # ... and 0.4-unit walls
VELOCITY_CLIP = 5.0  # PointEnv clips qvel to +-5 before each physics step

POINTMAZE_IDS: tuple[str, ...] = maze_ids("PointMaze", "v3")


def default_config(name: str) -> config_dict.ConfigDict:
    """PointMazeEnv's defaults for the registered id `name`; keys are its kwarg names."""
    return maze_default_config(name, position_noise_range=POSITION_NOISE_RANGE)


class GymPointMaze(GymMazeTask):
    """PointMaze as a pure reset/step pair over MJX (`envs.base.Task`); see the module doc."""

    scaling = MAZE_SIZE_SCALING

    def __init__(self, name: str, config: config_dict.ConfigDict) -> None:
        xml = gym_asset("envs", "assets", "point", "point.xml", package="gymnasium_robotics")
        maze, spec = make_maze_spec(str(xml), config.maze_map, MAZE_SIZE_SCALING, MAZE_HEIGHT)
        super().__init__(name, config, maze)
        self._mj_model = spec.compile()
        self._mjx_model = mjx.put_model(self._mj_model, impl="jax")

    def _reset_data(self, start: jax.Array) -> mjx.Data:
        m = self._mjx_model
        return mjx.make_data(m).replace(qpos=start, qvel=jnp.zeros(m.nv, start.dtype))

    def _physics(self, data: mjx.Data, action: jax.Array) -> mjx.Data:
        ctrl = jnp.clip(action, -1.0, 1.0)
        qvel = jnp.clip(data.qvel, -VELOCITY_CLIP, VELOCITY_CLIP)
        with collision_functions({SPHERE_BOX: sphere_box}):
            return mjx.step(self._mjx_model, data.replace(qvel=qvel, ctrl=ctrl))


POINTMAZE_TASKS: dict[str, Callable[..., Env]] = register_twins(
    POINTMAZE_IDS, default_config, GymPointMaze, "pointmaze"
)
