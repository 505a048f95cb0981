"""A Minari dataset's episodes as arrays (`wsrl_mjx.datasets.minari_io` loads the dataset): the
HDF5 and arrow readers (`hdf5_episodes`, `arrow_episodes`: an unreadable episode is a reason, not
an error), each episode checked (`episode_arrays`), and dict observations flattened
(`flatten_order`, `flatten_observation`; the conventions: `minari_io`'s docstring)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wsrl_mjx.datasets.data import DatasetError

ARROW_EXTRA = "pip install 'wsrl-mjx[arrow]' (or: pip install pyarrow)"
GOAL_KEYS = ("observation", "desired_goal")  # goal-env observations whose x, y are inside
_GOAL_DICT = {"observation", "desired_goal", "achieved_goal"}
_EPISODE_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")

# --- flattening --------------------------------------------------------------------------------


def flatten_order(value: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of a dict observation in their flattened order (module docstring). A goal-env
    dict drops `achieved_goal` only where it repeats the start of `observation` (PointMaze);
    where it does not (AntMaze: the ant's x, y live only there) it comes first, which gives
    D4RL's antmaze layout [x, y, rest of the ant state, goal]."""
    if set(value) != _GOAL_DICT:
        return tuple(sorted(value))
    achieved, observation = (np.asarray(value[k]) for k in ("achieved_goal", "observation"))
    achieved, observation = (
        achieved.reshape(len(achieved), -1),
        observation.reshape(len(observation), -1),
    )
    width = achieved.shape[1]
    if width <= observation.shape[1] and np.array_equal(achieved, observation[:, :width]):
        return GOAL_KEYS
    return ("achieved_goal", *GOAL_KEYS)


def flatten_observation(obs: Mapping[str, Any]) -> np.ndarray:
    """One dict observation (e.g. a native Gymnasium-Robotics env's) as the flat row a dataset
    of that env holds."""
    return _flatten({k: np.asarray(v)[None] for k, v in obs.items()}, "observation")[0][0]


def _flatten(value: Any, name: str, prefix: str = "") -> tuple[np.ndarray, list[str]]:
    """[T, D] float array and the flattened key names of an array or (nested) dict."""
    if not isinstance(value, Mapping):
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name}{'/' + prefix if prefix else ''} has dtype {a.dtype}")
        return a.reshape(len(a), -1), [prefix] if prefix else []
    parts, names = [], []
    for key in flatten_order(value):
        a, n = _flatten(value[key], name, f"{prefix}/{key}" if prefix else key)
        parts.append(a)
        names += n
    return np.concatenate(parts, axis=1), names


# --- episode readers -----------------------------------------------------------------------------


def _h5_value(node: h5py.Dataset | h5py.Group) -> Any:
    if isinstance(node, h5py.Group):
        return {k: _h5_value(node[k]) for k in node}
    return node[()]


# What h5py raises for a damaged file: the HDF5 library's errors surface as OSError, KeyError or
# RuntimeError, a damaged datatype as ValueError or TypeError.
_H5_DAMAGE = (OSError, KeyError, RuntimeError, ValueError, TypeError)


def hdf5_episodes(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(name, arrays) per episode; an episode whose blocks cannot be read is (name, reason), so
    it is skipped and counted like a malformed one. A file whose episode list itself cannot be
    read is a DatasetError."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read as HDF5 ({e})") from None
    with f:
        try:
            names = sorted(
                (k for k in f if re.fullmatch(r"episode_\d+", k)),
                key=lambda k: int(k.split("_")[1]),
            )
        except _H5_DAMAGE as e:
            raise DatasetError(
                f"{path}: damaged HDF5, its episode list cannot be read "
                f"({type(e).__name__}: {e}); copy the dataset again"
            ) from None
        for name in names:
            try:
                group = f[name]
                missing = [k for k in _EPISODE_KEYS if k not in group]
                episode = {k: _h5_value(group[k]) for k in _EPISODE_KEYS if not missing}
            except _H5_DAMAGE as e:
                yield name, f"unreadable ({type(e).__name__}: {e})"
                continue
            yield (name, f"missing {missing}") if missing else (name, episode)


def _arrow_column(column: Any) -> Any:
    """A pyarrow column as numpy: struct columns (dict spaces) become dicts of arrays."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        return {
            column.type.field(i).name: _arrow_column(column.field(i))
            for i in range(column.type.num_fields)
        }
    if pa.types.is_fixed_size_list(column.type):
        width = column.type.list_size
        return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    return column.to_numpy(zero_copy_only=False)


def arrow_episodes(data_dir: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    try:
        import pyarrow.dataset as pads
    except ImportError:
        raise DatasetError(
            f"{data_dir}: this Minari dataset uses the arrow format, which needs pyarrow: "
            f"{ARROW_EXTRA}"
        ) from None
    episodes = sorted(
        (p for p in data_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    for ep in episodes:
        name = f"episode_{ep.name}"
        try:
            table = pads.dataset(
                str(ep), format="arrow", ignore_prefixes=["_", ".", "metadata.json"]
            )
            table = table.to_table()
        except Exception as e:  # noqa: BLE001  (pyarrow raises many types for bad files)
            yield name, f"unreadable ({type(e).__name__}: {e})"
            continue
        missing = [k for k in _EPISODE_KEYS if k not in table.column_names]
        if missing:
            yield name, f"missing {missing}"
            continue
        cols = {k: _arrow_column(table.column(k)) for k in _EPISODE_KEYS}
        # Arrow rows are steps 0..T with actions/rewards/flags padded by one final row.
        yield name, {k: v if k == "observations" else _drop_last(v) for k, v in cols.items()}


def _drop_last(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_last(v) for k, v in value.items()}
    return value[:-1]


def episode_arrays(ep: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[str]] | str:
    """(obs [T+1, D], actions [T, A], rewards, terminations, truncations; obs key names) or why
    the episode is malformed."""
    if isinstance(ep["actions"], Mapping):
        return "dict actions are unsupported"
    try:
        obs, names = _flatten(ep["observations"], "observations")
    except ValueError as e:
        return str(e)
    act = np.asarray(ep["actions"])
    act = act.reshape(len(act), -1)
    scalars = {}
    for k in ("rewards", "terminations", "truncations"):
        v = np.asarray(ep[k])
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.ndim != 1:
            return f"{k} has shape {v.shape}, expected (T,)"
        scalars[k] = v
    t = len(act)
    lengths = [len(obs), t, *(len(v) for v in scalars.values())]
    if len(obs) != t + 1 or any(n != t for n in lengths[2:]):
        return (
            "needs T+1 observations and T actions, rewards, terminations, truncations; got "
            + ", ".join(map(str, lengths))
        )
    if t == 0:
        return "empty (0 steps)"
    for k, v in (("observations", obs), ("actions", act), ("rewards", scalars["rewards"])):
        if not np.isfinite(v.astype(np.float64)).all():
            return f"non-finite {k}"
    return {"observations": obs, "actions": act, **scalars}, names
