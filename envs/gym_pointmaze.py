"""MJX twin of Gymnasium-Robotics PointMaze (`PointMaze_<Maze>[Dense]-v3`), registered under the
Gymnasium-Robotics ids, so Minari's `D4RL/pointmaze/*` datasets are valid data for it.

The model is Gymnasium-Robotics' own: its `point.xml` with the maze blocks its `Maze.make_maze`
adds; maze maps and time limits come from its registry (`gymnasium-robotics` is a runtime
dependency of this twin, imported when one is made). Semantics kept from `PointMazeEnv`:

- Frame: centred on the maze, x to the right, y *up the map rows reversed* -- cell (row, col)
  has its centre at `x = (col + 0.5) - width / 2`, `y = height / 2 - (row + 0.5)` (one unit per
  cell). The project's own `pointmaze-*` tasks (envs/maze.py) use D4RL's frame instead (start
  cell at the origin, y growing with the row index): a mirror image, not a shift.
- Reset: goal = a random goal cell centre + U(+-0.25) per coordinate; start = a random reset
  cell whose centre is more than 0.5 from the goal, + U(+-0.25); zero velocity.
- Step: action clipped to [-1, 1]; velocity clipped to +-5 before the physics step. Wall
  contacts use a margin-aware sphere-box collider (`_sphere_box`): MJX's own ignores the geom
  margin that native MuJoCo honours (docs/gymnasium_twins.md).
- Success within `SUCCESS_DISTANCE` = 0.45 of the goal (not D4RL's 0.5). Sparse reward = success,
  dense reward = exp(-distance). With `continuing_task=True` (the default, and how Minari's
  datasets were recorded) an episode never terminates; with False it terminates on success.
  With `reset_target=True` a reached goal moves to a new random goal (observed from the next
  step on, as natively).

Observation (float32, 6): Gymnasium-Robotics' dict flattened as `[observation, desired_goal]` =
`[x, y, vx, vy, goal_x, goal_y]` (achieved_goal repeats x, y), the order
`wsrl_mjx.minari_io` flattens Minari's dict observations in.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from ml_collections import config_dict
from mujoco import mjx
from mujoco.mjx._src import collision_driver
from mujoco.mjx._src import math as mjx_math
from mujoco.mjx._src import types as mjx_types
from mujoco_playground._src.mjx_env import State

from envs.base import Env, ModelTask
from envs.gym_mujoco import gym_asset
from envs.registry import check_overrides, register, registered_names

__all__ = ["POINTMAZE_TASKS", "GymPointMaze", "default_config", "make_gym_pointmaze"]

SUCCESS_DISTANCE = 0.45  # PointMazeEnv's success, sparse reward and termination radius
MAZE_SIZE_SCALING = 1.0  # PointMazeEnv fixes one unit per cell ...
MAZE_HEIGHT = 0.4  # ... and 0.4-unit walls
RESET_CLEARANCE = 0.5  # start cells closer than this (x scaling) to the goal are redrawn
VELOCITY_CLIP = 5.0  # PointEnv clips qvel to +-5 before each physics step
GOAL_RESAMPLE_TRIES = 16  # reset_target redraws a goal until it is away from the point
ROBOTICS_EXTRA = "pip install 'gymnasium-robotics>=1.3'"

_MAZES = ("UMaze", "Open", "Medium", "Large")
_VARIANTS = ("", "_Diverse_G", "_Diverse_GR")
POINTMAZE_IDS: tuple[str, ...] = tuple(
    f"PointMaze_{maze}{variant}{dense}-v3"
    for dense in ("", "Dense")
    for maze in _MAZES
    for variant in _VARIANTS
    if not (maze == "UMaze" and variant)  # Gymnasium-Robotics has no diverse U-maze
)


def _robotics_spec(name: str) -> Any:
    try:
        import gymnasium
        import gymnasium_robotics
    except ImportError:
        raise ImportError(
            f"the PointMaze twin needs Gymnasium-Robotics: {ROBOTICS_EXTRA}"
        ) from None
    gymnasium.register_envs(gymnasium_robotics)
    return gymnasium.spec(name)


def default_config(name: str) -> config_dict.ConfigDict:
    """PointMazeEnv's defaults for the registered id `name`; keys are its kwarg names."""
    spec = _robotics_spec(name)
    return config_dict.create(
        maze_map=[list(row) for row in spec.kwargs["maze_map"]],
        reward_type=spec.kwargs.get("reward_type", "sparse"),
        continuing_task=True,
        reset_target=False,
        position_noise_range=0.25,
        episode_length=int(spec.max_episode_steps),
    )


def _sphere_box(m: mjx.Model, d: mjx.Data, key: Any, geom: jax.Array) -> tuple:
    """Sphere-box contacts with the exact signed distance, also when apart: MJX's own
    sphere-box collider reports no contact until they overlap, so it misses contacts inside
    the geom margin (PointMaze's 0.002 + 0.002) that native MuJoCo makes, and the point then
    rides into walls it should slide along. Same signature and output as MJX's colliders."""
    del key

    def one(s_pos, r, b_pos, b_mat, half):
        c = b_mat.T @ (s_pos - b_pos)  # sphere centre in the box frame
        closest = jnp.clip(c, -half, half)
        gap = closest - c
        outside = jnp.any(jnp.abs(c) > half)
        norm = jnp.linalg.norm(gap)
        depth = half - jnp.abs(c)
        k = jnp.argmin(depth)
        face = jnp.zeros(3, c.dtype).at[k].set(jnp.where(c[k] >= 0, 1.0, -1.0))
        # Normal from the sphere into the box (MJX's and MuJoCo's geom1 -> geom2 convention).
        n = jnp.where(outside, gap / jnp.maximum(norm, 1e-12), -face)
        on_box = jnp.where(outside, closest, c + face * depth[k])
        dist = jnp.where(outside, norm, -depth[k]) - r
        pos = 0.5 * (on_box + c + n * r)
        return dist, b_mat @ pos + b_pos, mjx_math.make_frame(b_mat @ n)

    g1, g2 = geom.T  # MJX orders each pair by geom type: sphere first
    return jax.vmap(one)(
        d.geom_xpos[g1], m.geom_size[g1, 0], d.geom_xpos[g2], d.geom_xmat[g2], m.geom_size[g2]
    )


_sphere_box.ncon = 1
_SPHERE_BOX = (mjx_types.GeomType.SPHERE, mjx_types.GeomType.BOX)


@contextlib.contextmanager
def _margin_aware_sphere_box() -> Iterator[None]:
    """Use `_sphere_box` for sphere-box pairs while a step is traced (the collision table is
    read at trace time), so other MJX models keep MJX's own collider."""
    table = collision_driver._COLLISION_FUNC
    previous = table[_SPHERE_BOX]
    table[_SPHERE_BOX] = _sphere_box
    try:
        yield
    finally:
        table[_SPHERE_BOX] = previous


class GymPointMaze(ModelTask):
    """PointMaze as a pure reset/step pair over MJX (`envs.base.Task`); see the module doc."""

    has_success = True

    def __init__(self, name: str, config: config_dict.ConfigDict) -> None:
        from gymnasium_robotics.envs.maze.maze_v4 import Maze

        self.name = name
        self._config = config
        if config.reward_type not in ("sparse", "dense"):
            raise ValueError(f"{name}: reward_type must be 'sparse' or 'dense'")
        xml = gym_asset("envs", "assets", "point", "point.xml", package="gymnasium_robotics")
        maze, maze_xml = Maze.make_maze(str(xml), config.maze_map, MAZE_SIZE_SCALING, MAZE_HEIGHT)
        try:
            self._mj_model = mujoco.MjModel.from_xml_path(maze_xml)
        finally:
            os.remove(maze_xml)  # make_maze leaves its generated XML in the temp dir
        self._mjx_model = mjx.put_model(self._mj_model, impl="jax")
        self.maze = maze
        self._goals = np.array(maze.unique_goal_locations)
        self._resets = np.array(maze.unique_reset_locations)

    def _noise(self, rng: jax.Array, dtype: Any) -> jax.Array:
        width = self._config.position_noise_range * MAZE_SIZE_SCALING
        return jax.random.uniform(rng, (2,), dtype, -width, width)

    def _random_goal(self, rng: jax.Array, dtype: Any) -> jax.Array:
        k_cell, k_noise = jax.random.split(rng)
        goals = jnp.asarray(self._goals, dtype)
        return goals[jax.random.randint(k_cell, (), 0, len(goals))] + self._noise(k_noise, dtype)

    def reset(self, rng: jax.Array) -> State:
        rng, k_goal, k_cell, k_noise = jax.random.split(rng, 4)
        m = self._mjx_model
        dtype = m.qpos0.dtype
        goal = self._random_goal(k_goal, dtype)
        resets = jnp.asarray(self._resets, dtype)
        # Uniform over the reset cells away from the goal = PointMazeEnv's rejection loop.
        away = jnp.linalg.norm(resets - goal, axis=1) > RESET_CLEARANCE * MAZE_SIZE_SCALING
        logits = jnp.where(away | ~away.any(), 0.0, -jnp.inf)
        start = resets[jax.random.categorical(k_cell, logits)] + self._noise(k_noise, dtype)
        data = mjx.make_data(m).replace(qpos=start, qvel=jnp.zeros(m.nv, dtype))
        return self._state(data, goal, jnp.zeros((), dtype), jnp.zeros((), dtype), rng)

    def set_state(self, state: State, data: mjx.Data, goal: jax.Array | None = None) -> State:
        """`state` with physics `data` (and `goal`, default: unchanged)."""
        goal = state.info["goal"] if goal is None else jnp.asarray(goal, state.info["goal"].dtype)
        return self._state(data, goal, state.reward, state.done, state.info["rng"])

    def _state(
        self, data: mjx.Data, goal: jax.Array, reward: jax.Array, done: jax.Array, rng: jax.Array
    ) -> State:
        dist = jnp.linalg.norm(data.qpos[:2] - goal)
        metrics = {"success": (dist <= SUCCESS_DISTANCE).astype(reward.dtype), "dist_to_goal": dist}
        obs = jnp.concatenate([data.qpos, data.qvel, goal])
        return State(data, obs, reward, done, metrics, {"goal": goal, "rng": rng})

    def step(self, state: State, action: jax.Array) -> State:
        m, cfg = self._mjx_model, self._config
        dtype = m.qpos0.dtype
        ctrl = jnp.clip(jnp.asarray(action, dtype), -1.0, 1.0)
        qvel = jnp.clip(state.data.qvel, -VELOCITY_CLIP, VELOCITY_CLIP)
        with _margin_aware_sphere_box():
            data = mjx.step(m, state.data.replace(qvel=qvel, ctrl=ctrl))
        goal = state.info["goal"]
        dist = jnp.linalg.norm(data.qpos[:2] - goal)
        success = dist <= SUCCESS_DISTANCE
        reward = success.astype(dtype) if cfg.reward_type == "sparse" else jnp.exp(-dist)
        done = (success & (not cfg.continuing_task)).astype(dtype)
        rng = state.info["rng"]
        out = self._state(data, goal, reward, done, rng)  # obs shows the goal of this step
        if cfg.continuing_task and cfg.reset_target and len(self._goals) > 1:
            rng, key = jax.random.split(rng)
            new_goal = self._next_goal(key, data, goal, success)
            out = out.replace(info={"goal": new_goal, "rng": rng})
        return out

    def _next_goal(
        self, rng: jax.Array, data: mjx.Data, goal: jax.Array, success: jax.Array
    ) -> jax.Array:
        """A reached goal moves to a random goal farther than SUCCESS_DISTANCE from the point
        (PointMazeEnv redraws until it is; here the first such of GOAL_RESAMPLE_TRIES draws)."""
        keys = jax.random.split(rng, GOAL_RESAMPLE_TRIES)
        draws = jax.vmap(lambda k: self._random_goal(k, goal.dtype))(keys)
        far = jnp.linalg.norm(draws - data.qpos[:2], axis=1) > SUCCESS_DISTANCE
        new = draws[jnp.argmax(far)]
        return jnp.where(success, new, goal)


def make_task(name: str, **overrides: Any) -> GymPointMaze:
    """The bare twin `name` (a Gymnasium-Robotics id) with validated kwarg overrides."""
    config = default_config(name)
    check_overrides(name, overrides, config.keys())
    config.update(overrides)
    return GymPointMaze(name, config)


def make_gym_pointmaze(name: str, **overrides: Any) -> Env:
    """`make_task` wrapped in the project's `Env` (what `envs.make` returns)."""
    task = make_task(name, **overrides)
    return Env(
        task,
        name,
        episode_length=task.config.episode_length,
        has_success=True,
        config=task.config.to_dict(),
    )


POINTMAZE_TASKS: dict[str, Callable[..., Env]] = {
    name: functools.partial(make_gym_pointmaze, name) for name in POINTMAZE_IDS
}

for _name, _factory in POINTMAZE_TASKS.items():
    if _name not in registered_names():  # importlib.reload-safe
        register(_name, _factory)
