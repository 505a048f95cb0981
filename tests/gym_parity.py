"""Parity of the MJX twins with the native Gymnasium envs, in float64.

    python -m tests.gym_parity NAME [NAME ...] [--steps N] [--tol T]   (JSON on stdout)

It turns on jax_enable_x64, so run it in its own process (tests/test_gym_twins.py does). For
each twin, one native trajectory of `steps` uniform random actions and two measures:

- one step: before every step the twin is set to the native state (qpos, qvel, act, solver
  warmstart, xpos; PointMaze: its goal too), then both step; the max |twin - native| of the
  observation and of the reward, per step.
- divergence: from one native state, the native rollout, a native rollout with qvel perturbed
  by 1e-6, and the twin's rollout of the same actions; the first step at which each leaves `tol`
  (max |qpos, qvel| difference) of the native rollout, `steps` if never. Terminations are
  ignored: the physics keeps running.

One jitted twin step serves both (one compile per twin).
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

import envs

PERTURBATION = 1e-6


def native_env(name: str):
    import gymnasium as gym

    if name.startswith("PointMaze"):
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
    return gym.make(name).unwrapped


def _flat(obs) -> np.ndarray:
    if isinstance(obs, dict):  # the twin's order: [observation, desired_goal]
        obs = np.concatenate([obs["observation"], obs["desired_goal"]])
    return np.asarray(obs, np.float64)


def twin_data(template: mjx.Data, data: mujoco.MjData) -> mjx.Data:
    """`template` (a twin state's data) set to the native state. Replacing leaves keeps shapes
    and dtypes, so the jitted step compiles once (mjx.put_data would give int32 leaves where a
    step under x64 makes int64, and a new compile per call)."""
    leaves = {k: getattr(data, k) for k in ("qpos", "qvel", "act", "qacc_warmstart", "xpos")}
    leaves["time"] = data.time
    # Copies: on CPU jnp.asarray may alias the MjData buffers, which the native env then
    # overwrites while the (asynchronously dispatched) twin step still reads them.
    return template.replace(
        **{k: jnp.array(np.array(v), getattr(template, k).dtype) for k, v in leaves.items()}
    )


def _native_physics(name: str, model, frame_skip: int):
    """The physics of one native env step on an MjData (what `env.step` runs, no task logic)."""

    def step(d: mujoco.MjData, action: np.ndarray) -> None:
        if name.startswith("PointMaze"):  # PointEnv: clip action and qvel, then one mj_step
            d.qvel[:] = np.clip(d.qvel, -5.0, 5.0)
            mujoco.mj_forward(model, d)
            action = np.clip(action, -1.0, 1.0)
        d.ctrl[:] = action
        mujoco.mj_step(model, d, nstep=frame_skip)

    return step


def parity(name: str, steps: int, tol: float, seed: int = 0, cone: str | None = None) -> dict:
    env = native_env(name)
    task = envs.make(name).task
    if cone:  # e.g. "elliptic" in both, to measure what the friction cone accounts for
        value = getattr(mujoco.mjtCone, f"mjCONE_{cone.upper()}")
        env.model.opt.cone = task.mj_model.opt.cone = value
        task._mjx_model = mjx.put_model(task.mj_model, impl="jax")
    env.reset(seed=seed)
    goal_env = name.startswith("PointMaze")
    state0 = jax.jit(task.reset)(jax.random.PRNGKey(0))
    step = jax.jit(task.step)

    def set_native(data: mujoco.MjData):
        if goal_env:
            return task.set_state(state0, twin_data(state0.data, data), goal=env.goal)
        return task.set_state(state0, twin_data(state0.data, data))

    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps, task.action_size))
    m = env.model
    start = mujoco.MjData(m)
    mujoco.mj_copyData(start, m, env.data)

    # One step from the native state, along the native trajectory.
    obs_err, reward_err, done_agrees = [], [], []
    for action in actions:
        out = step(set_native(env.data), jnp.asarray(action))
        obs, reward, terminated, _, _ = env.step(action)
        obs_err.append(float(np.abs(np.asarray(out.obs) - _flat(obs)).max()))
        reward_err.append(abs(float(out.reward) - float(reward)))
        done_agrees.append(bool(out.done) == bool(terminated))
        if terminated:
            env.reset(seed=seed + len(obs_err))

    # Rollouts from `start`: native, native perturbed, twin.
    physics = _native_physics(name, m, getattr(task, "frame_skip", 1))

    def native_rollout(perturb: float) -> np.ndarray:
        d = mujoco.MjData(m)
        mujoco.mj_copyData(d, m, start)
        d.qvel[:] += perturb
        out = []
        for a in actions:
            physics(d, a)
            out.append(np.concatenate([d.qpos, d.qvel]))
        return np.array(out)

    ref, perturbed = native_rollout(0.0), native_rollout(PERTURBATION)
    state, twin = set_native(start), []
    for a in actions:
        state = step(state, jnp.asarray(a))
        twin.append(np.concatenate([np.asarray(state.data.qpos), np.asarray(state.data.qvel)]))

    def first(x: np.ndarray) -> int:
        bad = np.abs(np.asarray(x) - ref).max(axis=1) > tol
        return int(np.argmax(bad)) if bad.any() else steps

    within = np.asarray(obs_err) <= 1e-6
    return {
        "steps": steps,
        "one_step_within_1e-6": float(within.mean()),
        "one_step_obs_err_max": max(obs_err),
        "one_step_obs_err_median": float(np.median(obs_err)),
        "one_step_reward_err_max": max(reward_err),
        "one_step_reward_within_1e-6": float((np.asarray(reward_err) <= 1e-6).mean()),
        "done_agrees": float(np.mean(done_agrees)),
        "divergence_tol": tol,
        "twin_diverges_at": first(np.array(twin)),
        "perturbed_native_diverges_at": first(perturbed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="MJX twin vs native Gymnasium parity (x64)")
    parser.add_argument("names", nargs="+")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--cone", choices=["pyramidal", "elliptic"], help="set in both models")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    print(json.dumps({n: parity(n, args.steps, args.tol, cone=args.cone) for n in args.names}))


if __name__ == "__main__":
    main()
