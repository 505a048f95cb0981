"""What the MJX twins of Gymnasium-Robotics' mazes share (`envs.gym_pointmaze`,
`envs.gym_antmaze`): the registered ids, the maze built by Gymnasium-Robotics' own
`Maze.make_maze`, `MazeEnv`'s goal / reset sampling, success radius, reward types,
`continuing_task` / `reset_target`, and a margin-aware sphere-box collider.

`MazeEnv` semantics kept (both agents):
- Frame: centred on the maze, cell (row, col) at `x = (col + 0.5) * s - width * s / 2`,
  `y = height * s / 2 - (row + 0.5) * s` (`s` = maze_size_scaling: 1 point, 4 ant).
- Reset: goal = a random goal cell centre + U(+-0.25 s) per coordinate; start = a random reset
  cell whose centre is more than 0.5 s from the goal (uniform over those = the native rejection
  loop's distribution) + U(+-0.25 s).
- Success within `SUCCESS_DISTANCE` = 0.45 of the goal (x, y). Sparse reward = success, dense
  = exp(-distance). `continuing_task=False` terminates on success; `reset_target=True` (with
  `continuing_task`) moves a reached goal to a new random goal, seen from the next step on.

Observation: `[qpos, qvel, goal]`. For the point qpos is (x, y): Gymnasium-Robotics'
`[observation, desired_goal]`; for the ant qpos starts with the torso x, y: its
`[achieved_goal, observation, desired_goal]` (D4RL's antmaze layout).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
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
from envs.registry import check_overrides, register, registered_names

__all__ = [
    "SPHERE_BOX",
    "SUCCESS_DISTANCE",
    "GymMazeTask",
    "collision_functions",
    "maze_default_config",
    "maze_ids",
    "make_maze_spec",
    "register_twins",
    "sphere_box",
]

SUCCESS_DISTANCE = 0.45  # MazeEnv's success, sparse reward and termination radius
RESET_CLEARANCE = 0.5  # start cells closer than this (x scaling) to the goal are redrawn
POSITION_NOISE_RANGE = 0.25  # MazeEnv's default xy noise (x scaling) on goal and start
GOAL_RESAMPLE_TRIES = 16  # reset_target redraws a goal until it is away from the agent
ROBOTICS_EXTRA = "pip install 'gymnasium-robotics>=1.3'"

_MAZES = ("UMaze", "Open", "Medium", "Large")
_VARIANTS = ("", "_Diverse_G", "_Diverse_GR")


def maze_ids(agent: str, version: str) -> tuple[str, ...]:
    """Gymnasium-Robotics' ids `<agent>_<Maze>[_Diverse_G|_Diverse_GR][Dense]-<version>`."""
    return tuple(
        f"{agent}_{maze}{variant}{dense}-{version}"
        for dense in ("", "Dense")
        for maze in _MAZES
        for variant in _VARIANTS
        if not (maze == "UMaze" and variant)  # Gymnasium-Robotics has no diverse U-maze
    )


def robotics_spec(name: str) -> Any:
    """Gymnasium-Robotics' registration of `name` (ImportError naming the extra without it)."""
    try:
        import gymnasium
        import gymnasium_robotics
    except ImportError:
        raise ImportError(f"the maze twins need Gymnasium-Robotics: {ROBOTICS_EXTRA}") from None
    gymnasium.register_envs(gymnasium_robotics)
    return gymnasium.spec(name)


def maze_default_config(name: str, **extra: Any) -> config_dict.ConfigDict:
    """MazeEnv's defaults for the registered id `name` (keys: its kwarg names) and `extra`."""
    spec = robotics_spec(name)
    return config_dict.create(
        maze_map=[list(row) for row in spec.kwargs["maze_map"]],
        reward_type=spec.kwargs.get("reward_type", "sparse"),
        continuing_task=True,
        reset_target=False,
        **extra,
        episode_length=int(spec.max_episode_steps),
    )


def make_maze_spec(
    agent_xml: str, maze_map: list, scaling: float, height: float
) -> tuple[Any, mujoco.MjSpec]:
    """Gymnasium-Robotics' `Maze` and the MjSpec of the agent XML with its maze blocks."""
    from gymnasium_robotics.envs.maze.maze_v4 import Maze

    maze, maze_xml = Maze.make_maze(agent_xml, maze_map, scaling, height)
    try:
        spec = mujoco.MjSpec.from_file(maze_xml)
    finally:
        os.remove(maze_xml)  # make_maze leaves its generated XML in the temp dir
    return maze, spec


# --- collisions -------------------------------------------------------------------------------


def sphere_box(m: mjx.Model, d: mjx.Data, key: Any, geom: jax.Array) -> tuple:
    """Sphere-box contacts with the exact signed distance, also when apart: MJX's own
    sphere-box collider reports no contact until they overlap, so it misses contacts inside
    the geom margin that native MuJoCo makes. Same signature and output as MJX's colliders."""
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


sphere_box.ncon = 1
SPHERE_BOX = (mjx_types.GeomType.SPHERE, mjx_types.GeomType.BOX)


@contextlib.contextmanager
def collision_functions(functions: Mapping[tuple, Callable]) -> Iterator[None]:
    """Use `functions` (geom type pair -> collider) while a step is traced (MJX reads its
    collision table at trace time), so other MJX models keep MJX's own colliders."""
    table = collision_driver._COLLISION_FUNC
    previous = {key: table[key] for key in functions}
    table.update(functions)
    try:
        yield
    finally:
        table.update(previous)


# --- the task ---------------------------------------------------------------------------------


class GymMazeTask(ModelTask):
    """MazeEnv's goal logic over an MJX model; subclasses build `_mj_model` / `_mjx_model`,
    `_reset_data(start_xy)` and `_physics(data, action)`. See the module doc."""

    has_success = True
    scaling: float

    def __init__(self, name: str, config: config_dict.ConfigDict, maze: Any) -> None:
        if config.reward_type not in ("sparse", "dense"):
            raise ValueError(f"{name}: reward_type must be 'sparse' or 'dense'")
        self.name = name
        self._config = config
        self.maze = maze
        self._goals = np.array(maze.unique_goal_locations)
        self._resets = np.array(maze.unique_reset_locations)

    # --- subclass hooks ---
    def _reset_data(self, start: jax.Array) -> mjx.Data:
        raise NotImplementedError

    def _physics(self, data: mjx.Data, action: jax.Array) -> mjx.Data:
        raise NotImplementedError

    # --- MazeEnv ---
    def _noise(self, rng: jax.Array, dtype: Any) -> jax.Array:
        width = self._config.get("position_noise_range", POSITION_NOISE_RANGE) * self.scaling
        return jax.random.uniform(rng, (2,), dtype, -width, width)

    def _random_goal(self, rng: jax.Array, dtype: Any) -> jax.Array:
        k_cell, k_noise = jax.random.split(rng)
        goals = jnp.asarray(self._goals, dtype)
        return goals[jax.random.randint(k_cell, (), 0, len(goals))] + self._noise(k_noise, dtype)

    def reset(self, rng: jax.Array) -> State:
        rng, k_goal, k_cell, k_noise = jax.random.split(rng, 4)
        dtype = self._mjx_model.qpos0.dtype
        goal = self._random_goal(k_goal, dtype)
        resets = jnp.asarray(self._resets, dtype)
        # Uniform over the reset cells away from the goal = MazeEnv's rejection loop.
        away = jnp.linalg.norm(resets - goal, axis=1) > RESET_CLEARANCE * self.scaling
        logits = jnp.where(away | ~away.any(), 0.0, -jnp.inf)
        start = resets[jax.random.categorical(k_cell, logits)] + self._noise(k_noise, dtype)
        zero = jnp.zeros((), dtype)
        return self._state(self._reset_data(start), goal, zero, zero, rng)

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
        cfg = self._config
        dtype = self._mjx_model.qpos0.dtype
        data = self._physics(state.data, jnp.asarray(action, dtype))
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
        """A reached goal moves to a random goal farther than SUCCESS_DISTANCE from the agent
        (MazeEnv redraws until it is; here the first such of GOAL_RESAMPLE_TRIES draws)."""
        keys = jax.random.split(rng, GOAL_RESAMPLE_TRIES)
        draws = jax.vmap(lambda k: self._random_goal(k, goal.dtype))(keys)
        far = jnp.linalg.norm(draws - data.qpos[:2], axis=1) > SUCCESS_DISTANCE
        new = draws[jnp.argmax(far)]
        return jnp.where(success, new, goal)


def register_twins(
    ids: tuple[str, ...],
    default_config: Callable[[str], config_dict.ConfigDict],
    task_cls: Callable[[str, config_dict.ConfigDict], GymMazeTask],
    family: str,
) -> dict[str, Callable[..., Env]]:
    """Register an `Env` factory per id (overrides validated against `default_config(id)`)."""

    def make_env(name: str, **overrides: Any) -> Env:
        config = default_config(name)
        check_overrides(name, overrides, config.keys())
        config.update(overrides)
        task = task_cls(name, config)
        length = config.episode_length
        return Env(task, name, episode_length=length, has_success=True, config=config.to_dict())

    factories = {name: functools.partial(make_env, name) for name in ids}
    for name, factory in factories.items():
        if name not in registered_names():  # importlib.reload-safe
            register(name, factory, native_package="gymnasium_robotics", family=family)
    return factories
