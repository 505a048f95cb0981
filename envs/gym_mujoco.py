"""MJX twins of Gymnasium MuJoCo v5 locomotion: `HalfCheetah-v5`, `Hopper-v5`, `Walker2d-v5`,
`Ant-v5`, registered under their Gymnasium ids.

Each twin loads the unmodified XML shipped in the installed `gymnasium` package (a runtime
dependency of these twins, imported only when one is made) and reproduces v5's observation,
reward, termination, reset noise and time limit (1000 steps), so data recorded in the native env
(e.g. Minari's `mujoco/*` datasets) is valid data for the twin. Config keys are v5's constructor
keyword arguments with the same defaults, so a dataset's `env_spec.kwargs` map onto overrides.

Native semantics kept on purpose (docs/gymnasium_twins.md):
- forward velocity is the displacement over `frame_skip` physics steps divided by `dt`; for Ant
  it is read from `xpos` of `main_body`, which after a step holds the pose *before* the last
  physics substep (MuJoCo computes positions before integrating), as in the native env;
- Ant's contact forces come from `rne_postconstraint` after the step (native calls
  `mj_rnePostConstraint`); the reset observation's contact forces are zero, as natively;
- actions are not clipped by the task (`envs.base.Env` clips to [-1, 1] = every ctrlrange).

Ant differs from native MuJoCo at contacts with the default pyramidal friction cone (measured
in docs/gymnasium_twins.md); HalfCheetah, Hopper and Walker2d track native MuJoCo in float64.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
from ml_collections import config_dict
from mujoco import mjx
from mujoco_playground._src.mjx_env import State

from envs.base import Env, ModelTask
from envs.registry import check_overrides, register, registered_names

__all__ = ["GYM_MUJOCO_TASKS", "GymLocomotion", "default_config", "gym_asset", "make_gym_mujoco"]

EPISODE_LENGTH = 1000  # v5's max_episode_steps for all four tasks
OBS_VELOCITY_CLIP = 10.0  # Hopper/Walker2d clip qvel to +-10 in the observation
GYMNASIUM_EXTRA = "pip install 'gymnasium[mujoco]>=1.0'"


def gym_asset(*parts: str, package: str = "gymnasium") -> Path:
    """Path of a file inside an installed package (its XML assets), without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ImportError(f"the Gymnasium twins load their XML from {package!r}: {GYMNASIUM_EXTRA}")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


# --- configs: v5's constructor defaults ---------------------------------------------------------


def _common(xml_file: str, frame_skip: int, reset_noise_scale: float, **extra: Any) -> dict:
    return {
        "xml_file": xml_file,
        "frame_skip": frame_skip,
        "forward_reward_weight": 1.0,
        "reset_noise_scale": reset_noise_scale,
        "exclude_current_positions_from_observation": True,
        "episode_length": EPISODE_LENGTH,
        **extra,
    }


_CONFIGS: dict[str, Callable[[], dict]] = {
    "HalfCheetah-v5": lambda: _common("half_cheetah.xml", 5, 0.1, ctrl_cost_weight=0.1),
    "Hopper-v5": lambda: _common(
        "hopper.xml",
        4,
        5e-3,
        ctrl_cost_weight=1e-3,
        healthy_reward=1.0,
        terminate_when_unhealthy=True,
        healthy_state_range=(-100.0, 100.0),
        healthy_z_range=(0.7, float("inf")),
        healthy_angle_range=(-0.2, 0.2),
    ),
    "Walker2d-v5": lambda: _common(
        "walker2d_v5.xml",
        4,
        5e-3,
        ctrl_cost_weight=1e-3,
        healthy_reward=1.0,
        terminate_when_unhealthy=True,
        healthy_z_range=(0.8, 2.0),
        healthy_angle_range=(-1.0, 1.0),
    ),
    "Ant-v5": lambda: _common(
        "ant.xml",
        5,
        0.1,
        ctrl_cost_weight=0.5,
        contact_cost_weight=5e-4,
        healthy_reward=1.0,
        main_body=1,
        terminate_when_unhealthy=True,
        healthy_z_range=(0.2, 1.0),
        contact_force_range=(-1.0, 1.0),
        include_cfrc_ext_in_observation=True,
    ),
}

# How each task draws its reset qvel: v5 uses N(0, 1) * scale where v4 did, uniform elsewhere.
_NORMAL_QVEL_NOISE = {"HalfCheetah-v5", "Ant-v5"}


def default_config(name: str) -> config_dict.ConfigDict:
    """v5's defaults for task `name`; every key is a valid override (v5 kwarg names)."""
    return config_dict.create(**_CONFIGS[name]())


# --- the task ---------------------------------------------------------------------------------


class GymLocomotion(ModelTask):
    """One v5 locomotion task as a pure reset/step pair over MJX (the `envs.base.Task` protocol).

    Computes in the dtype of the MJX model (float64 under `jax.experimental.enable_x64`, which
    the parity tests use); `envs.base.Env` casts observations and rewards to float32.
    """

    def __init__(self, name: str, config: config_dict.ConfigDict) -> None:
        self.name = name
        self._config = config
        self._mj_model = mujoco.MjModel.from_xml_path(
            str(gym_asset("envs", "mujoco", "assets", config.xml_file))
        )
        self._mjx_model = mjx.put_model(self._mj_model, impl="jax")
        self.frame_skip = int(config.frame_skip)
        self.dt = float(self._mj_model.opt.timestep) * self.frame_skip
        self._skip_qpos = (2 if name == "Ant-v5" else 1) * int(
            config.exclude_current_positions_from_observation
        )
        body = config.get("main_body", 1)  # v5 accepts a body id or name
        self._main_body = (
            mujoco.mj_name2id(self._mj_model, mujoco.mjtObj.mjOBJ_BODY, body)
            if isinstance(body, str)
            else int(body)
        )

    # --- v5 task logic ---
    def _forward_position(self, data: mjx.Data) -> jax.Array:
        if self.name == "Ant-v5":
            return data.xpos[self._main_body, :2]
        return data.qpos[:1]

    def _contact_forces(self, data: mjx.Data) -> jax.Array:
        low, high = self._config.contact_force_range
        return jnp.clip(data.cfrc_ext, low, high)

    def is_healthy(self, data: mjx.Data) -> jax.Array:
        cfg, qpos = self._config, data.qpos
        if self.name == "HalfCheetah-v5":
            return jnp.ones((), bool)
        if self.name == "Ant-v5":
            state = jnp.concatenate([qpos, data.qvel])
            low, high = cfg.healthy_z_range
            return jnp.isfinite(state).all() & (low <= qpos[2]) & (qpos[2] <= high)
        z, angle = qpos[1], qpos[2]
        (z_lo, z_hi), (a_lo, a_hi) = cfg.healthy_z_range, cfg.healthy_angle_range
        healthy = (z_lo < z) & (z < z_hi) & (a_lo < angle) & (angle < a_hi)
        if self.name == "Hopper-v5":
            s_lo, s_hi = cfg.healthy_state_range
            state = jnp.concatenate([qpos, data.qvel])[2:]
            healthy &= ((s_lo < state) & (state < s_hi)).all()
        return healthy

    def observation(self, data: mjx.Data) -> jax.Array:
        qvel = data.qvel
        if self.name in ("Hopper-v5", "Walker2d-v5"):
            qvel = jnp.clip(qvel, -OBS_VELOCITY_CLIP, OBS_VELOCITY_CLIP)
        parts = [data.qpos[self._skip_qpos :], qvel]
        if self.name == "Ant-v5" and self._config.include_cfrc_ext_in_observation:
            parts.append(self._contact_forces(data)[1:].ravel())
        return jnp.concatenate(parts)

    def reward(
        self, before: mjx.Data, after: mjx.Data, action: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        cfg = self._config
        velocity = (self._forward_position(after) - self._forward_position(before)) / self.dt
        forward = cfg.forward_reward_weight * velocity[0]
        ctrl_cost = cfg.ctrl_cost_weight * jnp.sum(jnp.square(action))
        reward = forward - ctrl_cost
        if self.name != "HalfCheetah-v5":
            reward += self.is_healthy(after) * cfg.healthy_reward
        if self.name == "Ant-v5":
            reward -= cfg.contact_cost_weight * jnp.sum(jnp.square(self._contact_forces(after)))
        return reward, {"x_velocity": velocity[0], "reward_forward": forward}

    def terminated(self, data: mjx.Data) -> jax.Array:
        if self.name == "HalfCheetah-v5" or not self._config.terminate_when_unhealthy:
            return jnp.zeros((), bool)
        return ~self.is_healthy(data)

    # --- API ---
    def reset(self, rng: jax.Array) -> State:
        k_pos, k_vel = jax.random.split(rng)
        m, s = self._mjx_model, self._config.reset_noise_scale
        dtype = m.qpos0.dtype
        qpos = m.qpos0 + jax.random.uniform(k_pos, (m.nq,), dtype, -s, s)
        if self.name in _NORMAL_QVEL_NOISE:
            qvel = s * jax.random.normal(k_vel, (m.nv,), dtype)
        else:
            qvel = jax.random.uniform(k_vel, (m.nv,), dtype, -s, s)
        data = mjx.make_data(m).replace(qpos=qpos, qvel=qvel)
        if self.name == "Ant-v5":  # the first step's displacement reads xpos (native: mj_forward)
            data = mjx.kinematics(m, data)
        zero = jnp.zeros((), dtype)
        metrics = {"x_velocity": zero, "reward_forward": zero}
        return State(data, self.observation(data), zero, zero, metrics, {})

    def set_state(self, state: State, data: mjx.Data) -> State:
        """`state` with physics `data` (e.g. `mjx.put_data` of a native MjData) and its obs."""
        return state.replace(data=data, obs=self.observation(data))

    def step(self, state: State, action: jax.Array) -> State:
        m = self._mjx_model
        action = jnp.asarray(action, m.qpos0.dtype)

        def substep(data: mjx.Data, _: None) -> tuple[mjx.Data, None]:
            return mjx.step(m, data.replace(ctrl=action)), None

        data, _ = jax.lax.scan(substep, state.data, None, length=self.frame_skip)
        if self.name == "Ant-v5":
            data = mjx.rne_postconstraint(m, data)
        reward, metrics = self.reward(state.data, data, action)
        done = self.terminated(data).astype(reward.dtype)
        return state.replace(
            data=data, obs=self.observation(data), reward=reward, done=done, metrics=metrics
        )


# --- factories --------------------------------------------------------------------------------


def make_task(name: str, **overrides: Any) -> GymLocomotion:
    """The bare twin `name` (a Gymnasium id) with validated v5 kwarg overrides."""
    config = default_config(name)
    check_overrides(name, overrides, config.keys())
    config.update(_tuples(overrides))
    return GymLocomotion(name, config)


def _tuples(overrides: Mapping[str, Any]) -> dict[str, Any]:
    # Ranges arrive as lists from JSON env_specs and YAML configs; v5 defaults are tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


def make_gym_mujoco(name: str, **overrides: Any) -> Env:
    """`make_task` wrapped in the project's `Env` (what `envs.make` returns)."""
    task = make_task(name, **overrides)
    return Env(task, name, episode_length=task.config.episode_length, config=task.config.to_dict())


GYM_MUJOCO_TASKS: dict[str, Callable[..., Env]] = {
    name: functools.partial(make_gym_mujoco, name) for name in _CONFIGS
}

for _name, _factory in GYM_MUJOCO_TASKS.items():
    if _name not in registered_names():  # importlib.reload-safe
        register(_name, _factory, native_package="gymnasium", family="locomotion")
