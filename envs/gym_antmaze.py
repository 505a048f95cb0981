"""MJX twin of Gymnasium-Robotics AntMaze (`AntMaze_<Maze>[_Diverse_G|_Diverse_GR][Dense]-v4`),
registered under the Gymnasium-Robotics ids, so Minari's `D4RL/antmaze/*` datasets (recorded in
`AntMaze_*-v4`) are valid data for it.

The model is Gymnasium-Robotics' own: Gymnasium's `ant.xml` (the file `AntMazeEnv` loads) with
the maze blocks its `Maze.make_maze` adds at `maze_size_scaling=4`, `maze_height=0.5` (4 m cells,
2 m tall walls); maps and time limits (700 UMaze / Open, 1000 Medium / Large) come from its
registry. Physics: the ant's own options (RK4, timestep 0.01, Newton solver, pyramidal cone),
`frame_skip` = 5 (AntEnv v4), actions are the motors' ctrl (ctrlrange [-1, 1]).

Semantics kept from `AntMazeEnv` (goal / reset / reward logic is `MazeEnv`'s, shared with the
PointMaze twin in `envs.gym_maze`):
- Frame: centred, cell (row, col) at `x = (col + 0.5) * 4 - 2 * width`,
  `y = 2 * height - (row + 0.5) * 4`. The project's own `antmaze-*` (envs/maze.py) use D4RL's
  frame and another ant: not the same env.
- Reset: goal = random goal cell + U(+-1) per coordinate; start = random reset cell more than 2
  from the goal + U(+-1); the ant at its XML pose (torso z 0.75, joints 0) at the start x, y,
  at rest (AntMazeEnv passes `reset_noise_scale=0` to the ant).
- Success within 0.45 of the goal (x, y); sparse reward = success, dense = exp(-distance). The
  ant's own healthy termination and reward are *not* used (AntMazeEnv discards them): with
  `continuing_task=True` (default, how Minari's datasets were recorded) an episode never
  terminates; with False it terminates on success. `reset_target` as in PointMaze.

Observation (float32, 31): Gymnasium-Robotics' dict flattened as `[achieved_goal, observation,
desired_goal]` = `[qpos (15, starting with the torso x, y), qvel (14), goal_x, goal_y]`, D4RL's
antmaze layout and the order `wsrl_mjx.datasets.minari_io` flattens Minari's AntMaze rows in.

Collisions with the nearest walls only (docs/gymnasium_twins.md). Natively every ant geom is
paired with every wall block (13 x up to ~70 capsule/sphere-box pairs on Large), which MJX
evaluates in full every physics step. Every point of the ant lies within `reach` (< 1.3 m, from
the model's link lengths) of the torso, less than half a 4 m cell, so all walls the ant can touch
are among the 3 cells next to the torso's cell towards its nearest cell corner. The twin's model
keeps the blocks for rendering but without collisions and adds `WALL_SLOTS` = 3 mocap boxes with
the blocks' size and contact parameters; before every physics step they are moved onto those 3
cells where they are walls (elsewhere parked out of reach). Contacts with the world's static
blocks and with mocap bodies have the same Jacobian (neither moves with the ant's dofs), so the
contact set is the native one. Wall contacts honour the geom margin (MuJoCo makes contacts within
`margin` = 0.01 + 0.01; MJX's sphere- and capsule-box colliders only on overlap): sphere-box uses
`gym_maze.sphere_box`, capsule-box MJX's collider on the capsule inflated by the margin.

MJX allocates constraint rows for every candidate contact (here 1 + 24 floor, 3 + 72 wall
contacts), active or not, and the solver's cost grows with them. `max_contact_points` =
`MAX_CONTACTS` keeps the deepest 32 per step (MJX's own option). Contacts farther than the margin
exert no force, so this is exact whenever at most 32 contacts are within the margin at once;
native random-action rollouts have at most 5 (measured in docs/gymnasium_twins.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from ml_collections import config_dict
from mujoco import mjx
from mujoco.mjx._src import collision_convex, collision_driver
from mujoco.mjx._src import types as mjx_types

from envs.base import Env
from envs.gym_maze import (
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

__all__ = [
    "ANTMAZE_IDS",
    "ANTMAZE_TASKS",
    "SUCCESS_DISTANCE",
    "GymAntMaze",
    "default_config",
    "near_wall_table",
]

MAZE_SIZE_SCALING = 4.0  # AntMazeEnv's maze_size_scaling ...
MAZE_HEIGHT = 0.5  # ... and maze_height (x scaling: 2 m walls)
FRAME_SKIP = 5  # AntEnv v4's physics steps per env step
WALL_SLOTS = 3  # walls next to the torso's cell towards its nearest corner
PARKED = np.array([0.0, 0.0, -1e3])  # an unused slot: far below the floor, out of reach
MAX_CONTACTS = 32  # contacts MJX keeps per step, the deepest (native random rollouts: <= 5 active)
SUBSTEP_SLACK = 0.5  # m the torso may move within one physics step (RK4 stages) and stay exact
TORSO = "torso"
CONTACT_FIELDS = (  # what a contact with a block takes from it (must equal in the slots)
    "geom_size",
    "geom_condim",
    "geom_priority",
    "geom_friction",
    "geom_margin",
    "geom_gap",
    "geom_solmix",
    "geom_solref",
    "geom_solimp",
)
CAPSULE_BOX = (mjx_types.GeomType.CAPSULE, mjx_types.GeomType.BOX)

ANTMAZE_IDS: tuple[str, ...] = maze_ids("AntMaze", "v4")


def default_config(name: str) -> config_dict.ConfigDict:
    """AntMazeEnv's defaults for the registered id `name`; keys are its kwarg names (it takes
    no `position_noise_range`: its ant env would refuse the kwarg)."""
    return maze_default_config(name)


def _margin_aware(collider: Callable) -> Callable:
    """`collider` (an MJX one) reporting contacts within the pair's margin as MuJoCo does: run on
    the first geom's radius grown by the margin, then the distance and the contact point (the
    midpoint of the surfaces) moved back by it."""

    def collide(m: mjx.Model, d: mjx.Data, key: Any, geom: jax.Array) -> tuple:
        g1, g2 = geom.T
        margin = m.geom_margin[g1] + m.geom_margin[g2]  # MuJoCo's contact margin (gap 0)
        size = m.geom_size.at[g1, 0].set(m.geom_size[g1, 0] + margin)
        dist, pos, frame = collider(m.replace(geom_size=size), d, key, geom)
        margin = jnp.repeat(margin, collider.ncon)  # contacts come pair by pair
        normal = frame[:, 0]  # from geom1 into geom2
        return dist + margin, pos - 0.5 * margin[:, None] * normal, frame

    collide.ncon = collider.ncon
    return collide


_WALL_COLLIDERS = {
    SPHERE_BOX: sphere_box,
    CAPSULE_BOX: _margin_aware(collision_convex.capsule_convex),
}


def near_wall_table(maze: Any, wall_z: float) -> np.ndarray:
    """[rows, cols, 2, 2, WALL_SLOTS, 3]: for a torso in cell (row, col) on the -/+ x side and
    -/+ y side of the cell centre, the centres of the x-, y- and diagonal neighbour cells that
    are walls (`PARKED` where the cell is free or off the map)."""
    walls = np.array([[cell == 1 for cell in row] for row in maze.maze_map])
    rows, cols = walls.shape
    table = np.tile(PARKED, (rows, cols, 2, 2, WALL_SLOTS, 1))
    for i, j, qx, qy in np.ndindex(rows, cols, 2, 2):
        dx, dy = 2 * qx - 1, 2 * qy - 1  # +y is one row up (rows are reversed)
        for k, (r, c) in enumerate(((i, j + dx), (i - dy, j), (i - dy, j + dx))):
            if 0 <= r < rows and 0 <= c < cols and walls[r, c]:
                table[i, j, qx, qy, k] = [*maze.cell_rowcol_to_xy(np.array([r, c])), wall_z]
    return table


def ant_reach(model: mujoco.MjModel, torso: int, margin: float) -> float:
    """An upper bound on how far any ant geom (plus the contact margin) reaches from the torso
    origin, whatever the joint angles: link offsets summed up the tree (hinges sit at their
    body origins, so rotating one keeps the offsets' lengths)."""
    if np.abs(model.jnt_pos).max() > 0:
        raise ValueError("ant_reach assumes every joint at its body origin")
    reach = 0.0
    for g in np.flatnonzero(model.geom_bodyid != 0):
        r = np.linalg.norm(model.geom_pos[g]) + model.geom_rbound[g] + margin
        b = model.geom_bodyid[g]
        while b != torso:
            r, b = r + np.linalg.norm(model.body_pos[b]), model.body_parentid[b]
        reach = max(reach, r)
    return float(reach)


def _add_first_numeric(spec: mujoco.MjSpec, name: str, value: int) -> None:
    """Add a one-value numeric as the model's first: MJX reads `numeric_data[id]` (not at the
    numeric's address), so after ant.xml's 15-value `init_qpos` it would read a wrong value
    (0 here: every contact dropped). The other numerics are re-added after it unchanged."""
    others = [(n.name, list(n.data)) for n in spec.numerics]
    for numeric in list(spec.numerics):
        spec.delete(numeric)
    spec.add_numeric(name=name, data=[value])
    for other, data in others:
        spec.add_numeric(name=other, data=data)


class GymAntMaze(GymMazeTask):
    """AntMaze as a pure reset/step pair over MJX (`envs.base.Task`); see the module doc."""

    scaling = MAZE_SIZE_SCALING

    def __init__(self, name: str, config: config_dict.ConfigDict) -> None:
        xml = gym_asset("envs", "mujoco", "assets", "ant.xml")
        maze, spec = make_maze_spec(str(xml), config.maze_map, MAZE_SIZE_SCALING, MAZE_HEIGHT)
        super().__init__(name, config, maze)
        self.native_model = spec.compile()  # Gymnasium-Robotics' model, all blocks colliding
        self._mj_model = self._with_wall_slots(spec)
        self._mjx_model = mjx.put_model(self._mj_model, impl="jax")
        self._torso = mujoco.mj_name2id(self._mj_model, mujoco.mjtObj.mjOBJ_BODY, TORSO)
        block = self._block_ids()[0]
        margin = 2 * float(self.native_model.geom_margin[block])  # ant and block margins: equal
        self.reach = ant_reach(self.native_model, self._torso, margin)
        if self.reach + SUBSTEP_SLACK >= 0.5 * MAZE_SIZE_SCALING:
            raise ValueError(f"{name}: the ant reaches {self.reach:.2f} m, past half a cell")
        wall_z = float(self.native_model.geom_pos[block, 2])
        self._near_walls = jnp.asarray(near_wall_table(maze, wall_z))

    def _block_ids(self) -> np.ndarray:
        m = self.native_model
        names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or "" for g in range(m.ngeom)]
        return np.array([g for g, n in enumerate(names) if n.startswith("block_")])

    def _with_wall_slots(self, spec: mujoco.MjSpec) -> mujoco.MjModel:
        """The native model with its blocks kept for looks only and `WALL_SLOTS` mocap boxes
        with the blocks' contact parameters (checked field by field)."""
        blocks = self._block_ids()
        native = self.native_model
        for field in CONTACT_FIELDS:  # one template: all blocks alike
            values = getattr(native, field)[blocks]
            if not (values == values[0]).all():
                raise ValueError(f"{self.name}: maze blocks differ in {field}")
        first = blocks[0]
        for geom in spec.geoms:
            if geom.name.startswith("block_"):
                geom.contype = geom.conaffinity = 0
        for k in range(WALL_SLOTS):
            body = spec.worldbody.add_body(name=f"wall_slot_{k}", mocap=True, pos=PARKED)
            body.add_geom(
                name=f"wall_slot_{k}",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=native.geom_size[first],
                condim=int(native.geom_condim[first]),
                priority=int(native.geom_priority[first]),
                friction=native.geom_friction[first],
                margin=float(native.geom_margin[first]),
                gap=float(native.geom_gap[first]),
                solmix=float(native.geom_solmix[first]),
                solref=native.geom_solref[first],
                solimp=native.geom_solimp[first],
                # Collide with the ant (its contype 1) but not with each other; the floor is
                # excluded below (its contype 1 meets this conaffinity).
                contype=0,
                conaffinity=int(native.geom_conaffinity[first]),
                rgba=[0, 0, 0, 0],
            )
            spec.add_exclude(bodyname1="world", bodyname2=body.name)
        _add_first_numeric(spec, "max_contact_points", MAX_CONTACTS)
        model = spec.compile()
        if collision_driver.make_condim(model).size != MAX_CONTACTS:
            raise ValueError(f"{self.name}: MJX would not keep {MAX_CONTACTS} contacts")
        slots = np.arange(model.ngeom - WALL_SLOTS, model.ngeom)
        for field in CONTACT_FIELDS:
            if not np.allclose(getattr(model, field)[slots], getattr(native, field)[first]):
                raise ValueError(f"{self.name}: a wall slot's {field} is not the blocks'")
        return model

    def near_walls(self, xy: jax.Array) -> jax.Array:
        """[WALL_SLOTS, 3] mocap positions: the walls the ant at torso `xy` can touch."""
        s, maze = MAZE_SIZE_SCALING, self.maze
        rows, cols = self._near_walls.shape[:2]
        col = jnp.clip(jnp.floor((xy[0] + maze.x_map_center) / s).astype(int), 0, cols - 1)
        row = jnp.clip(jnp.floor((maze.y_map_center - xy[1]) / s).astype(int), 0, rows - 1)
        centre_x = (col + 0.5) * s - maze.x_map_center
        centre_y = maze.y_map_center - (row + 0.5) * s
        table = self._near_walls.astype(xy.dtype)
        return table[row, col, (xy[0] > centre_x).astype(int), (xy[1] > centre_y).astype(int)]

    def _reset_data(self, start: jax.Array) -> mjx.Data:
        m = self._mjx_model
        qpos = m.qpos0.at[:2].set(start)
        return mjx.make_data(m).replace(
            qpos=qpos, qvel=jnp.zeros(m.nv, qpos.dtype), mocap_pos=self.near_walls(start)
        )

    def _physics(self, data: mjx.Data, action: jax.Array) -> mjx.Data:
        m = self._mjx_model

        def substep(d: mjx.Data, _: None) -> tuple[mjx.Data, None]:
            d = d.replace(mocap_pos=self.near_walls(d.qpos[:2]))
            return mjx.step(m, d), None

        with collision_functions(_WALL_COLLIDERS):
            data, _ = jax.lax.scan(substep, data.replace(ctrl=action), None, length=FRAME_SKIP)
        return data


ANTMAZE_TASKS: dict[str, Callable[..., Env]] = register_twins(
    ANTMAZE_IDS, default_config, GymAntMaze, "antmaze"
)
