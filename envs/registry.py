"""Name -> factory registry behind `envs.make`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from envs.base import Env

Factory = Callable[..., Env]  # factory(**overrides) -> Env

_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Add `factory(**overrides) -> Env` under `name`; duplicate names are an error."""
    if name in _REGISTRY:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = factory


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


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
