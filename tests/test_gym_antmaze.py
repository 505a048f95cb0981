"""The AntMaze twins (envs/gym_antmaze.py) against native Gymnasium-Robotics AntMaze.

Cheap checks here (no physics step is compiled): ids, sizes, time limits and kwargs; the frame,
goal and reset sampling; the wall-slot model; and the nearest-wall culling's geometric claim.

The physics, for UMaze, Medium and Large, is tested elsewhere in the suite (one compile per maze
and file, ~50 s of CPU each):
- tests/test_antmaze_parity.py: one step in float64 from native states (open floor and along
  walls). Steps off the floor, wall contacts included, must agree within 1e-9 (measured
  <= 4.2e-14); near the floor MuJoCo's pyramidal cone differs in MJX, so >= 10 % of those steps
  exact (measured 24-47 %) and qpos / qvel within 0.15 / 8 (measured <= 0.051 / 2.6); success,
  reward and done agree. The same checks reject 1 % stronger motors and walls without margin.
- tests/test_antmaze_behaviour.py: the float32 twin against native over 32 random-action
  episodes of 50 steps: dense return, displacement, torso height and joint speed by two-sample
  KS tests at a family-wise 1 %; the same test rejects motors x0.8.
- tests/test_minari.py: a DataCollector-made AntMaze_UMaze-v4 dataset through `pretrain` and
  `finetune --method wsrl` in the twin.
The measurements behind the tolerances are in docs/gymnasium_twins.md ("AntMaze parity");
`tests/antmaze_parity.py` (the shared helpers) also runs the larger measurements by hand
(results/antmaze_parity/), including the culling check, which is not in the suite.
"""

import jax
import mujoco
import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
gymnasium_robotics = pytest.importorskip("gymnasium_robotics")

import envs  # noqa: E402
from envs import gym_antmaze  # noqa: E402

gym.register_envs(gymnasium_robotics)
MAZES = ("AntMaze_UMaze-v4", "AntMaze_Medium-v4", "AntMaze_Large_Diverse_GR-v4")


@pytest.fixture(scope="module", params=MAZES)
def twin(request):
    return envs.make(request.param)


def test_registered_under_every_gymnasium_robotics_v4_id():
    native = {i for i in gym.registry if i.startswith("AntMaze_") and i.endswith("-v4")}
    assert set(gym_antmaze.ANTMAZE_IDS) == native
    assert set(gym_antmaze.ANTMAZE_IDS) <= set(envs.registered_names())


def test_sizes_time_limits_and_kwargs_are_native(twin):
    spec = gym.spec(twin.name)
    assert (twin.observation_size, twin.action_size) == (31, 8)  # [x, y, 27 ant, goal x, y]
    assert twin.episode_length == spec.max_episode_steps
    kwargs = {k: v for k, v in twin.config.items() if k != "episode_length"}
    assert kwargs["maze_map"] == [list(r) for r in spec.kwargs["maze_map"]]
    native = gym.make(twin.name, **kwargs).unwrapped  # every config key is a native kwarg
    assert (native.continuing_task, native.reset_target) == (True, False)
    assert native.reward_type == twin.config["reward_type"]
    with pytest.raises(ValueError, match="unknown override"):
        envs.make(twin.name, position_noise_range=0.1)  # the native ant refuses it too


def test_model_is_the_native_one_plus_wall_slots(twin):
    task = twin.task
    native = gym.make(twin.name).unwrapped.model
    m = task.mj_model
    assert (m.nq, m.nv, m.nu, m.nmocap) == (native.nq, native.nv, native.nu, 3)
    for field in ("body_mass", "dof_damping", "actuator_gear", "jnt_range", "geom_size"):
        np.testing.assert_array_equal(
            getattr(m, field)[: getattr(native, field).shape[0]], getattr(native, field)
        )
    assert (m.opt.timestep, m.opt.integrator, m.opt.cone) == (
        native.opt.timestep,
        native.opt.integrator,
        native.opt.cone,
    )
    blocks = np.array([n.startswith("block_") for n in _geom_names(m)])
    assert blocks.sum() == sum(c == 1 for row in twin.config["maze_map"] for c in row)
    assert not m.geom_contype[blocks].any() and not m.geom_conaffinity[blocks].any()


def _geom_names(m):
    return [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or "" for g in range(m.ngeom)]


def test_near_walls_hold_every_wall_the_ant_can_reach(twin):
    """Random torso positions in free cells: every wall block within the ant's reach (+ the
    substep slack) of the torso, measured as box-to-point distance, is one of the 3 slots."""
    task, rng = twin.task, np.random.default_rng(0)
    radius = task.reach + gym_antmaze.SUBSTEP_SLACK
    blocks = [g for g, n in enumerate(_geom_names(task.native_model)) if n.startswith("block_")]
    centres = task.native_model.geom_pos[blocks, :2]
    half = task.native_model.geom_size[blocks[0], :2]
    free = np.array(task.maze.unique_reset_locations + task.maze.unique_goal_locations)
    near_walls = jax.jit(jax.vmap(task.near_walls))
    xy = free[rng.integers(len(free), size=2000)] + rng.uniform(-2, 2, (2000, 2))
    slots = np.asarray(near_walls(xy))[:, :, :2]
    checked = 0
    for p, s in zip(xy, slots, strict=True):
        gap = np.linalg.norm(np.maximum(np.abs(centres - p) - half, 0.0), axis=1)
        for c in centres[gap < radius]:
            assert np.isclose(s, c).all(axis=1).any(), (p, c, s)
            checked += 1
    assert checked > 500  # many positions had walls within reach


def test_frame_goal_reset_and_success_radius_are_gymnasium_robotics(twin):
    native = gym.make(twin.name).unwrapped
    task = twin.task
    assert gym_antmaze.SUCCESS_DISTANCE == 0.45
    np.testing.assert_allclose(task._goals, np.array(native.maze.unique_goal_locations))
    states = jax.jit(jax.vmap(twin.reset))(jax.random.split(jax.random.PRNGKey(0), 256))
    obs = np.asarray(states.obs)
    goal, start = obs[:, -2:], obs[:, :2]
    cells = np.array(native.maze.unique_goal_locations)
    to_cell = np.abs(goal[:, None] - cells[None]).max(axis=2).min(axis=1)
    assert to_cell.max() <= 1.0 + 1e-5 and to_cell.max() > 0.9  # cell centre + U(+-0.25 x 4)
    resets = np.array(native.maze.unique_reset_locations)
    start_cell = resets[np.abs(start[:, None] - resets[None]).max(axis=2).argmin(axis=1)]
    assert (np.linalg.norm(start_cell - goal, axis=1) > 2.0).all()  # redrawn when too close
    native_obs, _ = native.reset(seed=0)
    np.testing.assert_allclose(obs[0, 2:29], native_obs["observation"], atol=1e-6)  # ant at rest


def test_collector_resets_the_twin_at_its_start_cell_with_the_twins_goal(twin):
    """envs.maze_data's view of a twin (no step compiled): the ant at the collector's start
    cell (+ the twin's U(+-1) noise) at rest, the goal the twin's own draw, walls moved along."""
    from envs import maze_data

    frame = maze_data.MazeFrame.of_gym_maze(twin.name, twin.task.maze)
    at_cell = maze_data._TwinAtCell(twin.task, frame, twin.episode_length)
    cells = frame.free_cells()[np.arange(64) % len(frame.free_cells())]
    keys = jax.random.split(jax.random.PRNGKey(1), 64)
    states = jax.jit(jax.vmap(at_cell.reset_to))(keys, cells)
    start = np.asarray(states.data.qpos[:, :2])
    offset = np.abs(start - np.asarray(frame.cell_xy(cells)))
    assert offset.max() <= 1.0 + 1e-5 and offset.max() > 0.8
    first = jax.vmap(lambda k: jax.random.split(k)[0])(keys)  # the key reset_to resets with
    twin_goals = np.asarray(jax.vmap(twin.task.reset)(first).obs[:, -2:])
    np.testing.assert_allclose(np.asarray(states.obs[:, -2:]), twin_goals, atol=1e-6)
    np.testing.assert_allclose(np.asarray(states.obs[:, :2]), start)
    walls = jax.vmap(twin.task.near_walls)(states.data.qpos[:, :2])
    np.testing.assert_array_equal(np.asarray(states.data.mocap_pos), np.asarray(walls))
