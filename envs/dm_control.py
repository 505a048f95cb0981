"""MuJoCo Playground's DM Control suite tasks, registered under their Playground names.

They ship their XML and load offline (unlike Playground's locomotion/manipulation envs, which
git-clone robot models at first use, so those are not registered). All tasks terminate only on
NaN physics and have no success signal; all actuators already use ctrlrange [-1, 1].
"""

from __future__ import annotations

import functools
from typing import Any

import mujoco
from mujoco_playground import dm_control_suite
from mujoco_playground._src.dm_control_suite import reacher

from envs.base import Env
from envs.registry import check_overrides, register

# Config keys `make` may not change: MJX's Warp backend runs ~30-56 steps/s on CPU and
# vision swaps the flat observation for pixels.
_FIXED = {"impl": "jax", "vision": False}


def _reacher_model(xml_path: Any, target_size: float, assets: dict[str, Any]) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_string(xml_path.read_text(), assets)
    spec.body("target").first_geom().size[0] = target_size
    return spec.compile()


# playground 0.2.0 picks the MjSpec API with a string compare (`"3.17.0" >= "3.3.0"` is False)
# and so calls `find_body`, which mujoco 3.17 no longer has: Reacher* would not build.
if not hasattr(mujoco.MjSpec, "find_body"):
    reacher._make_model = _reacher_model


def _flat_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        keys += _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]
    return keys


def make_dm_control(name: str, **overrides: Any) -> Env:
    """Load Playground task `name` with the JAX MJX backend and wrap it in `Env`."""
    config = dm_control_suite.get_default_config(name)
    fixed = (*_FIXED, "vision_config")
    valid = [k for k in _flat_keys(config.to_dict()) if k.split(".")[0] not in fixed]
    check_overrides(name, overrides, valid)
    config.update_from_flattened_dict({**overrides, **_FIXED})
    task = dm_control_suite.load(name, config=config)
    return Env(
        task,
        name,
        episode_length=config.episode_length,
        action_repeat=config.action_repeat,  # Playground leaves this to its training wrapper
        config=config.to_dict(),
    )


DM_CONTROL_TASKS: tuple[str, ...] = tuple(sorted(dm_control_suite.ALL_ENVS))

for _name in DM_CONTROL_TASKS:
    register(_name, functools.partial(make_dm_control, _name))
