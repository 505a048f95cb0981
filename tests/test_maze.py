"""envs/maze.py + envs/maze_data.py: D4RL maps, walls, success/termination, resets, datasets.

MJX compiles slowly on CPU (~15-20 s per function), so the whole file compiles three things,
each once, in module-scoped fixtures: a 720-step `BatchEnv` rollout on pointmaze-umaze (8 envs,
some driven by the BFS-waypoint controller, some by constant actions), a vmapped reset, and one
small pointmaze-medium collection. Everything else is NumPy on their outputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import maze, maze_data
from wsrl_mjx.datasets import data as D

POINT_RADIUS = 0.1  # the point's sphere (envs/assets/maze_point.xml)
T, N = 720, 8  # rollout steps (> umaze's 700-step limit) and envs
CTRL = 4  # envs 0..3 follow the waypoint controller to the eval goal
CONST = {4: (1.0, 0.0), 5: (0.0, -1.0), 6: (0.0, 1.0), 7: (0.0, 0.0)}  # env: constant action
COVERAGE_MIN = 0.9  # fraction of pointmaze-medium's 26 free cells a 8k-step dataset must visit


def _wall_distance(xy: np.ndarray, layout: str, scaling: float = 1.0) -> np.ndarray:
    """[n] distance from each (x, y) to the nearest wall box (0 inside a wall)."""
    walls = maze.get_layout(layout).walls
    centres = np.asarray(maze.cell_to_xy(np.argwhere(walls), layout, scaling))  # [w, 2]
    d = np.abs(xy[:, None, :] - centres[None]) - scaling / 2  # per-axis outside distance
    return np.linalg.norm(np.maximum(d, 0.0), axis=-1).min(axis=1)


# ---------------------------------------------------------------- registry, maps, BFS (no compile)


def test_registered_with_d4rl_time_limits_goals_and_sizes():
    names = [f"{a}maze-{lay}" for a in ("point", "ant") for lay in ("umaze", "medium", "large")]
    assert set(names) <= set(envs.registered_names())
    # D4RL antmaze goals (metres); pointmaze uses the same maps with 1-unit cells.
    goals = {"umaze": (0, 8), "medium": (20, 20), "large": (32, 24)}
    for name in names:
        env = envs.make(name)
        agent, layout = name.split("maze-")
        assert env.episode_length == (700 if layout == "umaze" else 1000)
        assert env.has_success
        assert (env.observation_size, env.action_size) == ((6, 2) if agent == "point" else (31, 8))
        scale = 0.25 if agent == "point" else 1.0
        np.testing.assert_allclose(env.task.eval_goal, np.array(goals[layout]) * scale)
        # one box geom per wall cell
        model = env.task.mj_model
        walls = [g for g in range(model.ngeom) if model.geom(g).name.startswith("wall_")]
        assert len(walls) == maze.get_layout(layout).walls.sum()
    assert envs.make("pointmaze-medium", episode_length=50).episode_length == 50
    with pytest.raises(ValueError, match="not a free cell"):
        envs.make("pointmaze-umaze", goal_cell=(2, 1))  # a wall
    with pytest.raises(ValueError, match="unknown override"):
        envs.make("pointmaze-umaze", succes_radius=1.0)


def test_d4rl_maps():
    lay = maze.get_layout("medium")  # D4RL BIG_MAZE_TEST
    assert lay.shape == (8, 8) and lay.start == (1, 1) and lay.goal == (6, 6)
    assert (~lay.walls).sum() == 26
    assert maze.get_layout("umaze").walls.sum() == 25 - 7
    large = maze.get_layout("large")  # HARDEST_MAZE_TEST
    assert large.shape == (9, 12) and large.goal == (7, 9) and (~large.walls).sum() == 46
    for name in maze.LAYOUTS:  # closed border, every free cell connected
        w = maze.get_layout(name).walls
        assert w[0].all() and w[-1].all() and w[:, 0].all() and w[:, -1].all()
        assert (maze.maze_distances(name)[np.flatnonzero(~w.ravel())][:, ~w.ravel()] >= 0).all()


def test_bfs_next_cell_follows_shortest_free_path():
    lay = maze.get_layout("large")
    dist = maze.maze_distances("large")
    nc = lay.shape[1]
    cell, path = lay.start, [lay.start]
    while cell != lay.goal:
        nxt = maze.bfs_next_cell("large", cell, lay.goal)
        assert abs(nxt[0] - cell[0]) + abs(nxt[1] - cell[1]) == 1  # a 4-neighbour
        assert not lay.walls[nxt]
        cell = nxt
        path.append(cell)
    start, goal = lay.start[0] * nc + lay.start[1], lay.goal[0] * nc + lay.goal[1]
    assert len(path) - 1 == dist[start, goal] == 14


def test_cell_xy_round_trip():
    cells = maze.free_cells("large")
    for scaling in (1.0, 4.0):
        xy = maze.cell_to_xy(cells, "large", scaling)
        for off in (-0.49, 0.0, 0.49):  # anywhere inside the cell maps back to it
            back = np.asarray(maze.xy_to_cell(xy + off * scaling, "large", scaling))
            np.testing.assert_array_equal(back, cells)


def test_maze_frames_match_each_mazes_own_geometry():
    """The collector's MazeFrame: this project's cell_to_xy (D4RL's frame) and
    Gymnasium-Robotics' Maze.cell_rowcol_to_xy (its centred frame, y falling with the row)."""
    cells = np.argwhere(np.ones(maze.get_layout("large").shape, bool))
    frame = maze_data.MazeFrame.of_layout("large", 4.0)
    np.testing.assert_array_equal(frame.cell_xy(cells), maze.cell_to_xy(cells, "large", 4.0))
    pytest.importorskip("gymnasium_robotics")
    from gymnasium_robotics.envs.maze.maps import LARGE_MAZE_DIVERSE_GR
    from gymnasium_robotics.envs.maze.maze_v4 import Maze

    gym_maze = Maze(LARGE_MAZE_DIVERSE_GR, 4.0, 0.5)
    frame = maze_data.MazeFrame.of_gym_maze("AntMaze_Large_Diverse_GR-v4", gym_maze)
    xy = np.array([gym_maze.cell_rowcol_to_xy(c) for c in cells])
    np.testing.assert_allclose(frame.cell_xy(cells), xy)  # e.g. (0, 0) at (-22, 16)
    for off in (-1.9, 0.0, 1.9):  # anywhere inside a 4 m cell maps back to it
        np.testing.assert_array_equal(frame.xy_cell(xy + off), cells)
    # Same map as this project's large maze (D4RL's), so the same BFS table.
    np.testing.assert_array_equal(frame.walls, maze.get_layout("large").walls)
    np.testing.assert_array_equal(
        maze.grid_next_cell_table(frame.walls), maze.next_cell_table("large")
    )


# ---------------------------------------------------------------- pointmaze-umaze through BatchEnv


@pytest.fixture(scope="module")
def umaze():
    env = envs.make("pointmaze-umaze")
    benv = envs.BatchEnv(env, N)
    table = jnp.asarray(maze.next_cell_table("umaze"))
    ncols = maze.get_layout("umaze").shape[1]
    goal_cell = jnp.asarray(maze.get_layout("umaze").goal)
    const = np.zeros((N, 2), np.float32)
    for i, a in CONST.items():
        const[i] = a
    use_ctrl = jnp.arange(N) < CTRL

    def controller(obs):  # noiseless BFS waypoint PD controller towards the eval goal
        cell = maze.xy_to_cell(obs[:2], "umaze", 1.0)
        nxt = table[cell[0] * ncols + cell[1], goal_cell[0] * ncols + goal_cell[1]]
        waypoint = maze.cell_to_xy(jnp.stack([nxt // ncols, nxt % ncols]), "umaze", 1.0)
        return maze_data.POINT_P_GAIN * (waypoint - obs[:2]) + maze_data.POINT_D_GAIN * obs[2:4]

    @jax.jit
    def rollout(key):
        def step(s, _):
            act = jnp.where(use_ctrl[:, None], jax.vmap(controller)(s.obs), const)
            s, v = benv.step(s, act)
            return s, (v, s.obs)

        _, (vs, after) = jax.lax.scan(step, benv.reset(key), None, length=T)
        return vs, after

    vs, after = jax.device_get(rollout(jax.random.PRNGKey(0)))
    return env, vs, after


def test_walls_block_motion(umaze):
    env, vs, _ = umaze
    xy = vs.next_obs[..., :2]  # [T, N, 2]
    # Nothing ever overlaps a wall (the point is a sphere of radius 0.1).
    assert _wall_distance(xy.reshape(-1, 2), "umaze").min() >= POINT_RADIUS - 0.02
    # Pushing +x along the start corridor stops at the wall of cell (1, 4) at x = 2.5 ...
    x4 = xy[:, 4, 0]  # (row 699 is the last step before the 700-step time limit resets it)
    assert 2.5 - POINT_RADIUS - 0.02 < x4[699] <= 2.5 - POINT_RADIUS + 0.02
    assert x4.max() <= 2.5 - POINT_RADIUS + 0.02
    # ... and at the corridor's side walls (y = -0.5 below, y = +0.5 above: cell (2, 1) is a wall).
    np.testing.assert_allclose(xy[699, 5, 1], -0.5 + POINT_RADIUS, atol=0.02)
    np.testing.assert_allclose(xy[699, 6, 1], 0.5 - POINT_RADIUS, atol=0.02)
    # and the motion really is driven (not a frozen sim): the free env moved ~2.3 units.
    assert x4[50] > 2.0
    # no action: stays at its start
    np.testing.assert_allclose(xy[699, 7], xy[0, 7], atol=1e-3)


def test_success_reward_and_termination(umaze):
    env, vs, after = umaze
    goal = env.task.eval_goal
    dist = np.linalg.norm(vs.next_obs[..., :2] - goal, axis=-1)
    # Sparse reward: 1 exactly within 0.5 units of the goal, success flag = reward = termination.
    np.testing.assert_array_equal(vs.reward, (dist <= 0.5).astype(np.float32))
    np.testing.assert_array_equal(vs.success, vs.reward)
    np.testing.assert_array_equal(vs.terminated, vs.reward)
    for i in range(CTRL):  # the controller reaches the goal, repeatedly (auto-reset to start)
        hits = np.flatnonzero(vs.terminated[:, i])
        assert len(hits) >= 2, f"env {i} never reached the goal twice in {T} steps"
        first = hits[0]
        assert 30 < first < 300  # ~5 cells at <= 1.5 units/s, 0.05 s per step
        assert vs.episode_return[first, i] == 1.0  # one reward, then the episode ends
        assert vs.done[first, i] and not vs.truncated[first, i]
        # the next observation is a fresh start (near the origin), goal unchanged
        assert np.linalg.norm(after[first, i, :2]) <= 0.1 * np.sqrt(2) + 1e-6
        np.testing.assert_allclose(after[first, i, 4:], goal)
    assert not vs.terminated[:, CTRL:].any()  # constant actions never get there


def test_time_limit_700_on_umaze(umaze):
    _, vs, after = umaze
    for i in range(CTRL, N):
        ends = np.flatnonzero(vs.done[:, i])
        np.testing.assert_array_equal(ends, [699])
        assert vs.truncated[699, i] and not vs.terminated[699, i]
        assert np.linalg.norm(after[699, i, :2]) <= 0.1 * np.sqrt(2) + 1e-6  # reset to start


def test_reset_distribution_near_start_cell():
    env = envs.make("pointmaze-medium")
    obs = jax.device_get(jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(1), 512)))
    obs = obs.obs
    xy = obs[:, :2]
    # Start cell (1, 1) is the origin; uniform +-0.1 noise on x and y (std 0.1 / sqrt(3)).
    assert np.abs(xy).max() <= 0.1 + 1e-6
    np.testing.assert_allclose(xy.mean(0), 0.0, atol=0.015)
    np.testing.assert_allclose(xy.std(0), 0.1 / np.sqrt(3), rtol=0.15)
    assert len(np.unique(xy[:, 0])) == len(xy)  # fresh noise per key
    np.testing.assert_array_equal(obs[:, 2:4], 0.0)  # at rest
    np.testing.assert_allclose(obs[:, 4:], np.broadcast_to([5.0, 5.0], (512, 2)))  # eval goal


# ---------------------------------------------------------------- datasets


def test_restart_fn_ends_trajectories_and_restarts_fresh():
    # Points pushed along +x from the start cell restart whenever they pass x = 1.5.
    task = maze.make_task("pointmaze-umaze")
    arrays, meta = maze_data._collect(
        task, lambda params, state, waypoint: jnp.array([1.0, 0.0]), None,
        num_transitions=4 * 200, num_envs=4, seed=0, noise=0.0,
        start_cells=np.array([task.layout.start]), goal_cells=maze.free_cells("umaze"),
        restart_fn=lambda state: state.data.qpos[0] > 1.5,
    )  # fmt: skip
    crossed = arrays["next_observations"][:, 0] > 1.5
    assert meta["restarts"] == crossed.sum() >= 4 * 2  # every env restarts repeatedly
    assert arrays["timeouts"][crossed].all()
    assert (arrays["observations"][:, 0] <= 1.5).all()
    rows = np.flatnonzero(crossed[:-1])
    np.testing.assert_array_equal(np.abs(arrays["observations"][rows + 1, :2]) <= 0.1, True)
    np.testing.assert_array_equal(arrays["observations"][rows + 1, 2:4], 0.0)  # at rest


@pytest.fixture(scope="module")
def medium_data():
    return maze_data.collect_pointmaze("medium", num_transitions=8000, num_envs=16, seed=3)


def test_dataset_format_and_labels(medium_data, tmp_path):
    arrays, meta = medium_data
    env = envs.make("pointmaze-medium")
    path = D.save_dataset(tmp_path / "pointmaze-medium", arrays, meta)
    loaded = D.load_dataset(
        path, env="pointmaze-medium", observation_size=env.observation_size, action_size=2
    )
    a = loaded.arrays
    assert loaded.size == 8000 and loaded.metadata["env"] == "pointmaze-medium"
    assert a["observations"].shape == a["next_observations"].shape == (8000, 6)
    assert a["actions"].shape == (8000, 2) and a["behavior_goals"].shape == (8000, 2)
    assert np.abs(a["actions"]).max() <= 1.0
    assert not (a["terminals"] & a["timeouts"]).any()
    # Labels: D4RL-style success w.r.t. the fixed eval goal, which is also the obs goal slot.
    goal = np.array(meta["eval_goal"])
    np.testing.assert_allclose(a["observations"][:, 4:], np.broadcast_to(goal, (8000, 2)))
    hit = np.linalg.norm(a["next_observations"][:, :2] - goal, axis=1) <= 0.5
    np.testing.assert_array_equal(a["rewards"], hit.astype(np.float32))
    np.testing.assert_array_equal(a["terminals"], hit)
    assert 0 < a["rewards"].sum() < 8000
    # One 500-step episode per env, ending in a timeout (or a terminal: D4RL sets only one flag).
    ends = np.zeros(8000, bool)
    ends[499::500] = True
    np.testing.assert_array_equal(a["timeouts"], ends & ~a["terminals"])
    # Contiguous trajectories: next obs is the following row except at episode ends (reset);
    # a terminal inside an episode does not stop the behaviour policy (D4RL antmaze style).
    cont = ~ends[:-1]
    np.testing.assert_array_equal(a["next_observations"][:-1][cont], a["observations"][1:][cont])
    assert (
        np.linalg.norm(a["next_observations"][:-1] - a["observations"][1:], axis=1)[ends[:-1]] > 0
    ).all()
    # Walls hold in the data too.
    assert _wall_distance(a["observations"][:, :2], "medium").min() >= POINT_RADIUS - 0.02


def test_dataset_covers_the_maze(medium_data):
    arrays, meta = medium_data
    cov = maze_data.cell_coverage(arrays["observations"], "medium", 1.0)
    assert cov == meta["coverage"]
    assert cov >= COVERAGE_MIN, f"coverage {cov:.2f} < {COVERAGE_MIN}"
    # The coverage measure itself: one trajectory segment cannot cover much.
    assert maze_data.cell_coverage(arrays["observations"][:20], "medium", 1.0) <= 3 / 26
