"""Maze offline datasets made on device: waypoint-steered collection, coverage, plots.

The collectors run `num_envs` envs with `jax.vmap` inside one jitted `lax.scan` per episode
batch. Each env starts an episode from a random start cell, gets a random behaviour goal cell
and follows BFS waypoints (`envs.maze.grid_next_cell_table`, indexed on device) towards it; when
the goal is reached a new one is drawn (D4RL maze2d / antmaze style). Episodes last the env's
`episode_length` (or fewer steps when the collection is short), then every env is reset. A
`MazeFrame` (the wall grid and its cell <-> (x, y) map) is all the steering knows of a maze, so
the same machinery collects in this project's mazes (D4RL's frame) and in the Gymnasium-Robotics
AntMaze twins (`collect_gym_antmaze`, Gymnasium-Robotics' centred frame; there the behaviour
heads for the twin's own goal, which moves when reached: `env_goal`).

Labels: observations are exactly the env's (the goal slot holds the env's EVALUATION goal, not
the behaviour goal: this project's fixed one, or the twin's per-episode random goal), and
`rewards` / `terminals` are the env's own reward and termination w.r.t. that goal, as D4RL
antmaze relabels its data. The behaviour policy does not stop at a
terminal (it keeps going to its own goal), so the next row continues the same trajectory;
`timeouts` marks episode ends (reset follows) and the last row of every env's block.
The behaviour goals are kept as the extra array `behavior_goals` (x, y), for relabelling.

This module needs only jax, numpy and the envs (matplotlib for plots). Loading a trained ant
policy and the command line that saves datasets in the trainer's format live in
`wsrl_mjx.phases.maze_datasets` (`python -m wsrl_mjx.run maze-datasets --help`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs import ant_goal, maze
from envs.maze import State
from envs.registry import make

__all__ = [
    "MazeFrame",
    "cell_coverage",
    "collect_antmaze",
    "collect_gym_antmaze",
    "collect_pointmaze",
    "ant_policy_stats",
    "plot_maze_dataset",
]

# D4RL's maze2d waypoint controller: action = P * (waypoint - pos) + D * velocity, clipped.
POINT_P_GAIN, POINT_D_GAIN = 10.0, -1.0
REACH_RADIUS = 0.3  # cells: behaviour goal counts as reached (new goal drawn) within this
# Twin kwargs of collection: a reached goal moves to a new random goal (Minari's antmaze recipe).
TWIN_COLLECTION = {"continuing_task": True, "reset_target": True}

# act(params, state, waypoint_xy) -> action before noise; one env, jittable.
ActFn = Callable[[Any, State, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class MazeFrame:
    """A maze as the collector steers through it: the wall grid and the (x, y) of cell centres,
    `centre(row, col) = origin + (col * scaling, row_sign * row * scaling)`."""

    name: str
    walls: np.ndarray  # [rows, cols] bool, with a wall border
    scaling: float  # metres per cell
    origin: tuple[float, float]  # (x, y) of cell (0, 0)'s centre
    row_sign: float  # +1: y grows with the row (D4RL's frame); -1: it shrinks (Gymnasium's)

    @classmethod
    def of_layout(cls, layout: str, scaling: float) -> MazeFrame:
        """This project's maze `layout` (D4RL's frame: the start cell at the origin)."""
        lay = maze.get_layout(layout)
        start_row, start_col = lay.start
        return cls(layout, lay.walls, scaling, (-start_col * scaling, -start_row * scaling), 1.0)

    @classmethod
    def of_gym_maze(cls, name: str, gym_maze: Any) -> MazeFrame:
        """A Gymnasium-Robotics `Maze` (its `cell_rowcol_to_xy`: a centred frame)."""
        s = gym_maze.maze_size_scaling
        walls = np.array([[cell == 1 for cell in row] for row in gym_maze.maze_map])
        origin = (0.5 * s - gym_maze.x_map_center, gym_maze.y_map_center - 0.5 * s)
        return cls(name, walls, s, origin, -1.0)

    def cell_xy(self, cell: jax.Array) -> jax.Array:
        """[..., 2] int (row, col) -> [..., 2] float32 (x, y) of the cell centre."""
        rc = jnp.asarray(cell, jnp.float32)
        step = jnp.asarray([self.row_sign, 1.0], jnp.float32) * self.scaling
        return jnp.asarray(self.origin, jnp.float32) + (rc * step)[..., ::-1]

    def xy_cell(self, xy: jax.Array) -> jax.Array:
        """[..., 2] (x, y) -> [..., 2] int32 (row, col) of the containing cell (clipped)."""
        offset = (jnp.asarray(xy, jnp.float32) - jnp.asarray(self.origin, jnp.float32))[..., ::-1]
        step = jnp.asarray([self.row_sign, 1.0], jnp.float32) * self.scaling
        rc = jnp.floor(offset / step + 0.5).astype(jnp.int32)
        return jnp.clip(rc, 0, jnp.asarray(self.walls.shape, jnp.int32) - 1)

    def free_cells(self) -> np.ndarray:
        """[n, 2] int32 (row, col) of every free cell, row-major."""
        return np.argwhere(~self.walls).astype(np.int32)


def _collect(
    task: Any,
    act: ActFn,
    params: Any,
    *,
    num_transitions: int,
    num_envs: int,
    seed: int,
    noise: float,
    start_cells: np.ndarray,
    goal_cells: np.ndarray,
    restart_fn: Callable[[State], jax.Array] | None = None,
    frame: MazeFrame | None = None,
    env_goal: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Shared steering machinery; see the module docstring.

    `task`: `name`, `episode_length`, `step(state, action)` and `reset_to(rng, start_cell)`
    (an `envs.maze.MazeTask`, or `_TwinAtCell`). `frame`: its maze (default: the MazeTask's).
    `restart_fn(state) -> bool`: an env whose new state satisfies it (e.g. an ant on its back)
    ends its trajectory there (`timeouts`) and restarts from a fresh start cell and goal.
    `env_goal`: the behaviour heads for the env's own goal (`info["goal"]`) instead of drawn
    `goal_cells`; `behavior_goals_reached` then counts the env's successes.
    """
    if num_transitions < 1 or num_envs < 1:
        raise ValueError("num_transitions and num_envs must be >= 1")
    frame = frame or MazeFrame.of_layout(task.layout.name, task.scaling)
    ncols = frame.walls.shape[1]
    table = jnp.asarray(maze.grid_next_cell_table(frame.walls))
    starts, goals = jnp.asarray(start_cells), jnp.asarray(goal_cells)
    n_goals = len(goal_cells)
    steps = math.ceil(num_transitions / num_envs)  # per env
    ep_len = min(task.episode_length, steps)
    n_eps = math.ceil(steps / ep_len)
    flat = lambda rc: rc[..., 0] * ncols + rc[..., 1]

    def reset_one(key: jax.Array) -> tuple[State, jax.Array]:
        k_s, k_g, k_r = jax.random.split(key, 3)
        start = starts[jax.random.randint(k_s, (), 0, len(start_cells))]
        return task.reset_to(k_r, start), jax.random.randint(k_g, (), 0, n_goals)

    def behaviour_goal(state: State, goal_idx: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(cell, x y) the behaviour heads for."""
        if env_goal:
            xy = state.info["goal"].astype(jnp.float32)
            return frame.xy_cell(xy), xy
        return goals[goal_idx], frame.cell_xy(goals[goal_idx])

    def step_one(
        carry: tuple[State, jax.Array], key: jax.Array
    ) -> tuple[tuple[State, jax.Array], dict[str, jax.Array]]:
        state, goal_idx = carry
        k_noise, k_goal, k_restart = jax.random.split(key, 3)
        cell = frame.xy_cell(state.data.qpos[:2])
        goal_cell, goal_xy = behaviour_goal(state, goal_idx)
        nxt = table[flat(cell), flat(goal_cell)]  # flat index of the next BFS cell
        waypoint = frame.cell_xy(jnp.stack([nxt // ncols, nxt % ncols]))
        # In the goal's cell: the goal itself (its centre, or the env's goal point).
        waypoint = jnp.where(flat(cell) == flat(goal_cell), goal_xy, waypoint)
        action = act(params, state, waypoint)
        action = jnp.clip(action + noise * jax.random.normal(k_noise, action.shape), -1.0, 1.0)
        nstate = task.step(state, action)
        if env_goal:  # the env's success (a reset_target env then draws its next goal)
            reached = nstate.metrics["success"] > 0
        else:
            reached = jnp.linalg.norm(nstate.data.qpos[:2] - goal_xy) < REACH_RADIUS * frame.scaling
        # A different goal cell: shift the index by 1..n-1 (modulo n).
        new_idx = (goal_idx + jax.random.randint(k_goal, (), 1, max(n_goals, 2))) % n_goals
        out = {
            "observations": state.obs,
            "actions": action,
            "rewards": nstate.reward,
            "next_observations": nstate.obs,
            "terminals": nstate.done > 0,
            "behavior_goals": goal_xy,
            "goal_reached": reached,  # summed into the metadata, not saved
        }
        carry = nstate, jnp.where(reached, new_idx, goal_idx)
        if restart_fn is not None:
            out["restarts"] = restart = restart_fn(nstate)
            pick = lambda fresh, old: jnp.where(restart, fresh, old)
            carry = jax.tree.map(pick, reset_one(k_restart), carry)
        return carry, out

    @jax.jit
    def episode(key: jax.Array) -> dict[str, jax.Array]:
        k_reset, k_steps = jax.random.split(key)
        carry = jax.vmap(reset_one)(jax.random.split(k_reset, num_envs))
        keys = jax.random.split(k_steps, (ep_len, num_envs))
        _, out = jax.lax.scan(jax.vmap(step_one), carry, keys)
        return out  # [ep_len, num_envs, ...]

    t0 = time.perf_counter()
    compiled = episode.lower(jax.random.PRNGKey(0)).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    keys = jax.random.split(jax.random.PRNGKey(seed), n_eps)
    chunks = [jax.device_get(compiled(k)) for k in keys]
    t_run = time.perf_counter() - t0

    # [eps, ep_len, envs, ...] -> [envs, eps * ep_len, ...]: each env's steps stay contiguous.
    arrays = {}
    for name in chunks[0]:
        x = np.stack([c[name] for c in chunks])
        x = np.moveaxis(x, 2, 0).reshape(num_envs, n_eps * ep_len, *x.shape[3:])[:, :steps]
        arrays[name] = x
    timeouts = np.zeros((num_envs, steps), bool)
    timeouts[:, ep_len - 1 :: ep_len] = True
    timeouts[:, -1] = True
    restarts = arrays.pop("restarts", np.zeros_like(timeouts))
    arrays["timeouts"] = timeouts | restarts
    arrays = {
        k: v.reshape(num_envs * steps, *v.shape[2:])[:num_transitions] for k, v in arrays.items()
    }
    arrays["timeouts"][-1] = True
    goals_reached = int(arrays.pop("goal_reached").sum())
    arrays["timeouts"] &= ~arrays["terminals"]  # D4RL: the two flags never both set
    for k in ("observations", "actions", "rewards", "next_observations", "behavior_goals"):
        arrays[k] = arrays[k].astype(np.float32)

    metadata = {
        "env": task.name,
        "layout": frame.name,
        "scaling": frame.scaling,
        "num_envs": num_envs,
        "seed": seed,
        "noise": noise,
        "episode_length": ep_len,
        "eval_goal": None if task.eval_goal is None else np.asarray(task.eval_goal).tolist(),
        "labels": "rewards/terminals = env success w.r.t. the eval goal (D4RL antmaze style); "
        "behaviour continues after a terminal",
        "num_timeouts": int(arrays["timeouts"].sum()),
        "num_terminals": int(arrays["terminals"].sum()),  # eval-goal hits (behaviour goes on)
        "reward_sum": float(arrays["rewards"].sum()),
        "behavior_goals_reached": goals_reached,  # how well the behaviour policy steers
        "restarts": int(restarts.sum()),  # trajectories cut short by `restart_fn`
        "coverage": frame_coverage(arrays["observations"], frame),
        "compile_seconds": round(t_compile, 2),
        "collect_seconds": round(t_run, 2),
        "steps_per_second": round(num_envs * n_eps * ep_len / t_run, 1),
    }
    return arrays, metadata


def collect_pointmaze(
    layout: str,
    num_transitions: int,
    num_envs: int,
    seed: int,
    noise: float = 0.5,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`pointmaze-<layout>` data from D4RL's maze2d-style noisy waypoint PD controller.

    Starts and behaviour goals are uniform over free cells. Action noise: N(0, noise^2) added
    to the PD action, then clipped to [-1, 1]. Returns (arrays with D4RL names plus
    `behavior_goals`, metadata).
    """
    task = maze.make_task(f"pointmaze-{layout}")

    def act(params: Any, state: State, waypoint: jax.Array) -> jax.Array:
        pos, vel = state.data.qpos[:2], state.data.qvel[:2]
        return POINT_P_GAIN * (waypoint - pos) / task.scaling + POINT_D_GAIN * vel

    free = maze.free_cells(layout)
    arrays, meta = _collect(
        task, act, None, num_transitions=num_transitions, num_envs=num_envs, seed=seed,
        noise=noise, start_cells=free, goal_cells=free,
    )  # fmt: skip
    meta["method"] = f"waypoint PD controller (P={POINT_P_GAIN}, D={POINT_D_GAIN}), random goals"
    return arrays, meta


def collect_antmaze(
    layout: str,
    policy_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    num_transitions: int,
    num_envs: int,
    seed: int,
    goals: str = "diverse",
    noise: float = 0.1,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`antmaze-<layout>` data from a goal-conditioned low-level ant policy steered by waypoints.

    `policy_fn(params, obs_with_subgoal) -> action` gets the env observation (31 dims) with its
    goal slot replaced by the current waypoint (centre of the next BFS cell, or the behaviour
    goal's cell centre once in it); N(0, noise^2) is added and the action clipped to [-1, 1].
    `goals="diverse"`: starts and goals uniform over free cells; `"play"`: both from the
    hand-picked `envs.maze.PLAY_CELLS` (D4RL's -diverse / -play recipes).

    The low-level policy is trained on `antgoal` (`configs/antgoal_sac.yaml`) and loaded with
    `load_ant_policy`.
    """
    if goals not in ("diverse", "play"):
        raise ValueError(f"goals must be 'diverse' or 'play', got {goals!r}")
    task = maze.make_task(f"antmaze-{layout}")  # goal_in_obs=True: the goal slot is obs[-2:]
    frame = MazeFrame.of_layout(layout, task.scaling)
    cells = frame.free_cells() if goals == "diverse" else np.array(maze.PLAY_CELLS[layout])
    steering = dict(num_transitions=num_transitions, num_envs=num_envs, seed=seed, noise=noise)
    return _steer_ant(task, frame, policy_fn, params, cells, goals, False, **steering)


def collect_gym_antmaze(
    env_name: str,
    policy_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    num_transitions: int,
    num_envs: int,
    seed: int,
    noise: float = 0.1,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Data in a Gymnasium-Robotics AntMaze twin (`AntMaze_*-v4`) from the same steered ant
    policy as `collect_antmaze`, waypoints in Gymnasium-Robotics' frame: starts uniform over the
    maze's free cells, the behaviour heads for the twin's own goal (drawn from the maze's goal
    cells + U(+-1)), and with `TWIN_COLLECTION` a reached goal moves to a new random one, so
    every success is in the data (a goal drawn by the collector instead is almost never within
    the 0.45 success radius of the twin's). The twin's observation `[x, y, qpos[2:15], qvel,
    goal]` is the ant policy's input layout. Rewards are the twin's (sparse: success), and
    terminals mark the successes (D4RL antmaze's labels; the behaviour goes on)."""
    env = make(env_name, **TWIN_COLLECTION)
    frame = MazeFrame.of_gym_maze(env_name, env.task.maze)
    task = _TwinAtCell(env.task, frame, env.episode_length)
    steering = dict(num_transitions=num_transitions, num_envs=num_envs, seed=seed, noise=noise)
    cells = frame.free_cells()
    arrays, meta = _steer_ant(task, frame, policy_fn, params, cells, "the twin's", True, **steering)
    meta["env_overrides"] = TWIN_COLLECTION
    return arrays, meta


def _steer_ant(
    task: Any,
    frame: MazeFrame,
    policy_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    cells: np.ndarray,
    goals: str,
    env_goal: bool,
    **steering: Any,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The ant policy steered along `frame`'s waypoints from `cells` to behaviour goals among
    `cells` or (`env_goal`) the env's own; `goals` names the recipe."""

    def act(params: Any, state: State, waypoint: jax.Array) -> jax.Array:
        return policy_fn(params, state.obs.at[-2:].set(waypoint.astype(state.obs.dtype)))

    arrays, meta = _collect(
        task, act, params, start_cells=cells, goal_cells=cells, frame=frame, env_goal=env_goal,
        restart_fn=lambda state: ant_goal.tipped_over(state.data.qpos), **steering,
    )  # fmt: skip
    meta["method"] = (
        f"goal-conditioned policy steered along BFS waypoints, {goals} goals; an ant that "
        "tips over ends its trajectory and restarts"
    )
    return arrays, meta


@dataclasses.dataclass(frozen=True)
class _TwinAtCell:
    """A Gymnasium-Robotics maze twin's task as `_collect` drives it: reset with the twin's own
    goal, the agent moved to a given start cell (+ the twin's position noise)."""

    task: Any  # envs.gym_maze.GymMazeTask
    frame: MazeFrame
    episode_length: int
    eval_goal: None = None  # the twin draws a goal per episode

    @property
    def name(self) -> str:
        return self.task.name

    def step(self, state: State, action: jax.Array) -> State:
        """The twin's step with `done` = success, D4RL antmaze's terminal label (the continuing
        twin goes on, and so does the collector), and the observation showing the goal of the
        next step: natively a reached goal that moves still shows for one step while the next
        reward is already for the new one (a reward-0 row at the shown goal)."""
        state = self.task.step(state, action)
        shown = self.task.set_state(state, state.data)  # obs with info["goal"], the next one
        return shown.replace(done=state.metrics["success"], metrics=state.metrics)

    def reset_to(self, rng: jax.Array, start_cell: jax.Array) -> State:
        k_reset, k_noise = jax.random.split(rng)
        state = self.task.reset(k_reset)
        dtype = state.data.qpos.dtype
        start = self.frame.cell_xy(start_cell).astype(dtype) + self.task._noise(k_noise, dtype)
        return self.task.set_state(state, self.task._reset_data(start))


def cell_coverage(observations: np.ndarray, layout: str, scaling: float) -> float:
    """`frame_coverage` in this project's maze `layout`."""
    return frame_coverage(observations, MazeFrame.of_layout(layout, scaling))


def frame_coverage(observations: np.ndarray, frame: MazeFrame) -> float:
    """Fraction of the maze's free cells that some observation's (x, y) = obs[:, :2] is in."""
    cells = np.asarray(frame.xy_cell(np.asarray(observations)[:, :2]))
    ncols = frame.walls.shape[1]
    visited = set((cells[:, 0] * ncols + cells[:, 1]).tolist())
    return float(np.mean([r * ncols + c in visited for r, c in frame.free_cells()]))


def plot_maze_dataset(
    layout: str,
    observations: np.ndarray,
    path: str | Path,
    *,
    scaling: float = 1.0,
    timeouts: np.ndarray | None = None,
    max_trajectories: int = 12,
    max_steps: int = 300,
    success_radius: float = 0.5,
    title: str | None = None,
) -> Path:
    """Top-down drawing of the maze walls with dataset trajectories (obs[:, :2]) over it.

    Trajectories are split after `timeouts` rows (and wherever the position jumps by more than
    half a cell); the first `max_steps` steps of the first `max_trajectories` are drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    lay = maze.get_layout(layout)
    width = max(0.7 * lay.shape[1] + 1, 6.0)
    fig, ax = plt.subplots(figsize=(width, width * (lay.shape[0] + 1) / (lay.shape[1] + 1) + 1))
    for r, c in np.argwhere(lay.walls):
        x, y = np.asarray(maze.cell_to_xy(np.array([r, c]), layout, scaling)) - scaling / 2
        ax.add_patch(Rectangle((x, y), scaling, scaling, color="0.35"))

    xy = np.asarray(observations)[:, :2]
    jumps = np.linalg.norm(np.diff(xy, axis=0), axis=1) > 0.5 * scaling
    if timeouts is not None:
        jumps |= np.asarray(timeouts, bool)[:-1]
    trajs = [t[:max_steps] for t in np.split(xy, np.flatnonzero(jumps) + 1) if len(t) > 1]
    trajs = trajs[:max_trajectories]
    colors = plt.cm.tab20(np.arange(max(len(trajs), 1)) % 20)
    for t, col in zip(trajs, colors, strict=False):
        ax.plot(t[:, 0], t[:, 1], color=col, lw=1.0, alpha=0.85)
        ax.plot(*t[0], ".", color=col, ms=5)

    start = np.asarray(maze.cell_to_xy(np.array(lay.start), layout, scaling))
    goal = np.asarray(maze.cell_to_xy(np.array(lay.goal), layout, scaling))
    ax.plot(*start, "o", color="tab:green", ms=9, label="start")
    ax.add_patch(Circle(goal, success_radius, color="tab:red", alpha=0.25))
    label = f"eval goal (success radius {success_radius})"
    ax.plot(*goal, "*", color="tab:red", ms=14, label=label)
    lo = np.asarray(maze.cell_to_xy(np.zeros(2), layout, scaling)) - scaling / 2
    hi = np.asarray(maze.cell_to_xy(np.array(lay.shape) - 1, layout, scaling)) + scaling / 2
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), aspect="equal", xlabel="x", ylabel="y")
    ax.set_title(title or f"{layout}: {len(trajs)} trajectories", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def ant_policy_stats(
    policy_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    *,
    num_envs: int = 256,
    noise: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """How well a low-level policy walks on `antgoal` (one 500-step episode per env, actions
    with collection's noise): mean progress towards the target (m/s, while upright), targets
    reached per episode, and the fraction of ants that tip over."""
    env = ant_goal.make_ant_goal()

    def rollout(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        k_reset, k_steps = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

        def step(carry: tuple[State, jax.Array], k: jax.Array):
            state, up = carry
            obs = jax.vmap(env.task.maze_obs)(state.data, state.info["goal"])
            action = jax.vmap(policy_fn, in_axes=(None, 0))(params, obs)
            action = jnp.clip(action + noise * jax.random.normal(k, action.shape), -1.0, 1.0)
            state = jax.vmap(env.step)(state, action)
            return (state, up * (1.0 - state.done)), (state.metrics["progress"] * up, up)

        init = (state, jnp.ones(num_envs))
        keys = jax.random.split(k_steps, env.episode_length)
        (state, up), (progress, was_up) = jax.lax.scan(step, init, keys)
        return state.info["targets_reached"], progress.sum() / was_up.sum(), 1.0 - up.mean()

    reached, progress, tipped = jax.jit(rollout)(jax.random.PRNGKey(seed))
    return {
        "progress_m_per_s": round(float(progress), 3),
        "targets_per_episode": round(float(reached.mean()), 2),
        "targets_min": int(reached.min()),
        "targets_max": int(reached.max()),
        "fraction_tipped_over": round(float(tipped), 3),
    }
