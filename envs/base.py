"""`Env`: the one environment interface the rest of the project codes against.

An `Env` adapts a *task* (anything with `action_size`, `reset(rng) -> State` and
`step(state, action) -> State`, e.g. a MuJoCo Playground `MjxEnv`) to the project's conventions:

- actions live in [-1, 1]: they are clipped, then mapped affinely onto the actuator ctrlrange
  when that is not already [-1, 1];
- observations are flat float32 vectors; `reward` and `done` are float32 scalars;
- `state.done` is TRUE termination only; time limits are the batch wrapper's job
  (`envs.wrappers.BatchEnv`, using `episode_length`);
- tasks with a notion of success set `has_success=True` and put a 0/1 float in
  `state.metrics["success"]`.

`reset` and `step` are pure and jittable, and work on one (unbatched) env: vmap them for batches.
New tasks (e.g. `envs/maze.py`) either write a Playground-style task and wrap it in `Env`, or
subclass `Env` and override `reset`/`step`, keeping the conventions above.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from mujoco_playground._src.mjx_env import State

if TYPE_CHECKING:
    import mujoco
    from ml_collections import config_dict
    from mujoco import mjx

__all__ = ["Env", "ModelTask", "State", "Task"]


class Task(Protocol):
    """What `Env` wraps: the Playground `MjxEnv` surface it actually uses."""

    @property
    def action_size(self) -> int: ...

    def reset(self, rng: jax.Array) -> State: ...

    def step(self, state: State, action: jax.Array) -> State: ...


class ModelTask:
    """The Playground task properties every MJCF task here serves from what its constructor
    builds: `self._config`, `self._mj_model` and `self._mjx_model`. Put it before
    `mjx_env.MjxEnv` in the bases so these implement MjxEnv's abstract properties."""

    @property
    def config(self) -> config_dict.ConfigDict:
        return self._config

    @property
    def action_size(self) -> int:
        return int(self._mj_model.nu)

    @property
    def mj_model(self) -> mujoco.MjModel:
        return self._mj_model

    @property
    def mjx_model(self) -> mjx.Model:
        return self._mjx_model


def _ctrl_range(task: Any, action_size: int) -> np.ndarray:
    """[act, 2] actuator ctrlrange from the task's MuJoCo model; [-1, 1] for unlimited ones."""
    bounds = np.tile(np.array([-1.0, 1.0]), (action_size, 1))
    model = getattr(task, "mj_model", None)
    if model is not None and model.nu == action_size:
        limited = np.asarray(model.actuator_ctrllimited, bool)
        bounds[limited] = model.actuator_ctrlrange[limited]
    return bounds


class Env:
    """Adapter from a task to the project's env conventions (see the module docstring).

    Args:
      task: the wrapped task (`Task` protocol), kept as `self.task`.
      name: registry name.
      episode_length: time limit applied by `BatchEnv` / evaluation (not inside `step`).
      has_success: whether `state.metrics["success"]` exists.
      ctrl_range: [act, 2] bounds the [-1, 1] actions are mapped to; default: the task's
        `mj_model` actuator ctrlrange, if any, else [-1, 1] (no rescaling).
      action_repeat: inner steps per `step` (rewards summed, done if any inner step was done).
      config: the effective task config, for logging/checkpoint metadata.
    """

    def __init__(
        self,
        task: Task,
        name: str,
        episode_length: int,
        *,
        has_success: bool = False,
        ctrl_range: Sequence[Sequence[float]] | np.ndarray | None = None,
        action_repeat: int = 1,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.name = name
        self.episode_length = int(episode_length)
        self.has_success = has_success
        self.action_size = int(task.action_size)
        self.action_repeat = int(action_repeat)
        self.config = dict(config or {})
        if self.episode_length < 1 or self.action_repeat < 1:
            raise ValueError(f"{name}: episode_length and action_repeat must be >= 1")
        bounds = np.asarray(
            _ctrl_range(task, self.action_size) if ctrl_range is None else ctrl_range, np.float32
        )
        if bounds.shape != (self.action_size, 2):
            raise ValueError(f"{name}: ctrl_range shape {bounds.shape} != ({self.action_size}, 2)")
        # Skip the affine map entirely in the common case (all DM Control tasks use [-1, 1]).
        self._rescale = not np.allclose(bounds, [-1.0, 1.0])
        self._low, self._high = bounds[:, 0], bounds[:, 1]

    @functools.cached_property
    def observation_size(self) -> int:
        """Length of the flat observation (from an abstract trace of `reset`; no compile)."""
        return int(jax.eval_shape(self.reset, jax.random.PRNGKey(0)).obs.shape[-1])

    def reset(self, rng: jax.Array) -> State:
        """Fresh random initial state of one env."""
        return self._standardize(self.task.reset(rng))

    def step(self, state: State, action: jax.Array) -> State:
        """One control step of one env; `action` in [-1, 1] (clipped)."""
        ctrl = self.scale_action(action)
        if self.action_repeat == 1:
            return self._standardize(self.task.step(state, ctrl))

        def inner(s: State, _: None) -> tuple[State, tuple[jax.Array, jax.Array]]:
            s = self._standardize(self.task.step(s, ctrl))
            return s, (s.reward, s.done)

        state, (rewards, dones) = jax.lax.scan(inner, state, None, length=self.action_repeat)
        return state.replace(reward=rewards.sum(), done=dones.max())

    def scale_action(self, action: jax.Array) -> jax.Array:
        """Clip to [-1, 1], then map affinely onto the actuator ctrlrange if it differs."""
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        if self._rescale:
            action = self._low + 0.5 * (action + 1.0) * (self._high - self._low)
        return action

    def _standardize(self, state: State) -> State:
        # Fixed dtypes/shapes so reset and step states have identical pytree types: BatchEnv
        # selects between them leaf by leaf when auto-resetting.
        return state.replace(
            obs=jnp.ravel(jnp.asarray(state.obs, jnp.float32)),
            reward=jnp.asarray(state.reward, jnp.float32),
            done=jnp.asarray(state.done, jnp.float32),
        )

    def __repr__(self) -> str:
        return f"Env({self.name!r}, act={self.action_size}, episode_length={self.episode_length})"
