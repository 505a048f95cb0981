"""D4RL-style goal-reaching mazes in MJX: `pointmaze-{umaze,medium,large}`, `antmaze-{...}`.

Layouts are D4RL's antmaze cell maps (`U_MAZE_TEST`, `BIG_MAZE_TEST`, `HARDEST_MAZE_TEST` of
`d4rl/locomotion/maze_env.py`) with their fixed start (`S`) and evaluation goal (`G`) cells.
Coordinates follow D4RL: cell (row, col) has its centre at
`x = (col - start_col) * scaling`, `y = (row - start_row) * scaling`, so the start cell is the
origin and the antmaze goals are D4RL's (0, 8), (20, 20) and (32, 24). `scaling` is 4 m per
cell for antmaze (D4RL `maze_size_scaling=4`) and 1 m for pointmaze. Every wall cell is one box
geom (2 m tall for the ant, 0.5 m for the point, as D4RL's `maze_height=0.5`). Boxes are not
merged: equal boxes make MJX's bounding-sphere broad phase (`max_geom_pairs` in the MJCF) exact,
so each substep collides only the few nearest walls whatever the maze size.

Task conventions (see `envs.base`): actions in [-1, 1] (clipped; the ctrlrange is [-1, 1]);
reward 1.0 within `success_radius` = 0.5 maze units (world units: metres) of the goal, else 0,
exactly D4RL's `GoalReachingEnv` test `norm(xy - goal) <= 0.5` (also for the ant, whose cells are
4 units wide);
`done` = success (true termination, as in the paper's antmaze); time limits (700 umaze, 1000
medium/large) are left to the batch wrapper. `metrics`: `success`, `dist_to_goal`.

Observations (float32):
  pointmaze: [x, y, vx, vy, goal_x, goal_y] (6)
  antmaze:   [qpos[:15], qvel[:14], goal_x, goal_y] (31); qpos includes the torso x, y as in
             D4RL. `goal_in_obs=False` drops the goal (4 / 29 dims, D4RL's own obs layout).

Factories in `MAZE_TASKS` take config overrides (`default_config` keys); importing this module
registers them with `envs.register` (`envs/__init__.py` imports it). Helpers for the dataset
collectors (`envs/maze_data.py`): `get_layout`, `cell_to_xy`, `xy_to_cell`, `free_cells`,
`next_cell_table`, `bfs_next_cell` (`grid_*`: the same for any wall grid).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from ml_collections import config_dict
from mujoco import mjx
from mujoco_playground._src import mjx_env
from mujoco_playground._src.mjx_env import State

from envs.base import Env, ModelTask
from envs.registry import check_overrides, register, registered_names

__all__ = [
    "LAYOUTS",
    "MAZE_TASKS",
    "SCALING",
    "AntMaze",
    "AssetTask",
    "MazeLayout",
    "MazeTask",
    "PointMaze",
    "ant_body_obs",
    "ant_initial_q",
    "bfs_next_cell",
    "cell_to_xy",
    "free_cells",
    "get_layout",
    "grid_distances",
    "grid_next_cell_table",
    "make_maze",
    "maze_distances",
    "next_cell_table",
    "xy_to_cell",
]

_ASSETS = Path(__file__).parent / "assets"

# D4RL's evaluation maps: '#' wall, '.' free, 'S' start cell, 'G' evaluation goal cell.
# Row index grows with y, column index with x.
_MAPS: dict[str, tuple[str, ...]] = {
    "umaze": (  # U_MAZE_TEST
        "#####",
        "#S..#",
        "###.#",
        "#G..#",
        "#####",
    ),
    "medium": (  # BIG_MAZE_TEST
        "########",
        "#S.##..#",
        "#..#...#",
        "##...###",
        "#..#...#",
        "#.#..#.#",
        "#...#.G#",
        "########",
    ),
    "large": (  # HARDEST_MAZE_TEST
        "############",
        "#S...#.....#",
        "#.##.#.#.#.#",
        "#......#...#",
        "#.####.###.#",
        "#..#.#.....#",
        "##.#.#.#.###",
        "#..#...#.G.#",
        "############",
    ),
}
LAYOUTS: tuple[str, ...] = tuple(_MAPS)
SCALING = {"point": 1.0, "ant": 4.0}  # metres per cell
EPISODE_LENGTH = {"umaze": 700, "medium": 1000, "large": 1000}
# Hand-picked start/goal cells for "play"-style collection (D4RL's antmaze-*-play used fixed
# hand-picked locations; these are dead ends, corners and junctions of each map).
PLAY_CELLS: dict[str, tuple[tuple[int, int], ...]] = {
    "umaze": ((1, 1), (1, 3), (3, 3), (3, 1)),
    "medium": ((1, 1), (1, 6), (2, 4), (3, 3), (4, 1), (4, 6), (6, 1), (6, 3), (5, 6), (6, 6)),
    "large": (
        (1, 1), (1, 4), (1, 10), (3, 1), (3, 6), (3, 10), (5, 2), (5, 4),
        (5, 8), (7, 1), (7, 5), (7, 8), (7, 9), (3, 8),
    ),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MazeLayout:
    name: str
    walls: np.ndarray  # [rows, cols] bool
    start: tuple[int, int]  # (row, col)
    goal: tuple[int, int]  # (row, col): D4RL's fixed evaluation goal

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape


@functools.cache
def get_layout(layout: str) -> MazeLayout:
    if layout not in _MAPS:
        raise ValueError(f"unknown maze layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    rows = _MAPS[layout]
    walls = np.array([[ch == "#" for ch in row] for row in rows])
    find = lambda ch: next(
        (r, c) for r, row in enumerate(rows) for c, x in enumerate(row) if x == ch
    )
    return MazeLayout(layout, walls, find("S"), find("G"))


# --- cell geometry (jnp, so usable on device inside jit; layout and scaling are static) ---------


def cell_to_xy(cell: jax.Array, layout: str, scaling: float) -> jax.Array:
    """[..., 2] int (row, col) -> [..., 2] float32 (x, y) of the cell centre."""
    start = jnp.asarray(get_layout(layout).start, jnp.float32)
    rc = jnp.asarray(cell, jnp.float32) - start
    return rc[..., ::-1] * scaling


def xy_to_cell(xy: jax.Array, layout: str, scaling: float) -> jax.Array:
    """[..., 2] (x, y) -> [..., 2] int32 (row, col) of the containing cell (clipped to the grid)."""
    lay = get_layout(layout)
    rc = jnp.floor(jnp.asarray(xy, jnp.float32)[..., ::-1] / scaling + 0.5).astype(jnp.int32)
    rc = rc + jnp.asarray(lay.start, jnp.int32)
    return jnp.clip(rc, 0, jnp.asarray(lay.shape, jnp.int32) - 1)


def free_cells(layout: str) -> np.ndarray:
    """[n, 2] int32 (row, col) of every free cell, row-major."""
    return np.argwhere(~get_layout(layout).walls).astype(np.int32)


_MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))  # 4-connected maze graph


@functools.cache
def maze_distances(layout: str) -> np.ndarray:
    """`grid_distances` of a layout's walls."""
    return grid_distances(get_layout(layout).walls)


@functools.cache
def next_cell_table(layout: str) -> np.ndarray:
    """`grid_next_cell_table` of a layout's walls."""
    return grid_next_cell_table(get_layout(layout).walls)


def grid_distances(walls: np.ndarray) -> np.ndarray:
    """[R*C, R*C] int32 BFS path length in cells between flat cells (-1: wall/unreachable) of a
    [R, C] bool wall grid with a wall border (any maze: this project's or Gymnasium-Robotics')."""
    nr, nc = walls.shape
    dist = np.full((nr * nc, nr * nc), -1, np.int32)
    for r0, c0 in np.argwhere(~walls):
        d = dist[r0 * nc + c0]
        d[r0 * nc + c0] = 0
        queue = collections.deque([(r0, c0)])
        while queue:
            r, c = queue.popleft()
            for dr, dc in _MOVES:
                rr, cc = r + dr, c + dc
                if not walls[rr, cc] and d[rr * nc + cc] < 0:
                    d[rr * nc + cc] = d[r * nc + c] + 1
                    queue.append((rr, cc))
    return dist


def grid_next_cell_table(walls: np.ndarray) -> np.ndarray:
    """[R*C, R*C] int32: flat index of the next cell on a shortest path from cell i to goal j.

    Equal to i when i == j, i is a wall, or j is unreachable. Index on device with
    `table[r * C + c, gr * C + gc]` (the collectors' waypoint controller does this in jit).
    """
    nr, nc = walls.shape
    dist = grid_distances(walls)
    table = np.tile(np.arange(nr * nc, dtype=np.int32)[:, None], (1, nr * nc))
    for r, c in np.argwhere(~walls):
        i = r * nc + c
        for goal in range(nr * nc):
            if dist[i, goal] <= 0:
                continue
            for dr, dc in _MOVES:  # a neighbour one step closer to the goal
                j = (r + dr) * nc + (c + dc)
                if dist[j, goal] == dist[i, goal] - 1:
                    table[i, goal] = j
                    break
    return table


def bfs_next_cell(
    layout: str, from_cell: tuple[int, int], goal_cell: tuple[int, int]
) -> tuple[int, int]:
    """Host version of `next_cell_table`: the next (row, col) on a shortest path."""
    nc = get_layout(layout).shape[1]
    nxt = int(
        next_cell_table(layout)[from_cell[0] * nc + from_cell[1], goal_cell[0] * nc + goal_cell[1]]
    )
    return divmod(nxt, nc)


# --- tasks ----------------------------------------------------------------------------------------


def default_config(layout: str = "umaze") -> config_dict.ConfigDict:
    """Task config; every key is a valid `make_maze` override.

    Distances are in maze units (world coordinates; one cell is `SCALING[agent]` units), as in
    D4RL: success within 0.5 units, start noise +-0.1 units (gym ant's qpos reset noise).
    """
    return config_dict.create(
        ctrl_dt=0.05,  # 5 substeps of 0.01 s (D4RL's ant frame skip)
        sim_dt=0.01,
        episode_length=EPISODE_LENGTH[layout],
        goal_cell=None,  # (row, col) free cell; None: D4RL's evaluation goal
        goal_noise=0.0,  # uniform +-goal_noise units on the goal xy (0: the fixed eval goal)
        random_goal=False,  # goal cell uniform over free cells (other than the start cell)
        start_cell=None,  # (row, col); None: D4RL's start cell
        random_start=False,  # start cell uniform over free cells
        reset_noise=0.1,  # uniform +-reset_noise units on the start xy
        success_radius=0.5,  # units (D4RL: 0.5 for maze2d and antmaze alike)
        goal_in_obs=True,  # append (goal_x, goal_y) to the observation
    )


class AssetTask(ModelTask, mjx_env.MjxEnv):
    """Playground `MjxEnv` plumbing for this project's MJCF tasks (`envs/assets/<xml_file>`);
    subclasses build `self._mj_model` and `self._mjx_model`."""

    xml_file: str

    @property
    def xml_path(self) -> str:
        return str(_ASSETS / self.xml_file)


class MazeTask(AssetTask):
    """Shared maze logic; subclasses give the agent MJCF, initial qpos and observation."""

    agent: str

    def __init__(
        self,
        layout: str = "umaze",
        config: config_dict.ConfigDict | None = None,
        config_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(config or default_config(layout), dict(config_overrides or {}))
        cfg = self._config
        self.layout = get_layout(layout)
        self.scaling = SCALING[self.agent]
        self.name = f"{self.agent}maze-{layout}"
        self.episode_length = int(cfg.episode_length)
        self.has_success = True
        self.success_radius = float(cfg.success_radius)
        self._free = free_cells(layout)
        self._start = self._check_cell(cfg.start_cell, self.layout.start, "start_cell")
        self._goal = self._check_cell(cfg.goal_cell, self.layout.goal, "goal_cell")
        self._mj_model = self._build_model()
        self._mjx_model = mjx.put_model(self._mj_model, impl="jax")

    def _check_cell(self, cell: Any, default: tuple[int, int], key: str) -> tuple[int, int]:
        cell = default if cell is None else tuple(int(v) for v in cell)
        if len(cell) != 2 or not any((self._free == cell).all(axis=1)):
            raise ValueError(f"{key}={cell} is not a free cell of {self.layout.name!r}")
        return cell

    def _build_model(self) -> mujoco.MjModel:
        spec = mujoco.MjSpec.from_file(str(_ASSETS / self.xml_file))
        half = 0.5 * self.scaling
        height = 0.25 * self.scaling  # half-height of D4RL's maze_height=0.5 blocks
        for r, c in np.argwhere(self.layout.walls):
            x, y = np.asarray(cell_to_xy(np.array([r, c]), self.layout.name, self.scaling))
            spec.worldbody.add_geom(
                name=f"wall_{r}_{c}",
                default=spec.find_default("wall"),
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[half, half, height],
                pos=[float(x), float(y), height],
            )
        # Floor under the whole maze (the plane's size only matters for rendering).
        lo = np.asarray(cell_to_xy(np.zeros(2), self.layout.name, self.scaling))
        hi = np.asarray(cell_to_xy(np.array(self.layout.shape) - 1, self.layout.name, self.scaling))
        floor = spec.geom("floor")
        floor.pos = [*((lo + hi) / 2), 0.0]
        floor.size = [*((hi - lo) / 2 + half), 0.1]
        return spec.compile()

    # --- subclass hooks ---
    def _init_q(self, rng: jax.Array, xy: jax.Array) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def _agent_obs(self, data: mjx.Data) -> jax.Array:
        raise NotImplementedError

    # --- API ---
    def reset(self, rng: jax.Array) -> State:
        rng, k_start, k_goal = jax.random.split(rng, 3)
        free = jnp.asarray(self._free)
        n = len(self._free)
        if self._config.random_start:
            start_idx = jax.random.randint(k_start, (), 0, n)
        else:
            start_idx = jnp.asarray(int(np.flatnonzero((self._free == self._start).all(1))[0]))
        if self._config.random_goal:  # any free cell but the start cell
            goal_cell = free[(start_idx + jax.random.randint(k_goal, (), 1, n)) % n]
        else:
            goal_cell = jnp.asarray(self._goal)
        return self.reset_to(rng, free[start_idx], goal_cell)

    def reset_to(
        self, rng: jax.Array, start_cell: jax.Array, goal_cell: jax.Array | None = None
    ) -> State:
        """Reset at `start_cell` (+ reset noise) with goal `goal_cell` (default: config goal)."""
        k_pos, k_goal, k_q = jax.random.split(rng, 3)
        cfg = self._config
        goal_cell = jnp.asarray(self._goal if goal_cell is None else goal_cell)
        noise = lambda k, w: jax.random.uniform(k, (2,), minval=-w, maxval=w)
        goal = self.cell_xy(goal_cell) + noise(k_goal, cfg.goal_noise)
        xy = self.cell_xy(start_cell) + noise(k_pos, cfg.reset_noise)
        qpos, qvel = self._init_q(k_q, xy)
        # No mjx.forward here: observations only read qpos/qvel, and mjx.step recomputes every
        # derived quantity from them first; skipping it halves the compile time of anything
        # that contains a reset (BatchEnv.step auto-resets), ~8 s per compile on CPU.
        data = mjx.make_data(self._mjx_model).replace(qpos=qpos, qvel=qvel)
        dist = jnp.linalg.norm(qpos[:2] - goal)
        metrics = {"success": jnp.zeros((), jnp.float32), "dist_to_goal": dist}
        zero = jnp.zeros((), jnp.float32)
        return State(data, self._obs(data, goal), zero, zero, metrics, {"goal": goal})

    def step(self, state: State, action: jax.Array) -> State:
        ctrl = jnp.clip(action, -1.0, 1.0)  # ctrlrange is [-1, 1]: no rescaling needed
        data = mjx_env.step(self._mjx_model, state.data, ctrl, self.n_substeps)
        goal = state.info["goal"]
        dist = jnp.linalg.norm(data.qpos[:2] - goal)
        success = (dist <= self.success_radius).astype(jnp.float32)
        metrics = {"success": success, "dist_to_goal": dist}
        obs = self._obs(data, goal)
        return state.replace(data=data, obs=obs, reward=success, done=success, metrics=metrics)

    def _obs(self, data: mjx.Data, goal: jax.Array) -> jax.Array:
        obs = self._agent_obs(data)
        if self._config.goal_in_obs:
            obs = jnp.concatenate([obs, goal])
        return obs.astype(jnp.float32)

    def cell_xy(self, cell: jax.Array) -> jax.Array:
        return cell_to_xy(cell, self.layout.name, self.scaling)

    def xy_cell(self, xy: jax.Array) -> jax.Array:
        return xy_to_cell(xy, self.layout.name, self.scaling)

    @property
    def eval_goal(self) -> np.ndarray:
        """(x, y) of the configured goal cell centre (before goal noise)."""
        return np.asarray(self.cell_xy(np.array(self._goal)))


class PointMaze(MazeTask):
    """2-DoF point mass (slide joints x, y; damped, so it is controllable); cheap on CPU."""

    agent = "point"
    xml_file = "maze_point.xml"

    def _init_q(self, rng: jax.Array, xy: jax.Array) -> tuple[jax.Array, jax.Array]:
        return xy, jnp.zeros(2)

    def _agent_obs(self, data: mjx.Data) -> jax.Array:
        return jnp.concatenate([data.qpos, data.qvel])


_ANT_QPOS0 = np.array([0.75, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1], np.float32)  # z, quat, legs


def ant_body_obs(data: mjx.Data) -> jax.Array:
    """The ant's part of the antmaze observation: [qpos[:15], qvel[:14]] (torso x, y included)."""
    return jnp.concatenate([data.qpos[:15], data.qvel[:14]])


def ant_initial_q(rng: jax.Array, xy: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Standing ant at `xy` with gym's reset noise: (qpos [15], qvel [14])."""
    k_pos, k_vel = jax.random.split(rng)
    qpos = jnp.concatenate([xy, jnp.asarray(_ANT_QPOS0)])
    # gym ant: +-0.1 uniform on joint angles (torso pose kept upright), 0.1 * N(0, 1) on qvel.
    qpos = qpos.at[7:].add(jax.random.uniform(k_pos, (8,), minval=-0.1, maxval=0.1))
    qvel = 0.1 * jax.random.normal(k_vel, (14,))
    return qpos, qvel


class AntMaze(MazeTask):
    """D4RL-like ant (8 motors, gear 30, ctrlrange [-1, 1]); gym's reset noise on the joints."""

    agent = "ant"
    xml_file = "maze_ant.xml"

    def _init_q(self, rng: jax.Array, xy: jax.Array) -> tuple[jax.Array, jax.Array]:
        return ant_initial_q(rng, xy)

    def _agent_obs(self, data: mjx.Data) -> jax.Array:
        return ant_body_obs(data)


# --- factories ------------------------------------------------------------------------------------

_AGENTS: dict[str, type[MazeTask]] = {"point": PointMaze, "ant": AntMaze}


def make_task(name: str, **overrides: Any) -> MazeTask:
    """The bare task `name` (e.g. "antmaze-large") with validated config overrides."""
    agent, _, layout = name.partition("maze-")
    if agent not in _AGENTS or layout not in _MAPS:
        raise ValueError(f"unknown maze task {name!r}; valid: {', '.join(MAZE_TASKS)}")
    check_overrides(name, overrides, default_config(layout).keys())
    return _AGENTS[agent](layout, config_overrides=overrides)


def make_maze(name: str, **overrides: Any) -> Env:
    """`make_task` wrapped in the project's `Env` (what `envs.make` returns)."""
    task = make_task(name, **overrides)
    return Env(
        task,
        name,
        episode_length=task.episode_length,
        has_success=True,
        config=task.config.to_dict(),
    )


MAZE_TASKS: dict[str, Callable[..., Env]] = {
    f"{agent}maze-{layout}": functools.partial(make_maze, f"{agent}maze-{layout}")
    for agent in _AGENTS
    for layout in LAYOUTS
}


def _register_all() -> None:
    for _name, _factory in MAZE_TASKS.items():
        if _name not in registered_names():  # importlib.reload-safe
            register(_name, _factory)


_register_all()
