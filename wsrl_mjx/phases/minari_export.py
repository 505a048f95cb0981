"""Datasets made here, written as Minari datasets that CORL, d3rlpy and Minari's own tools read:
`collect --set collect.format=minari` and `export DATASET.npz --id ID`.

The transitions are cut into episodes where one ended (terminal or time limit) or where the
next row does not continue it (a replay buffer's envs interleave); each episode keeps T+1
observations, T actions and rewards, and its `terminations` / `truncations` are the dataset's
terminals and timeouts, so reading it back (`readers.load_any`) gives the same arrays, with one
exception: an episode cut without a flag (by the dataset's end, or where a replay buffer's envs
interleave) is stored truncated, as Minari's readers expect an episode to end. The
env_spec is the native Gymnasium env the twin copies (its id and the run's overrides), so
`MinariDataset.recover_environment()` makes it. Flat-observation twins only (the locomotion
ones): the goal-env twins' dict observations would need unflattening.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wsrl_mjx.datasets.data import load_dataset
from wsrl_mjx.runtime.errors import DatasetError

MINARI_EXTRA = "pip install 'wsrl-mjx[minari]' (minari>=0.5.4)"
CONTINUITY = 1e-6  # next_observations[t] == observations[t + 1] within an episode


def episode_bounds(arrays: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """[start, end) of each episode: it ends at a terminal or a time limit, or where the next
    row's observation is not this row's next observation."""
    obs, nxt = arrays["observations"], arrays["next_observations"]
    done = np.asarray(arrays["terminals"], bool) | np.asarray(arrays["timeouts"], bool)
    broken = np.zeros(len(done), bool)
    broken[:-1] = np.abs(nxt[:-1] - obs[1:]).max(axis=1) > CONTINUITY
    ends = np.flatnonzero(done | broken) + 1
    if len(ends) == 0 or ends[-1] != len(done):
        ends = np.append(ends, len(done))
    starts = np.concatenate([[0], ends[:-1]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


@contextlib.contextmanager
def _minari_root(root: str | Path | None) -> Iterator[None]:
    """Minari writes under $MINARI_DATASETS_PATH: point it at `root` while writing."""
    if root is None:
        yield
        return
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def export_minari(
    npz: str | Path, dataset_id: str, root: str | Path | None = None, overrides: dict | None = None
) -> Path:
    """Write the `.npz` dataset as the Minari dataset `dataset_id` (under `root`, default
    Minari's own folder); returns its directory."""
    try:
        import gymnasium as gym
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise DatasetError(f"writing Minari datasets needs minari: {MINARI_EXTRA}") from None
    loaded = load_dataset(npz)
    name = loaded.metadata.get("env", "")
    from wsrl_mjx.phases.native_eval import native_env  # noqa: PLC0415  (Gymnasium ids: one owner)

    try:
        env = native_env(name, dict(overrides or {}), loaded.metadata.get("episode_length") or 1000)
    except Exception as e:  # ConfigError: no native env; gymnasium's errors otherwise
        raise DatasetError(f"{npz}: {e}") from None
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise DatasetError(
            f"{npz}: {name} has dict observations; Minari export covers flat-observation twins"
        )
    arrays = loaded.arrays
    buffers = []
    for k, (start, end) in enumerate(episode_bounds(arrays)):
        obs = np.concatenate(
            [arrays["observations"][start:end], arrays["next_observations"][end - 1 : end]]
        )
        truncated = np.asarray(arrays["timeouts"][start:end], bool).copy()
        terminated = np.asarray(arrays["terminals"][start:end], bool)
        truncated[-1] |= not terminated[-1]  # a cut episode ends truncated
        buffers.append(
            EpisodeBuffer(
                id=k,
                observations=obs.astype(env.observation_space.dtype),
                actions=arrays["actions"][start:end].astype(env.action_space.dtype),
                rewards=arrays["rewards"][start:end].astype(np.float64).tolist(),
                terminations=terminated.tolist(),
                truncations=truncated.tolist(),
            )
        )
    with _minari_root(root):
        try:
            dataset = minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env,
                algorithm_name=f"wsrl-mjx {loaded.metadata.get('method', 'collect')}",
                description=f"made by wsrl-mjx from {Path(npz).name}",
            )
        except ValueError as e:  # an existing id, a malformed id
            raise DatasetError(f"Minari dataset {dataset_id!r}: {e}") from None
        finally:
            env.close()
        return Path(dataset.spec.data_path).parent
