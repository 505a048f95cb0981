"""Name -> factory registry behind `envs.make`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from envs.base import Env

Factory = Callable[..., Env]  # factory(**overrides) -> Env

_REGISTRY: dict[str, Factory] = {}
# What each twin of a native env says of it: the package whose import registers the native
# Gymnasium id (the twin's own name) and its family. The one owner of "is this a twin, of
# what": evaluation in the native env, Minari's env_spec and the normalized scores ask here.
_NATIVE: dict[str, tuple[str, str]] = {}


def register(
    name: str, factory: Factory, *, native_package: str | None = None, family: str = ""
) -> None:
    """Add `factory(**overrides) -> Env` under `name`; duplicate names are an error. A twin of a
    native Gymnasium env registers under that env's id and names the package that registers it
    (`native_package`: "gymnasium", "gymnasium_robotics") and its `family` (e.g. "antmaze")."""
    if name in _REGISTRY:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = factory
    if native_package is not None:
        _NATIVE[name] = (native_package, family)


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def native_package(name: str) -> str | None:
    """The package whose import registers the native Gymnasium env `name` twins; None for an env
    without a native one (DM Control, the project's own tasks)."""
    return _NATIVE.get(name, (None, ""))[0]


def native_family(name: str) -> str:
    """The twin's family ("locomotion", "pointmaze", "antmaze"); "" for other envs."""
    return _NATIVE.get(name, (None, ""))[1]


def twin_names() -> list[str]:
    """Every registered twin of a native Gymnasium env."""
    return sorted(_NATIVE)


def make(name: str, **overrides: Any) -> Env:
    """Build the registered env `name`; `overrides` are task config keys (e.g. episode_length)."""
    if name not in _REGISTRY:
        # A typo keeps the first letter: AntMaze_UMaze-v4 is not a misspelt PointMaze_UMaze-v3.
        close = [c for c in difflib.get_close_matches(name, _REGISTRY, n=3) if c[:1] == name[:1]]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown env {name!r}.{hint} Registered: {', '.join(registered_names())}")
    return _REGISTRY[name](**overrides)


def check_overrides(name: str, overrides: Mapping[str, Any], valid: Iterable[str]) -> None:
    """For factories: raise ValueError naming any override key not in `valid`."""
    valid = sorted(valid)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown override(s) {', '.join(map(repr, unknown))} for env {name!r}; "
            f"valid keys: {', '.join(valid)}"
        )
