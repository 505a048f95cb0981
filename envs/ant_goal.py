"""`antgoal`: the antmaze quadruped walking to nearby targets on an open floor.

This is the training task of the low-level ant policy that `envs.maze_data.collect_antmaze`
steers along maze waypoints (D4RL trained its antmaze data collector the same way: a
goal-reaching ant policy, then waypoints). Same MJCF, frame skip and reset noise as
`antmaze-*`, no walls. Targets are drawn at `goal_distance` (uniform range, metres) in a random
direction; within `reach_radius` of it a new target is drawn from the ant's position, so one
episode trains following a sequence of waypoints, as in collection.

Reward (dense, per control step): progress towards the target in m/s
`(dist_before - dist_after) / ctrl_dt` (at most `max_progress`, if set) + `alive_bonus` -
`ctrl_cost * |a|^2`. The episode
terminates when the torso tips over (`min_upright`: z-component of the torso's up axis).

Observation: `ant_goal_features` of the antmaze observation layout [qpos[:15], qvel[:14],
goal_xy], i.e. heading-invariant (29 dims): the policy trained here applies unchanged to any
antmaze observation whose goal slot holds a waypoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
from ml_collections import config_dict
from mujoco import mjx
from mujoco_playground._src import mjx_env
from mujoco_playground._src.mjx_env import State

from envs.base import Env
from envs.maze import AntMaze, AssetTask, ant_body_obs, ant_initial_q
from envs.registry import check_overrides, register, registered_names

__all__ = [
    "AntGoal",
    "ant_goal_features",
    "default_config",
    "make_ant_goal",
    "tipped_over",
    "torso_upright",
]


def default_config() -> config_dict.ConfigDict:
    return config_dict.create(
        ctrl_dt=0.05,  # as antmaze: 5 substeps of 0.01 s
        sim_dt=0.01,
        episode_length=500,
        goal_distance=(1.0, 6.0),  # metres; a maze waypoint (next cell centre) is 2-6 m away
        reach_radius=0.5,  # metres: a new target is drawn within this
        # m/s: cap on the progress reward (None: uncapped). Uncapped, SAC learnt a faster but
        # reckless gait that tipped over in ~11 % of episodes; capped at 1 m/s, ~1 %.
        max_progress=1.0,
        alive_bonus=1.0,
        ctrl_cost=0.1,
        min_upright=0.3,  # terminate when the torso's up axis has z below this
    )


def _quat_mul(a: jax.Array, b: jax.Array) -> jax.Array:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return jnp.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])  # fmt: skip


def torso_upright(qpos: jax.Array) -> jax.Array:
    """z-component of the torso's up axis (1 upright, -1 on its back) from the ant's qpos."""
    _, x, y, _ = qpos[3:7]
    return 1.0 - 2.0 * (x * x + y * y)


def tipped_over(qpos: jax.Array, min_upright: float | None = None) -> jax.Array:
    """antgoal's termination test (default threshold: its config's `min_upright`)."""
    if min_upright is None:
        min_upright = default_config().min_upright
    return torso_upright(qpos) < min_upright


def ant_goal_features(obs: jax.Array) -> jax.Array:
    """Antmaze observation [qpos[:15], qvel[:14], goal_xy] (31) -> heading-frame features (29).

    Rotates everything that depends on the ant's heading (yaw) into its heading frame: the
    goal offset, the torso's horizontal velocity, and the torso quaternion (yaw removed), so a
    walking skill learnt in one direction works in all of them. MuJoCo's free-joint angular
    velocity is already in the body frame; joint angles and velocities have no heading.
    """
    xy, z, quat, joints = obs[:2], obs[2:3], obs[3:7], obs[7:15]
    lin_vel, ang_vel, joint_vel, goal = obs[15:18], obs[18:21], obs[21:29], obs[29:31]
    w, x, y, zq = quat
    yaw = jnp.arctan2(2.0 * (w * zq + x * y), 1.0 - 2.0 * (y * y + zq * zq))
    cos, sin = jnp.cos(yaw), jnp.sin(yaw)
    to_heading = jnp.array([[cos, sin], [-sin, cos]])  # world xy -> heading frame
    half = 0.5 * yaw
    tilt = _quat_mul(jnp.stack([jnp.cos(half), 0.0, 0.0, -jnp.sin(half)]), quat)
    tilt = jnp.where(tilt[0] < 0, -tilt, tilt)  # q and -q are one pose: pick w >= 0
    parts = (z, tilt, joints, to_heading @ lin_vel[:2], lin_vel[2:], ang_vel, joint_vel)
    return jnp.concatenate([*parts, to_heading @ (goal - xy)])


class AntGoal(AssetTask):
    """Open-floor goal reaching with the antmaze ant (see the module docstring)."""

    xml_file = AntMaze.xml_file

    def __init__(self, config_overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(default_config(), dict(config_overrides or {}))
        lo, hi = self._config.goal_distance
        if not 0.0 < lo <= hi:
            raise ValueError(f"goal_distance must satisfy 0 < low <= high, got {(lo, hi)}")
        self._mj_model = mujoco.MjModel.from_xml_path(self.xml_path)
        self._mjx_model = mjx.put_model(self._mj_model, impl="jax")

    def _new_goal(self, rng: jax.Array, xy: jax.Array) -> jax.Array:
        k_r, k_a = jax.random.split(rng)
        lo, hi = self._config.goal_distance
        radius = jax.random.uniform(k_r, (), minval=lo, maxval=hi)
        angle = jax.random.uniform(k_a, (), minval=-jnp.pi, maxval=jnp.pi)
        return xy + radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])

    @staticmethod
    def maze_obs(data: mjx.Data, goal: jax.Array) -> jax.Array:
        """The antmaze observation with `goal` in its goal slot (what the collector feeds)."""
        return jnp.concatenate([ant_body_obs(data), goal])

    def _obs(self, data: mjx.Data, goal: jax.Array) -> jax.Array:
        return ant_goal_features(self.maze_obs(data, goal))

    def reset(self, rng: jax.Array) -> State:
        rng, k_q, k_goal = jax.random.split(rng, 3)
        qpos, qvel = ant_initial_q(k_q, jnp.zeros(2))
        data = mjx.make_data(self._mjx_model).replace(qpos=qpos, qvel=qvel)
        goal = self._new_goal(k_goal, qpos[:2])
        zero = jnp.zeros((), jnp.float32)
        metrics = {"progress": zero, "targets_reached": zero}
        info = {"rng": rng, "goal": goal, "targets_reached": zero}
        return State(data, self._obs(data, goal), zero, zero, metrics, info)

    def step(self, state: State, action: jax.Array) -> State:
        cfg = self._config
        ctrl = jnp.clip(action, -1.0, 1.0)
        data = mjx_env.step(self._mjx_model, state.data, ctrl, self.n_substeps)
        goal = state.info["goal"]
        before = jnp.linalg.norm(state.data.qpos[:2] - goal)
        after = jnp.linalg.norm(data.qpos[:2] - goal)
        progress = (before - after) / self._config.ctrl_dt
        rewarded = progress if cfg.max_progress is None else jnp.minimum(progress, cfg.max_progress)
        done = tipped_over(data.qpos, cfg.min_upright).astype(jnp.float32)
        reward = rewarded + cfg.alive_bonus - cfg.ctrl_cost * jnp.sum(ctrl**2)

        rng, k_goal = jax.random.split(state.info["rng"])
        reached = after < cfg.reach_radius
        goal = jnp.where(reached, self._new_goal(k_goal, data.qpos[:2]), goal)
        count = state.info["targets_reached"] + reached
        info = {"rng": rng, "goal": goal, "targets_reached": count}
        metrics = {"progress": progress, "targets_reached": count}
        return state.replace(
            data=data, obs=self._obs(data, goal), reward=reward, done=done, metrics=metrics,
            info=info,
        )  # fmt: skip


def make_ant_goal(**overrides: Any) -> Env:
    check_overrides("antgoal", overrides, default_config().keys())
    task = AntGoal(overrides)
    cfg = task.config
    return Env(task, "antgoal", episode_length=cfg.episode_length, config=cfg.to_dict())


if "antgoal" not in registered_names():  # importlib.reload-safe
    register("antgoal", make_ant_goal)
