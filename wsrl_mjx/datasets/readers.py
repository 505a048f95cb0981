"""Which reader for which dataset file: `.npz` (`data.load_dataset`), D4RL-layout HDF5
(here), Minari datasets (`minari_io`: a directory, a `main_data.hdf5` inside one, or an id).
Every reader returns a validated `data.OfflineData`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wsrl_mjx.datasets import minari_io
from wsrl_mjx.datasets.data import (
    FLAG_KEYS,
    REQUIRED_KEYS,
    DatasetError,
    OfflineData,
    check_exists,
    load_dataset,
    read_npz_metadata,
    validate,
)

# --- HDF5 (D4RL and Minari layouts) -------------------------------------------------------


def _read(ds: h5py.Dataset | h5py.Group, name: str, path: Path, scalar: bool = False):
    if isinstance(ds, h5py.Group):
        raise DatasetError(
            f"{path}: {name} is a dict (HDF5 group with keys {sorted(ds.keys())}); dict "
            "observations/actions are unsupported: flatten them into one vector per step first"
        )
    a = ds[()]
    # Some files store per-step scalars as (N, 1): flatten that one trailing axis, nothing else.
    return a[:, 0] if scalar and a.ndim == 2 and a.shape[1] == 1 else a


def _read_d4rl(f: h5py.File, path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    keys = [
        k for k in ("observations", "actions", "rewards", "terminals", "timeouts") if k not in f
    ]
    if keys:
        raise DatasetError(f"{path}: D4RL layout is missing {keys}; present: {sorted(f.keys())}")
    a = {
        k: _read(f[k], k, path, scalar=k in ("rewards", *FLAG_KEYS))
        for k in REQUIRED_KEYS
        if k in f
    }
    meta: dict[str, Any] = {"method": "d4rl-hdf5", "source": str(path)}
    if "next_observations" in a:
        return a, meta
    # Validate (shapes, flags, NaNs) before rebuilding, with obs standing in for next obs.
    a = validate({**a, "next_observations": a["observations"]}, source=str(path)).arrays
    obs, term, tout = a["observations"], a["terminals"], a["timeouts"]
    ends = term | tout
    ends[-1] = True
    nxt = np.empty_like(obs)
    nxt[:-1] = obs[1:]
    # A terminal's next obs is never bootstrapped from: keep the transition, with obs as a stand-in.
    nxt[term] = obs[term]
    # Truncated ends (timeouts, the final row) have no recorded next obs: drop those transitions
    # and mark the row before as the trajectory's (truncated) end.
    drop = ends & ~term
    prev = np.flatnonzero(drop) - 1
    prev = prev[prev >= 0]
    prev = prev[~ends[prev]]  # a length-1 trajectory vanishes; the one before keeps its flags
    a["next_observations"] = nxt
    a["timeouts"] = tout.copy()
    a["timeouts"][prev] = True
    keep = ~drop
    a = {k: v[keep] for k, v in a.items()}
    meta["next_observations"] = (
        "rebuilt from observations[i+1] within trajectories; terminal transitions use "
        "observations[i] (never bootstrapped); the last transition of each truncated trajectory "
        "(timeout or final row) has no known next observation and was dropped"
    )
    meta["dropped_transitions"] = int(drop.sum())
    return a, meta


def load_hdf5(
    path: str | os.PathLike,
    *,
    observation_size: int | None = None,
    action_size: int | None = None,
    env: str | None = None,
) -> OfflineData:
    """Read a D4RL-layout (top-level arrays) or Minari-layout (`episode_<i>` groups) HDF5 file.

    D4RL files without `next_observations` get them rebuilt (see metadata["next_observations"]).
    Returns the same validated `OfflineData` as `load_dataset`.
    """
    path = Path(path)
    check_exists(path)
    minari = False
    try:
        with h5py.File(path, "r") as f:
            if "observations" in f:
                arrays, meta = _read_d4rl(f, path)
            elif any(re.fullmatch(r"episode_\d+", k) for k in f):
                minari = True
            else:
                raise DatasetError(
                    f"{path}: neither D4RL layout (top-level 'observations') nor Minari layout "
                    f"('episode_<i>' groups); top-level keys: {sorted(f.keys())}"
                )
    except OSError as e:
        raise DatasetError(f"{path}: cannot read as HDF5 ({e})") from None
    if minari:
        return minari_io.load_minari(
            path, observation_size=observation_size, action_size=action_size, env=env
        )
    return validate(
        arrays,
        meta,
        observation_size=observation_size,
        action_size=action_size,
        env=env,
        source=str(path),
    )


def load_any(
    path: str | os.PathLike,
    *,
    observation_size: int | None = None,
    action_size: int | None = None,
    env: str | None = None,
    terminals_from_reward: bool = False,
) -> OfflineData:
    """`load_dataset` for .npz, `load_hdf5` for .h5/.hdf5, `minari_io.load_minari` for a Minari
    dataset (its directory, a `main_data.hdf5` inside one, or a dataset id).

    `terminals_from_reward` (Minari goal datasets only) marks reward-1 transitions terminal.
    """
    kwargs = {"observation_size": observation_size, "action_size": action_size, "env": env}
    if minari_io.is_minari(path):
        return minari_io.load_minari(path, terminals_from_reward=terminals_from_reward, **kwargs)
    if terminals_from_reward:
        raise DatasetError(f"{path}: terminals_from_reward applies to Minari datasets only")
    suffix = Path(path).suffix.lower()
    loaders = {".npz": load_dataset, ".h5": load_hdf5, ".hdf5": load_hdf5}
    if suffix in loaders:
        return loaders[suffix](path, **kwargs)
    if not suffix and not Path(path).exists():
        minari_io.dataset_dir(path)  # raises, saying where it looked for the id
    if suffix == ".arrow":
        raise DatasetError(
            f"{path}: one file of a Minari arrow dataset; give the dataset's directory (the "
            "folder holding data/metadata.json) or its id"
        )
    inside = sorted(p.name for p in Path(path).iterdir()) if Path(path).is_dir() else []
    if inside:
        raise DatasetError(
            f"{path}: a folder, but not a Minari dataset (no data/metadata.json); a namespace "
            f"folder holds datasets: give one of {', '.join(inside[:8])}"
            + (" ..." if len(inside) > 8 else "")
        )
    raise DatasetError(
        f"{path}: unknown dataset suffix {suffix!r}; use .npz, .h5, .hdf5 or a Minari dataset "
        f"(its directory, or an id under {minari_io.datasets_root()})"
    )


def recorded_env_spec(path: str | os.PathLike) -> tuple[dict, dict]:
    """(env_spec, eval_env_spec) of the env a dataset was recorded in, read without its arrays
    where the format allows (a Minari dataset's metadata.json, an npz file's metadata); a file
    that records only an env name gives {"id": name}, one that records none {}."""
    if minari_io.is_minari(path):
        meta = minari_io.read_metadata(path)
        spec, eval_spec = (meta.get(k) for k in ("env_spec", "eval_env_spec"))
        return (spec if isinstance(spec, dict) else {}), (
            eval_spec if isinstance(eval_spec, dict) else {}
        )
    if Path(path).suffix.lower() == ".npz":
        name = read_npz_metadata(path).get("env")
    else:
        name = load_any(path).metadata.get("env")
    return ({"id": name} if name else {}), {}
