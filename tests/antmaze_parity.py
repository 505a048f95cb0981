"""Parity of the AntMaze twins (envs/gym_antmaze.py) with native Gymnasium-Robotics AntMaze.

    python -m tests.antmaze_parity one-step NAME... [--steps N] [--cone elliptic]  (float64)
    python -m tests.antmaze_parity culling NAME... [--steps N]                     (float64)
    python -m tests.antmaze_parity behaviour NAME... [--episodes E] [--steps T]    (float32)
    python -m tests.antmaze_parity wall-normals NAME... [--episodes SEEDS] [--steps T] (float64)

JSON on stdout. `one-step` and `culling` turn on jax_enable_x64 in their own process. The
native-side helpers (states near walls, contact flags per env step) also serve the suite's
tests/test_antmaze_parity.py and tests/test_antmaze_behaviour.py.

- one-step: a native trajectory of uniform random actions that starts with the torso
  `WALL_GAP` m from a wall face (so legs hit the wall); before every step the twin is set to the
  native state (qpos, qvel, solver warmstart, time, goal), then both step. Errors of the 31-dim
  observation, reward and success per step, split by whether the native step had a wall contact.
  `--cone elliptic` sets both models' friction cone (a measurement: the shipped cone is
  pyramidal, where MJX builds the contact frame differently, docs/gymnasium_twins.md).
- culling: the twin (3 wall slots + 32 deepest contacts) against MJX on Gymnasium-Robotics'
  full model (every block colliding, every contact kept, the same colliders) from the same
  native states: what the nearest-wall culling changes (0 up to rounding if exact).
- behaviour: `episodes` episodes of `steps` uniform random actions from each env's own resets,
  twin (float32, batched, as used) and native; per episode the dense return sum(exp(-d)), the
  sparse return, success and the torso's displacement. Two-sample Kolmogorov-Smirnov p-values
  (twin vs native) for the dense return and the displacement; Fisher's exact test for success.
"""

from __future__ import annotations

import argparse
import copy
import json

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx
from scipy import stats

import envs
from envs import gym_antmaze

WALL_GAP = 0.6  # m from the torso centre to a wall face at the start of `one-step`


def native_env(name: str):
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    return gym.make(name).unwrapped


def flat(obs: dict) -> np.ndarray:
    return np.concatenate([obs["achieved_goal"], obs["observation"], obs["desired_goal"]])


def snapshot(data: mujoco.MjData) -> dict[str, np.ndarray]:
    """What sets the twin to a native state: qpos, qvel, the solver's warmstart and the time
    (copies: MjData buffers are overwritten by the next step)."""
    leaves = {k: np.array(getattr(data, k)) for k in ("qpos", "qvel", "qacc_warmstart")}
    return {**leaves, "time": np.array(data.time)}


def twin_data(template: mjx.Data, data: mujoco.MjData | dict) -> mjx.Data:
    """`template` set to the native state `data` (an MjData or its `snapshot`)."""
    leaves = data if isinstance(data, dict) else snapshot(data)
    return template.replace(
        **{k: jnp.array(v, getattr(template, k).dtype) for k, v in leaves.items()}
    )


def wall_sides(env) -> list[tuple[int, int]]:
    """The unit steps (dx, dy) from the torso's cell to the wall cells east, west, north, south
    of it (+y is one row up)."""
    maze = env.maze
    walls = np.array([[c == 1 for c in row] for row in maze.maze_map])
    row, col = maze.cell_xy_to_rowcol(env.data.qpos[:2])
    return [s for s in ((1, 0), (-1, 0), (0, 1), (0, -1)) if walls[row - s[1], col + s[0]]]


def start_near_wall(env, seed: int, gap: float = WALL_GAP, face: int = 0) -> None:
    """Reset, then move the torso `gap` m from the face of a wall next to its cell: the
    `face`-th (cyclically) of `wall_sides` (none: not moved)."""
    env.reset(seed=seed)
    maze, d = env.maze, env.data
    sides = wall_sides(env)
    if sides:
        centre = maze.cell_rowcol_to_xy(np.array(maze.cell_xy_to_rowcol(d.qpos[:2])))
        offset = 0.5 * maze.maze_size_scaling - gap
        d.qpos[:2] = centre + offset * np.array(sides[face % len(sides)])
    mujoco.mj_forward(env.model, d)


def touch_wall(env, side: tuple[int, int], distance: float) -> None:
    """Translate the ant along `side` (a unit x or y step) so that its geom reaching farthest
    that way ends `distance` m before the face of the wall block next to its cell that way
    (negative: overlapping it); the rest of the state is kept."""
    m, d, maze = env.model, env.data, env.maze
    u = np.array([*side, 0.0])
    ant = np.flatnonzero(m.geom_bodyid != 0)
    axis = d.geom_xmat[ant].reshape(-1, 3, 3)[:, :, 2]  # capsules' axes (spheres: no length)
    half = np.where(m.geom_type[ant] == mujoco.mjtGeom.mjGEOM_CAPSULE, m.geom_size[ant, 1], 0)
    reach = d.geom_xpos[ant] @ u + np.abs(axis @ u) * half + m.geom_size[ant, 0]
    row, col = maze.cell_xy_to_rowcol(d.qpos[:2])
    block = maze.cell_rowcol_to_xy(np.array([row - side[1], col + side[0]]))
    face = block @ u[:2] - 0.5 * maze.maze_size_scaling
    d.qpos[:2] += (face - distance - reach.max()) * u[:2]
    mujoco.mj_forward(m, d)


def with_margin(model: mujoco.MjModel, margin: float) -> mujoco.MjModel:
    """A copy of `model` whose contacts are detected `margin` m apart (pair margins add up):
    MuJoCo's own collision detection as a distance query."""
    wide = copy.deepcopy(model)
    wide.geom_margin[:] = 0.5 * margin
    wide.geom_gap[:] = 0.0
    return wide


def _touching(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[bool, bool]:
    """Whether any ant geom has a contact with the floor, with a wall block, in `model`."""
    mujoco.mj_kinematics(model, data)
    mujoco.mj_collision(model, data)
    geoms = np.stack([data.contact.geom1[: data.ncon], data.contact.geom2[: data.ncon]], 1)
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    return bool((geoms == floor).any()), bool(np.isin(geoms, block_geoms(model)).any())


def native_step_copy(
    model: mujoco.MjModel, data: mujoco.MjData, action: np.ndarray, wide: mujoco.MjModel
) -> tuple[mujoco.MjData, dict[str, bool]]:
    """One env step of `data`'s state in `model` (the env's or another) on a copy, one physics
    step at a time as MujocoEnv.do_simulation. Also whether, before or after any of its physics
    steps, the ant came within `wide`'s margin (`with_margin`) of the floor or of a wall, and
    whether it had a (native) wall contact."""
    d, probe = mujoco.MjData(model), mujoco.MjData(wide)
    mujoco.mj_copyData(d, model, data)
    d.ctrl[:] = action
    near = {"floor_near": False, "wall_near": False, "wall_contact": False}
    for k in range(gym_antmaze.FRAME_SKIP + 1):
        probe.qpos[:], probe.qvel[:] = d.qpos, d.qvel
        floor, wall = _touching(wide, probe)
        near["floor_near"] |= floor
        near["wall_near"] |= wall
        if k < gym_antmaze.FRAME_SKIP:
            mujoco.mj_step(model, d)
            near["wall_contact"] |= _wall_contacts_in(model, d) > 0
    return d, near


def _wall_contacts_in(model: mujoco.MjModel, d: mujoco.MjData) -> int:
    geoms = np.stack([d.contact.geom1[: d.ncon], d.contact.geom2[: d.ncon]], 1)
    return int(np.isin(geoms, block_geoms(model)).any(axis=1).sum())


def _wall_contacts(env) -> int:
    return _wall_contacts_in(env.model, env.data)


def block_geoms(model) -> np.ndarray:
    names = [
        mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or "" for g in range(model.ngeom)
    ]
    return np.array([g for g, n in enumerate(names) if n.startswith("block_")])


def _set_cone(models: list, cone: str | None) -> None:
    if cone:
        for m in models:
            m.opt.cone = getattr(mujoco.mjtCone, f"mjCONE_{cone.upper()}")


def one_step(name: str, steps: int, seed: int = 0, cone: str | None = None) -> dict:
    env = native_env(name)
    task = envs.make(name).task
    _set_cone([env.model, task.mj_model], cone)
    task._mjx_model = mjx.put_model(task.mj_model, impl="jax")
    start_near_wall(env, seed)
    state0 = jax.jit(task.reset)(jax.random.PRNGKey(0))
    step = jax.jit(task.step)
    rng = np.random.default_rng(seed)
    rows = []
    for action in rng.uniform(-1, 1, (steps, 8)):
        state = task.set_state(state0, twin_data(state0.data, env.data), goal=env.goal)
        out = step(state, jnp.asarray(action))
        obs, reward, terminated, _, info = env.step(action)
        rows.append(
            (
                float(np.abs(np.asarray(out.obs) - flat(obs)).max()),
                abs(float(out.reward) - float(reward)),
                bool(out.metrics["success"]) == info["success"],
                bool(out.done) == terminated,
                _wall_contacts(env),
            )
        )
    obs_err, reward_err, success_ok, done_ok, walls = map(np.asarray, zip(*rows, strict=False))
    wall = walls > 0

    def summary(mask: np.ndarray) -> dict:
        e = obs_err[mask]
        if not mask.any():
            return {"steps": 0}
        return {
            "steps": int(mask.sum()),
            "within_1e-6": float((e <= 1e-6).mean()),
            "obs_err_max": float(e.max()),
            "obs_err_median": float(np.median(e)),
        }

    return {
        "cone": cone or "pyramidal (as shipped)",
        "steps": steps,
        "no_wall_contact": summary(~wall),
        "wall_contact": summary(wall),
        "reward_err_max": float(reward_err.max()),
        "success_agrees": float(success_ok.mean()),
        "done_agrees": float(done_ok.mean()),
    }


def wall_contact_normals(name: str, steps: int, seeds: int, faces: int = 2) -> dict:
    """Trajectories of uniform random actions started beside a wall (`seeds` x `faces`), the twin
    set to the native state before every step as in `one_step`; the steps whose 5 physics steps
    touch a wall block but never the floor, split by the wall contacts' normals: on a face's
    axis (|n_x| or |n_y| > 0.999) or off it (a contact at a block's vertical edge). Max qvel error
    of each group, and the steps off the floor with no native contact at all."""
    env = native_env(name)
    task = envs.make(name).task
    task._mjx_model = mjx.put_model(task.mj_model, impl="jax")
    state0 = jax.jit(task.reset)(jax.random.PRNGKey(0))
    step = jax.jit(task.step)
    floor = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    blocks = set(block_geoms(env.model).tolist())
    groups: dict[str, list[float]] = {"face": [], "edge": [], "none": []}
    worst: dict[str, dict] = {}
    for seed in range(seeds):
        for face in range(faces):
            start_near_wall(env, seed, face=face)
            rng = np.random.default_rng(seed)
            for t, action in enumerate(rng.uniform(-1, 1, (steps, 8))):
                state = task.set_state(state0, twin_data(state0.data, env.data), goal=env.goal)
                out = step(state, jnp.asarray(action))
                d = mujoco.MjData(env.model)
                mujoco.mj_copyData(d, env.model, env.data)
                d.ctrl[:] = action
                normals, on_floor = [], False
                for _ in range(gym_antmaze.FRAME_SKIP):
                    mujoco.mj_step(env.model, d)
                    for c in d.contact[: d.ncon]:
                        pair = {int(c.geom1), int(c.geom2)}
                        on_floor |= floor in pair
                        if pair & blocks:
                            normals.append(np.array(c.frame[:3]))  # a copy: the view changes
                torso_z = float(env.data.qpos[2])
                env.step(action)
                if on_floor:
                    continue
                error = float(np.abs(np.asarray(out.data.qvel) - env.data.qvel).max())
                axis = [np.abs(n[:2]).max() > 0.999 for n in normals]
                kind = "none" if not normals else "face" if all(axis) else "edge"
                groups[kind].append(error)
                if error > worst.get(kind, {}).get("qvel_err", -1.0):
                    worst[kind] = {
                        "seed": seed,
                        "face": face,
                        "step": t,
                        "torso_z": torso_z,
                        "qvel_err": error,
                        "normals": [np.round(n, 3).tolist() for n in normals[:4]],
                    }
    return {
        kind: {
            "steps": len(errors),
            "qvel_err_max": max(errors) if errors else None,
            "within_1e-9": float(np.mean(np.asarray(errors) <= 1e-9)) if errors else None,
            "worst": worst.get(kind),
        }
        for kind, errors in groups.items()
    }


def _full_model_step(task):
    """The twin's step on Gymnasium-Robotics' full model: every block collides (same margin-
    aware colliders), no contact limit."""
    model = mjx.put_model(task.native_model, impl="jax")

    def step(data: mjx.Data, action: jax.Array) -> mjx.Data:
        def substep(d, _):
            return mjx.step(model, d), None

        with gym_antmaze.collision_functions(gym_antmaze._WALL_COLLIDERS):
            data, _ = jax.lax.scan(
                substep, data.replace(ctrl=action), None, length=gym_antmaze.FRAME_SKIP
            )
        return data

    return model, jax.jit(step)


def culling(name: str, steps: int, seed: int = 0) -> dict:
    env = native_env(name)
    task = envs.make(name).task
    model, full_step = _full_model_step(task)
    start_near_wall(env, seed)
    state0 = jax.jit(task.reset)(jax.random.PRNGKey(0))
    full0 = mjx.make_data(model)
    step = jax.jit(task.step)
    rng = np.random.default_rng(seed)
    errors, walls = [], []
    for action in rng.uniform(-1, 1, (steps, 8)):
        twin = step(task.set_state(state0, twin_data(state0.data, env.data)), jnp.asarray(action))
        full = full_step(twin_data(full0, env.data), jnp.asarray(action))
        a = np.concatenate([twin.data.qpos, twin.data.qvel])
        b = np.concatenate([full.qpos, full.qvel])
        errors.append(float(np.abs(a - b).max()))
        env.step(action)
        walls.append(_wall_contacts(env))
    return {
        "steps": steps,
        "steps_with_wall_contact": int((np.asarray(walls) > 0).sum()),
        "max_abs_diff_qpos_qvel": max(errors),
    }


def _twin_episodes(name: str, episodes: int, steps: int, seed: int) -> dict:
    env = envs.make(name)
    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)

    @jax.jit
    def run(keys):
        state = jax.vmap(env.reset)(keys)
        start = state.obs[:, :2]

        def body(s, key):
            a = jax.random.uniform(key, (episodes, 8), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            dist = jnp.linalg.norm(s.obs[:, :2] - s.obs[:, -2:], axis=1)
            return s, (jnp.exp(-dist), s.reward, s.metrics["success"])

        state, (dense, sparse, success) = jax.lax.scan(
            body, state, jax.random.split(keys[0], steps)
        )
        return dense.sum(0), sparse.sum(0), success.max(0), state.obs[:, :2] - start

    dense, sparse, success, moved = jax.device_get(run(keys))
    return {
        "dense": dense,
        "sparse": sparse,
        "success": success,
        "displacement": np.linalg.norm(moved, axis=1),
    }


def _native_episodes(name: str, episodes: int, steps: int, seed: int) -> dict:
    env = native_env(name)
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("dense", "sparse", "success", "displacement")}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        start, dense, sparse, success = obs["achieved_goal"].copy(), 0.0, 0.0, False
        for _ in range(steps):
            obs, reward, _, _, info = env.step(rng.uniform(-1, 1, 8))
            dense += float(np.exp(-np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"])))
            sparse, success = sparse + float(reward), success or info["success"]
        out["dense"].append(dense)
        out["sparse"].append(sparse)
        out["success"].append(float(success))
        out["displacement"].append(float(np.linalg.norm(obs["achieved_goal"] - start)))
    return {k: np.asarray(v) for k, v in out.items()}


def behaviour(name: str, episodes: int, steps: int, seed: int = 0) -> dict:
    twin = _twin_episodes(name, episodes, steps, seed)
    native = _native_episodes(name, episodes, steps, seed)
    successes = [
        [int(r["success"].sum()), episodes - int(r["success"].sum())] for r in (twin, native)
    ]

    def describe(r: dict) -> dict:
        return {
            "dense_return_mean": float(r["dense"].mean()),
            "sparse_return_mean": float(r["sparse"].mean()),
            "success_rate": float(r["success"].mean()),
            "displacement_mean": float(r["displacement"].mean()),
            "displacement_std": float(r["displacement"].std(ddof=1)),
        }

    return {
        "episodes": episodes,
        "steps": steps,
        "twin": describe(twin),
        "native": describe(native),
        "ks_p_dense_return": float(stats.ks_2samp(twin["dense"], native["dense"]).pvalue),
        "ks_p_displacement": float(
            stats.ks_2samp(twin["displacement"], native["displacement"]).pvalue
        ),
        "fisher_p_success": float(stats.fisher_exact(successes).pvalue),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="AntMaze twin vs native parity")
    parser.add_argument("mode", choices=["one-step", "culling", "behaviour", "wall-normals"])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--cone", choices=["pyramidal", "elliptic"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "behaviour":
        out = {n: behaviour(n, args.episodes, args.steps, args.seed) for n in args.names}
    else:
        jax.config.update("jax_enable_x64", True)
        if args.mode == "one-step":
            out = {n: one_step(n, args.steps, args.seed, args.cone) for n in args.names}
        elif args.mode == "wall-normals":
            out = {n: wall_contact_normals(n, args.steps, args.episodes) for n in args.names}
        else:
            out = {n: culling(n, args.steps, args.seed) for n in args.names}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
