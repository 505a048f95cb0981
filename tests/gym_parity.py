"""Parity of the MJX twins with native Gymnasium envs, in float64 (run in a subprocess or under
`jax.experimental.enable_x64`). Used by tests/test_gym_twins.py and docs/gymnasium_twins.md.

`one_step_errors`: the twin stepped from the native state (set before every step) vs the native
step, on one native trajectory of random actions. `divergence_step`: the first step at which a
rollout leaves `tol` of the reference rollout (native with the same actions).
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

import envs  # noqa: F401


def native_env(name: str, **kwargs):
    import gymnasium as gym

    if name.startswith("PointMaze"):
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
    return gym.make(name, **kwargs).unwrapped


def _native_step(env, action):
    obs, reward, terminated, _, _ = env.step(action)
    if isinstance(obs, dict):
        obs = np.concatenate([obs["observation"], obs["desired_goal"]])
    return np.asarray(obs, np.float64), float(reward), bool(terminated)


def twin_data(template: mjx.Data, data: mujoco.MjData) -> mjx.Data:
    """`template` (a twin state's data) set to the native state: what a step reads (qpos, qvel,
    act, the solver warmstart) plus xpos, which Ant's reward reads before stepping. Replacing
    leaves keeps shapes and dtypes, so the jitted step compiles once."""
    leaves = {k: getattr(data, k) for k in ("qpos", "qvel", "act", "qacc_warmstart", "xpos")}
    leaves["time"] = data.time
    return template.replace(
        **{k: jnp.asarray(v, getattr(template, k).dtype) for k, v in leaves.items()}
    )


def one_step_errors(name: str, steps: int, seed: int = 0, **kwargs) -> dict:
    """Max |twin - native| of obs and reward per step, the twin set to the native state first."""
    from envs.gym_mujoco import make_task

    env = native_env(name, **kwargs)
    env.reset(seed=seed)
    task = make_task(name, **kwargs)
    state0 = jax.jit(task.reset)(jax.random.PRNGKey(0))
    step = jax.jit(lambda s, a: task.step(s, a))
    rng = np.random.default_rng(seed)
    obs_err, rew_err, done_same = [], [], []
    for _ in range(steps):
        action = rng.uniform(-1, 1, task.action_size)
        state = task.set_state(state0, twin_data(state0.data, env.data))
        out = step(state, jnp.asarray(action))
        obs, reward, terminated = _native_step(env, action)
        obs_err.append(float(np.abs(np.asarray(out.obs) - obs).max()))
        rew_err.append(abs(float(out.reward) - reward))
        done_same.append(bool(out.done) == terminated)
        if terminated:
            env.reset(seed=seed + len(obs_err))
    return {"obs_err": obs_err, "reward_err": rew_err, "done_agrees": done_same}


def _qstate(data) -> np.ndarray:
    return np.concatenate([np.asarray(data.qpos), np.asarray(data.qvel)])


def divergence_steps(name: str, steps: int, tol: float, seed: int = 0) -> dict:
    """First step where (a) the twin's rollout and (b) a native rollout perturbed by 1e-6 leave
    `tol` (max abs qpos/qvel) of the native rollout, all from one state and one action sequence;
    `steps` if never. Termination is ignored: physics keeps running."""
    from envs.gym_mujoco import make_task

    env = native_env(name)
    env.reset(seed=seed)
    task = make_task(name)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps, task.action_size))
    start = mujoco.MjData(env.model)
    mujoco.mj_copyData(start, env.model, env.data)
    m = env.model

    def native_rollout(perturb: float) -> np.ndarray:
        d = mujoco.MjData(m)
        mujoco.mj_copyData(d, m, start)
        d.qvel[:] += perturb
        out = []
        for a in actions:
            d.ctrl[:] = a
            mujoco.mj_step(m, d, nstep=task.frame_skip)
            out.append(_qstate(d))
        return np.array(out)

    ref, perturbed = native_rollout(0.0), native_rollout(1e-6)
    state0 = jax.jit(task.reset)(jax.random.PRNGKey(0))
    state = task.set_state(state0, twin_data(state0.data, start))

    def body(s, a):
        s = task.step(s, a)
        return s, jnp.concatenate([s.data.qpos, s.data.qvel])

    _, twin = jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, jnp.asarray(actions))

    def first(x: np.ndarray) -> int:
        bad = np.abs(np.asarray(x) - ref).max(axis=1) > tol
        return int(np.argmax(bad)) if bad.any() else steps

    return {"twin": first(twin), "perturbed_native": first(perturbed)}


if __name__ == "__main__":  # python tests/gym_parity.py NAME STEPS [TOL]: JSON on stdout
    jax.config.update("jax_enable_x64", True)
    name, steps = sys.argv[1], int(sys.argv[2])
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-3
    one = one_step_errors(name, steps)
    print(json.dumps({"one_step": one, "divergence": divergence_steps(name, steps, tol)}))
