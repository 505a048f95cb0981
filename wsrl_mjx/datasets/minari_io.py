"""Minari datasets (D4RL's maintained successor) as `data.OfflineData`.

A Minari dataset is a directory `<root>/<namespace>/<name>-v<N>/data/` holding `metadata.json`
(env_spec, dataset_id, algorithm_name, total_steps, data_format, ...) and either
`main_data.hdf5` (groups `episode_<i>`) or, for the arrow format, one folder per episode
(`<i>/*.arrow`, read through pyarrow: `pip install 'wsrl-mjx[arrow]'`). `load_minari` takes that
directory (or its `data/` folder, or the HDF5 file) or a dataset id resolved under
`$MINARI_DATASETS_PATH`, else `~/.minari/datasets` (Minari's own lookup; nothing is downloaded).

Per episode Minari stores T+1 observations and T actions, rewards, terminations, truncations.
Conventions here (docs/gymnasium_twins.md):
- `terminations` -> `terminals`; `truncations` (and an episode cut without either flag) ->
  `timeouts`, never both on one row.
- Malformed episodes (missing arrays, T instead of T+1 observations as in some published files,
  lengths that disagree, non-finite values) are skipped and counted in
  `metadata["skipped_episodes"]` with the first reasons, not fatal.
- Dict observations are flattened by `minari_episodes.flatten_order`: goal-env dicts (`observation`,
  `desired_goal`, `achieved_goal`) become `[observation, desired_goal]` where achieved_goal
  repeats the start of `observation` (PointMaze: the point's x, y), else
  `[achieved_goal, observation, desired_goal]` (AntMaze, whose `observation` lacks the ant's
  x, y: D4RL's antmaze layout); other dicts concatenate their keys in sorted order, nested dicts
  depth-first. The order used is stored in
  `metadata["observation_keys"]`. Dict actions are refused (no env here takes them).
- `terminals_from_reward=True` marks every transition whose reward is at least
  `success_reward` terminal: goal datasets recorded with `continuing_task=True` never set
  `terminations`, and WSRL's antmaze setup (D4RL's convention) ends an episode at the goal.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import envs
from wsrl_mjx.datasets.data import DatasetError, OfflineData, validate
from wsrl_mjx.datasets.minari_episodes import arrow_episodes, episode_arrays, hdf5_episodes

__all__ = [
    "EPISODE_ONLY_KWARGS",
    "dataset_dir",
    "datasets_root",
    "check_recorded_env",
    "is_minari",
    "load_minari",
    "read_metadata",
]

MAX_REASONS = 5  # skipped-episode reasons kept in the metadata
# env_spec kwargs that change how episodes are cut, not the dynamics, observations or rewards a
# dataset holds: a goal dataset recorded with continuing_task=True trains an env that ends at the
# goal (terminals_from_reward), so these may differ between the dataset and the env.
EPISODE_ONLY_KWARGS = frozenset({"continuing_task", "reset_target"})


def datasets_root() -> Path:
    """Where Minari keeps datasets: `$MINARI_DATASETS_PATH`, else `~/.minari/datasets`."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root else Path.home() / ".minari" / "datasets"


def _data_dir(path: Path) -> Path | None:
    """The `data/` folder (holding metadata.json) for a dataset dir, data dir or HDF5 file."""
    for candidate in (path / "data", path, path.parent):
        if (candidate / "metadata.json").is_file():
            return candidate
    return None


def _latest_version(parent: Path, name: str) -> Path | None:
    versions = [
        (int(m.group(1)), p)
        for p in parent.glob(f"{name}-v*")
        if (m := re.fullmatch(re.escape(name) + r"-v(\d+)", p.name))
    ]
    return max(versions)[1] if versions else None


def dataset_dir(path_or_id: str | os.PathLike) -> Path:
    """The `data/` folder of a Minari dataset given as a path or a dataset id.

    An id without `-v<N>` resolves to its newest local version. Raises `DatasetError` saying
    where it looked.
    """
    path = Path(path_or_id)
    if path.exists():
        found = _data_dir(path)
        if found is None:
            raise DatasetError(f"{path}: not a Minari dataset (no data/metadata.json)")
        return found
    root = datasets_root()
    candidate = root / str(path_or_id)
    if not candidate.exists() and not re.search(r"-v\d+$", str(path_or_id)):
        candidate = _latest_version(candidate.parent, candidate.name) or candidate
    found = _data_dir(candidate) if candidate.exists() else None
    if found is None:
        raise DatasetError(
            f"dataset file or Minari dataset not found: {path_or_id} (looked for a path, then "
            f"for the id under {root}; set MINARI_DATASETS_PATH or download it with "
            "`minari download <id>` first)"
        )
    return found


def is_minari(path_or_id: str | os.PathLike) -> bool:
    """Whether `path_or_id` names a Minari dataset: a directory, an HDF5 file next to a
    `metadata.json`, or an id found under `datasets_root()`."""
    path = Path(path_or_id)
    if path.is_file():
        return _data_dir(path) is not None and path.suffix.lower() in (".h5", ".hdf5")
    try:
        dataset_dir(path_or_id)
    except DatasetError:
        return False
    return True


def read_metadata(path_or_id: str | os.PathLike) -> dict[str, Any]:
    """`metadata.json` with its JSON-in-JSON fields (env_spec, spaces) decoded."""
    path = dataset_dir(path_or_id) / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: cannot read Minari metadata ({e})") from None
    for key in ("env_spec", "eval_env_spec", "observation_space", "action_space"):
        if isinstance(meta.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):  # else kept as the string it is
                meta[key] = json.loads(meta[key])
    return meta


def _hdf5_attrs(path: Path) -> dict[str, Any]:
    """Metadata of a lone HDF5 file: Minari before 0.5 kept it in the root attributes."""
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: v.item() if isinstance(v, np.generic) else v for k, v in f.attrs.items()}
    except OSError as e:
        raise DatasetError(f"{path}: cannot read as HDF5 ({e})") from None
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    if isinstance(attrs.get("env_spec"), str):
        with contextlib.suppress(json.JSONDecodeError):
            attrs["env_spec"] = json.loads(attrs["env_spec"])
    return attrs


# --- the loader ---------------------------------------------------------------------------------


def load_minari(
    path_or_id: str | os.PathLike,
    *,
    observation_size: int | None = None,
    action_size: int | None = None,
    env: str | None = None,
    terminals_from_reward: bool = False,
    success_reward: float = 1.0,
) -> OfflineData:
    """Read a Minari dataset (HDF5 or arrow) into validated D4RL-style arrays.

    `metadata` keeps Minari's `metadata.json` under "minari" and lifts `env` (the env_spec id),
    `env_spec`, `dataset_id`, `algorithm_name` and `total_steps`; it adds `episodes`,
    `skipped_episodes` (count and first reasons) and `observation_keys` for dict observations.
    See the module docstring for the conventions.
    """
    path, source = Path(path_or_id), str(path_or_id)
    if path.is_file() and _data_dir(path) is None:  # a lone HDF5 file: Minari < 0.5 attributes
        data_dir, minari = path.parent, _hdf5_attrs(path)
    else:
        data_dir = dataset_dir(path_or_id)
        minari = read_metadata(data_dir)
    fmt = minari.get("data_format", "hdf5")
    if fmt == "hdf5":
        h5 = path if path.is_file() else data_dir / "main_data.hdf5"
        if not h5.is_file():
            raise DatasetError(f"{data_dir}: data_format is hdf5 but {h5.name} is missing")
        episodes = hdf5_episodes(h5)
    elif fmt == "arrow":
        episodes = arrow_episodes(data_dir)
    else:
        raise DatasetError(f"{data_dir}: unsupported Minari data_format {fmt!r} (hdf5, arrow)")

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "term", "trunc")}
    skipped, reasons, kept, unflagged = 0, [], 0, 0
    obs_keys: list[str] | None = None
    for name, ep in episodes:
        arrays = ep if isinstance(ep, str) else episode_arrays(ep)
        if isinstance(arrays, str):
            skipped += 1
            if len(reasons) < MAX_REASONS:
                reasons.append(f"{name}: {arrays}")
            continue
        arrays, names = arrays
        if obs_keys is None:
            obs_keys = names
        elif names != obs_keys or arrays["observations"].shape[1] != parts["obs"][0].shape[1]:
            skipped += 1
            if len(reasons) < MAX_REASONS:
                reasons.append(f"{name}: observation layout differs from the first episode's")
            continue
        obs = arrays["observations"]
        term = arrays["terminations"].astype(bool)
        trunc = arrays["truncations"].astype(bool) & ~term
        if not (term[-1] or trunc[-1]):  # an episode cut without a flag is still truncated
            trunc[-1] = True
            unflagged += 1
        parts["obs"].append(obs)
        parts["act"].append(arrays["actions"])
        parts["rew"].append(arrays["rewards"])
        parts["term"].append(term)
        parts["trunc"].append(trunc)
        kept += 1
    if not kept:
        raise DatasetError(
            f"{source}: no usable episode ({skipped} skipped"
            + (f"; e.g. {reasons[0]}" if reasons else "")
            + ")"
        )
    out = {
        "observations": np.concatenate([o[:-1] for o in parts["obs"]]),
        "next_observations": np.concatenate([o[1:] for o in parts["obs"]]),
        "actions": np.concatenate(parts["act"]),
        "rewards": np.concatenate(parts["rew"]),
        "terminals": np.concatenate(parts["term"]),
        "timeouts": np.concatenate(parts["trunc"]),
    }
    meta: dict[str, Any] = {"method": "minari", "source": source, "minari": minari}
    env_spec = minari.get("env_spec")
    if isinstance(env_spec, dict):
        meta["env"] = env_spec.get("id")
        meta["env_spec"] = env_spec
    for key in ("dataset_id", "algorithm_name", "total_steps"):
        if key in minari:
            meta[key] = minari[key]
    meta["episodes"] = kept
    meta["skipped_episodes"] = {"count": skipped, "reasons": reasons}
    if skipped:
        print(
            f"warning: {source}: skipped {skipped} of {skipped + kept} episodes; first reasons: "
            + "; ".join(reasons),
            file=sys.stderr,
        )
    if unflagged:
        meta["episodes_end_unflagged_marked_truncated"] = unflagged
    if obs_keys:
        meta["observation_keys"] = obs_keys
    if terminals_from_reward:
        goal = out["rewards"] >= success_reward
        out["terminals"] = out["terminals"] | goal
        out["timeouts"] = out["timeouts"] & ~out["terminals"]
        meta["terminals_from_reward"] = {
            "success_reward": float(success_reward),
            "terminals": int(out["terminals"].sum()),
        }
    return validate(
        out,
        meta,
        observation_size=observation_size,
        action_size=action_size,
        env=env,
        source=source,
    )


# --- dataset <-> env ---------------------------------------------------------------------------


def _as_json(x: Any) -> Any:
    """Tuples -> lists, numpy scalars -> Python, so JSON kwargs compare with config values."""
    return json.loads(json.dumps(x, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


@functools.cache
def _default_config(name: str) -> Mapping[str, Any]:
    """The registered env's config without overrides (one env built per name, not per key)."""
    return envs.make(name).config


def check_recorded_env(
    env: Any, metadata: Mapping[str, Any], overrides: Mapping[str, Any], source: str
) -> None:
    """Refuse a dataset recorded in another env than `env` (an `envs.Env`), naming what differs:
    the env id, an env_spec kwarg whose value is not the env's, or a user override of a kwarg the
    recording left at its default.

    Kwargs in `EPISODE_ONLY_KWARGS` may differ. Datasets without an env_spec (npz, D4RL) are
    checked by name only (`data.validate`); observation and action sizes by `data.validate`.
    """
    spec = metadata.get("env_spec")
    if not isinstance(spec, Mapping):
        return
    if spec.get("id") != env.name:
        raise DatasetError(
            f"{source}: recorded in env {spec.get('id')!r} (its env_spec) but env.name is "
            f"{env.name!r}; set env.name={spec.get('id')} or leave env.name empty to take it "
            "from the dataset"
        )
    recorded = dict(spec.get("kwargs") or {})
    for key in sorted(set(recorded) | set(overrides)):
        if key in EPISODE_ONLY_KWARGS or key == "episode_length":
            continue
        if key not in env.config:
            raise DatasetError(
                f"{source}: recorded with {key}={recorded.get(key)!r}, which the env {env.name!r} "
                "does not model"
            )
        if key in recorded and _as_json(recorded[key]) != _as_json(env.config[key]):
            raise DatasetError(
                f"{source}: recorded with {key}={recorded[key]!r} but the env has "
                f"{key}={env.config[key]!r}"
            )
        if key not in recorded:  # recorded with the native env's default: the twin's default
            default = _default_config(env.name).get(key)
            if _as_json(overrides[key]) != _as_json(default):
                raise DatasetError(
                    f"{source}: recorded with the env's default {key}={default!r}, but "
                    f"env.overrides sets {key}={overrides[key]!r}, which changes what the data's "
                    "rewards or dynamics mean; drop the override (or record a dataset with it)"
                )
