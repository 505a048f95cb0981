"""Offline datasets: one validated file format, D4RL readers, reward transform, MC returns.

Other files are read by `wsrl_mjx.datasets.readers` (D4RL HDF5, and through
`wsrl_mjx.datasets.minari_io` Minari datasets), which validates them here.

A dataset is a dict of per-transition arrays with D4RL's names (`REQUIRED_KEYS`, all of length N)
plus a JSON metadata dict (env, method, behaviour_return, size, seed, ...). On disk it is one
`.npz` holding those arrays and the metadata as a JSON string under the key "metadata".

Loaders return an `OfflineData(arrays, metadata)` named tuple, so
`arrays, metadata = load_dataset(...)` works; functions here return new ones, never mutate. The
reward transform is recorded in its metadata (`metadata["reward_transform"] = {"scale", "bias"}`),
which also survives `save_dataset`, so applying it twice raises instead of silently rescaling
again.

Order of use (docs/algorithm.md): load -> `transform_rewards` -> `mc_returns` on
the transformed rewards -> `split_holdout` (MC returns travel as an extra array) -> `to_device`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from wsrl_mjx.runtime.errors import DatasetError
from wsrl_mjx.runtime.rundir import atomic_write
from wsrl_mjx.types import OfflineTransition

REQUIRED_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
_FLOAT_KEYS = ("observations", "actions", "rewards", "next_observations")
FLAG_KEYS = ("terminals", "timeouts")
_NDIM = {"observations": 2, "actions": 2, "next_observations": 2, "rewards": 1}
ACTION_TOLERANCE = 1e-4  # actions may exceed [-1, 1] by this much (float noise); then clipped
_OBS_DISCONTINUITY = 1e-6  # same threshold as the IQL/CalQL D4RL loaders


class OfflineData(NamedTuple):
    """Validated arrays (float32 / bool, all of length N) and their metadata."""

    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any]

    @property
    def size(self) -> int:
        return len(self.arrays["rewards"])

    @property
    def reward_transform(self) -> dict[str, float] | None:
        return self.metadata.get("reward_transform")

    def ends(self) -> np.ndarray:
        """`trajectory_ends` of this dataset, obs discontinuities included."""
        a = self.arrays
        return trajectory_ends(
            a["terminals"], a["timeouts"], a["observations"], a["next_observations"]
        )

    def returns_to_go(
        self, gamma: float, *, sparse_negative_reward: float | None = None
    ) -> np.ndarray:
        """`mc_returns` of the current rewards, trajectories split by `ends()`."""
        a = self.arrays
        return mc_returns(
            a["rewards"],
            a["terminals"],
            a["timeouts"],
            gamma,
            ends=self.ends(),
            sparse_negative_reward=sparse_negative_reward,
        )


# --- validation -----------------------------------------------------------------------------------


def _first_row(bad: np.ndarray) -> int:
    return int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))


def validate(
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any] | None = None,
    *,
    observation_size: int | None = None,
    action_size: int | None = None,
    env: str | None = None,
    source: str = "dataset",
) -> OfflineData:
    """Check everything a trainer relies on; return float32/bool copies (no copy if already so).

    Raises `DatasetError` naming the array and the problem. Nothing is truncated or dropped;
    actions within `ACTION_TOLERANCE` outside [-1, 1] are clipped to the box.
    """
    where = f"{source}: "
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DatasetError(
            f"{where}missing arrays {missing}; present: {sorted(arrays)}; "
            f"required: {list(REQUIRED_KEYS)}"
        )
    out = {k: np.asarray(v) for k, v in arrays.items()}
    for k in REQUIRED_KEYS:
        if out[k].dtype.kind not in "biuf":
            raise DatasetError(f"{where}{k} has non-numeric dtype {out[k].dtype}")
    for k, nd in _NDIM.items():
        if out[k].ndim != nd:
            want = "(N,)" if nd == 1 else "(N, size)"
            raise DatasetError(f"{where}{k} has shape {out[k].shape}, expected {want}")
    for k in FLAG_KEYS:
        if out[k].ndim != 1:
            raise DatasetError(f"{where}{k} has shape {out[k].shape}, expected (N,)")
    n = len(out["observations"])
    if n == 0:
        raise DatasetError(f"{where}dataset is empty (0 transitions)")
    for k, v in out.items():
        if v.ndim == 0 or len(v) != n:
            raise DatasetError(
                f"{where}{k} has {v.shape[0] if v.ndim else 'no'} rows but observations has {n}"
            )
    if out["next_observations"].shape != out["observations"].shape:
        raise DatasetError(
            f"{where}next_observations has shape {out['next_observations'].shape}, expected "
            f"{out['observations'].shape} (same as observations)"
        )
    if observation_size is not None and out["observations"].shape[1] != observation_size:
        raise DatasetError(
            f"{where}observations have {out['observations'].shape[1]} features but the env "
            f"expects observation_size={observation_size}"
        )
    if action_size is not None and out["actions"].shape[1] != action_size:
        raise DatasetError(
            f"{where}actions have {out['actions'].shape[1]} dims but the env expects "
            f"action_size={action_size}"
        )

    for k in _FLOAT_KEYS:
        out[k] = out[k].astype(np.float32, copy=False)  # a float64 overflow becomes inf: caught
        bad = ~np.isfinite(out[k])
        if bad.any():
            raise DatasetError(
                f"{where}{k} has {int(bad.sum())} non-finite values (NaN/inf); "
                f"first at row {_first_row(bad)}"
            )
    for k in FLAG_KEYS:
        v = out[k]
        if v.dtype != bool:
            bad = (v != 0) & (v != 1)
            if bad.any():
                raise DatasetError(
                    f"{where}{k} must be 0/1 flags; {int(bad.sum())} other values, "
                    f"first at row {_first_row(bad)}: {v[_first_row(bad)]!r}"
                )
            out[k] = v.astype(bool)
    act = out["actions"]
    bad = np.abs(act) > 1.0 + ACTION_TOLERANCE
    if bad.any():
        raise DatasetError(
            f"{where}actions must lie in [-1, 1] (tolerance {ACTION_TOLERANCE}); "
            f"{int(bad.sum())} entries outside, max |a| = {float(np.abs(act).max()):.6g}, "
            f"first at row {_first_row(bad)}"
        )
    if np.abs(act).max() > 1.0:
        out["actions"] = np.clip(act, -1.0, 1.0)

    meta = dict(metadata or {})
    if env is not None:
        if meta.get("env") is None:  # files from elsewhere may not name their env
            meta["env"], meta["env_assumed"] = env, True
        elif meta["env"] != env:
            raise DatasetError(f"{where}dataset was collected in env {meta['env']!r}, not {env!r}")
    if "size" in meta and meta["size"] != n:
        raise DatasetError(f"{where}metadata says size={meta['size']} but the arrays hold {n} rows")
    meta["size"] = n
    return OfflineData(out, meta)


# --- npz files ------------------------------------------------------------------------------------


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"metadata value {x!r} of type {type(x).__name__} is not JSON-serialisable")


def random_transitions(
    n: int, observation_size: int, action_size: int, episode_length: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """`n` random transitions in episodes of `episode_length` steps ending by time limit: a
    valid dataset of any shape, for smoke tests and fault injection (no real dynamics)."""
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.standard_normal((n, observation_size)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, action_size)).astype(np.float32),
        "rewards": rng.random(n).astype(np.float32),
        "next_observations": rng.standard_normal((n, observation_size)).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": (np.arange(n) % episode_length) == episode_length - 1,
    }


def save_dataset(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    *,
    compress: bool = False,
) -> Path:
    """Validate, then write `path` (".npz" appended if missing) atomically; return the path.

    `metadata` must name the `env`; `size` is set here. Extra per-transition arrays (same N) are
    stored too. The file appears complete or not at all (temp file + `os.replace`).
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if not isinstance(metadata.get("env"), str):
        raise DatasetError(f"{path}: metadata must name the env (a string), got {metadata!r}")
    if "metadata" in arrays:
        raise DatasetError(f"{path}: 'metadata' is reserved for the JSON metadata, not an array")
    data = validate(arrays, {k: v for k, v in metadata.items() if k != "size"}, source=str(path))
    try:
        meta_json = json.dumps(data.metadata, default=_json_default)
    except TypeError as e:
        raise DatasetError(f"{path}: {e}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compress else np.savez
    atomic_write(path, lambda f: save(f, metadata=np.array(meta_json), **data.arrays))
    return path


def check_exists(path: Path) -> None:
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")


def _read_npz(path: Path, with_arrays: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, metadata) of an npz file; without `with_arrays` only the metadata is read (the
    file is opened lazily: an array is read only when indexed)."""
    check_exists(path)
    # np.load reads any non-zip, non-.npy file as a pickle and then blames "pickled data".
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise DatasetError(f"{path}: not an .npz file (no zip header): text, or cut short?")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [k for k in z.files if k != "metadata"] if with_arrays else []
            arrays = {k: z[k] for k in names}
            meta = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    # A missing/corrupt zip, a truncated file, or an object array (pickles are refused).
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: cannot read as .npz ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(
            f"{path}: its 'metadata' must be a JSON object (env, size, ...), got "
            f"{type(meta).__name__}"
        )
    return arrays, meta


def read_npz_metadata(path: str | os.PathLike) -> dict:
    """An `.npz` dataset's metadata (its env, size, ...) without reading its arrays."""
    return _read_npz(Path(path), with_arrays=False)[1]


def load_dataset(
    path: str | os.PathLike,
    *,
    observation_size: int | None = None,
    action_size: int | None = None,
    env: str | None = None,
) -> OfflineData:
    """Read and validate a `.npz` dataset; see `validate` for the checks."""
    path = Path(path)
    arrays, meta = _read_npz(path)
    return validate(
        arrays,
        meta,
        observation_size=observation_size,
        action_size=action_size,
        env=env,
        source=str(path),
    )


# --- rewards and returns --------------------------------------------------------------------------


def transform_rewards(data: OfflineData, scale: float, bias: float) -> OfflineData:
    """Return a copy with rewards `r * scale + bias`, recorded in metadata["reward_transform"].

    Applying a transform to data that already carries one raises `DatasetError`.
    """
    if not isinstance(data, OfflineData):
        raise TypeError(
            "transform_rewards takes the OfflineData returned by a loader or validate()"
        )
    if data.reward_transform is not None:
        t = data.reward_transform
        raise DatasetError(
            f"rewards already transformed with scale={t['scale']}, bias={t['bias']}; "
            "apply the reward transform exactly once"
        )
    rewards = data.arrays["rewards"] * np.float32(scale) + np.float32(bias)
    meta = {**data.metadata, "reward_transform": {"scale": float(scale), "bias": float(bias)}}
    return OfflineData({**data.arrays, "rewards": rewards.astype(np.float32)}, meta)


def trajectory_ends(
    terminals: np.ndarray,
    timeouts: np.ndarray,
    observations: np.ndarray | None = None,
    next_observations: np.ndarray | None = None,
) -> np.ndarray:
    """bool[N]: row i is a trajectory's last step.

    True at terminals, timeouts, the last row, and (given both obs arrays) wherever
    next_observations[i] != observations[i+1]: D4RL concatenates episodes without always flagging.
    """
    ends = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
    if len(ends) == 0:
        return ends
    ends[-1] = True
    if observations is not None and next_observations is not None:
        gap = np.linalg.norm(next_observations[:-1] - observations[1:], axis=-1)
        ends[:-1] |= gap > _OBS_DISCONTINUITY
    return ends


def mc_returns(
    rewards: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
    gamma: float,
    *,
    ends: np.ndarray | None = None,
    sparse_negative_reward: float | None = None,
) -> np.ndarray:
    """float32[N] Monte-Carlo returns-to-go, G_t = r_t + gamma * G_{t+1} within a trajectory.

    G = r_T at each trajectory's last step (no bootstrap at terminals nor truncations). Pass
    `ends` (e.g. from `trajectory_ends` with observations) to split unflagged episodes. With
    `sparse_negative_reward`, a trajectory whose rewards all equal it gets r_neg / (1 - gamma)
    everywhere (CalQL's convention for failed sparse-reward episodes). Use transformed rewards.
    """
    rewards = np.asarray(rewards, np.float32)
    n = len(rewards)
    if not 0.0 <= gamma <= 1.0 or (sparse_negative_reward is not None and gamma == 1.0):
        raise ValueError(f"gamma must be in [0, 1] ([0, 1) with a sparse reward), got {gamma}")
    e = trajectory_ends(terminals, timeouts) if ends is None else np.asarray(ends, bool).copy()
    if n == 0:
        return np.zeros(0, np.float32)
    if len(e) != n:
        raise DatasetError(f"ends has {len(e)} rows but rewards has {n}")
    e |= np.asarray(terminals, bool) | np.asarray(timeouts, bool)
    e[-1] = True
    # One reversed pass over Python floats: ~0.12 s per million steps, no per-trajectory overhead.
    r, cont = rewards.astype(np.float64).tolist(), (~e).tolist()
    out, g = [0.0] * n, 0.0
    for i in range(n - 1, -1, -1):
        g = r[i] + gamma * g if cont[i] else r[i]
        out[i] = g
    g_all = np.asarray(out, np.float32)
    if sparse_negative_reward is not None:
        r_neg = np.float32(sparse_negative_reward)
        starts = np.concatenate([[0], np.flatnonzero(e[:-1]) + 1])
        other = np.logical_or.reduceat(rewards != r_neg, starts)  # any other reward per trajectory
        failed = np.repeat(~other, np.diff(np.append(starts, n)))
        g_all[failed] = np.float32(float(r_neg) / (1.0 - gamma))
    return g_all


# --- splitting, identity, device ------------------------------------------------------------------


def split_holdout(
    arrays: Mapping[str, np.ndarray], fraction: float, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split every per-transition array into (train, holdout), about `fraction` held out.

    Whole trajectories are held out when that lands within 2x the target size and leaves both
    sides non-empty; otherwise single transitions are (with a warning). Both sides keep the
    original row order. Compute MC returns before splitting and pass them in as an array.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n = len(arrays["terminals"])
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise DatasetError(f"split_holdout needs arrays of one length, got {sizes}")
    if n < 2:
        raise DatasetError(f"cannot split {n} transition(s) into train and holdout")
    target = min(max(1, round(fraction * n)), n - 1)
    rng = np.random.default_rng(seed)
    ends = trajectory_ends(
        arrays["terminals"],
        arrays["timeouts"],
        arrays.get("observations"),
        arrays.get("next_observations"),
    )
    starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1])
    lengths = np.diff(np.append(starts, n))
    order = rng.permutation(len(starts))
    taken = np.searchsorted(np.cumsum(lengths[order]), target) + 1  # first k reaching target
    held = np.zeros(n, bool)
    if len(starts) > 1 and lengths[order[:taken]].sum() <= min(2 * target, n - 1):
        for t in order[:taken]:
            held[starts[t] : starts[t] + lengths[t]] = True
    else:
        warnings.warn(
            "split_holdout: trajectories too long for the requested fraction; holding out "
            "single transitions",
            stacklevel=2,
        )
        held[rng.choice(n, target, replace=False)] = True
    return {k: v[~held] for k, v in arrays.items()}, {k: v[held] for k, v in arrays.items()}


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """First 16 hex chars of sha256 over REQUIRED_KEYS (name, dtype, shape, bytes), in order.

    Hash validated arrays (`OfflineData.arrays`) so dtype casts do not change the identity.
    """
    h = hashlib.sha256()
    for k in REQUIRED_KEYS:
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


# Transition field -> dataset (D4RL) key: the one place the two namings meet.
DATASET_KEYS = {
    "obs": "observations",
    "action": "actions",
    "reward": "rewards",
    "next_obs": "next_observations",
    "terminated": "terminals",
    "truncated": "timeouts",
}


def device_bytes(arrays: Mapping[str, np.ndarray]) -> int:
    """Bytes `to_device` allocates for `arrays` (every field as float32, mc_returns and the
    next actions included)."""
    fields = sum(np.size(arrays[key]) for key in DATASET_KEYS.values())
    return 4 * (fields + len(arrays["rewards"]) + np.size(arrays["actions"]))


def next_actions(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The dataset's action at each row's next state: the next row's action within a trajectory,
    the row's own on a trajectory's last row (`trajectory_ends`: a terminal there does not
    bootstrap; after a timeout the true next action was never recorded)."""
    actions = np.asarray(arrays["actions"])
    ends = trajectory_ends(
        arrays["terminals"], arrays["timeouts"], arrays["observations"], arrays["next_observations"]
    )
    following = np.concatenate([actions[1:], actions[-1:]])
    return np.where(ends[:, None], actions, following)


def to_device(arrays: Mapping[str, np.ndarray], mc_returns: np.ndarray) -> OfflineTransition:
    """Put the dataset on the default device as float32 arrays (flags as 0.0/1.0), with each
    row's next action (`next_actions`)."""
    f = lambda x: jnp.asarray(np.asarray(x, np.float32))  # noqa: E731
    if len(mc_returns) != len(arrays["rewards"]):
        raise DatasetError(
            f"mc_returns has {len(mc_returns)} rows but the dataset has {len(arrays['rewards'])}"
        )
    fields = {field: f(arrays[key]) for field, key in DATASET_KEYS.items()}
    return OfflineTransition(**fields, mc_return=f(mc_returns), next_action=f(next_actions(arrays)))
