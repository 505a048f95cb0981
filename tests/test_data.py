"""Offline datasets (wsrl_mjx/datasets/data.py): file format, validation, readers, rewards, MC
returns."""

import json

import h5py
import numpy as np
import pytest

from wsrl_mjx.datasets import data as D
from wsrl_mjx.datasets import readers as R
from wsrl_mjx.types import OfflineTransition

OBS, ACT = 3, 2
META = {"env": "test-env", "method": "medium", "behaviour_return": 12.5, "seed": 3, "tags": [1, 2]}


def make_arrays(num_traj=2, length=5, seed=0):
    """`num_traj` consistent trajectories (next_obs[i] == obs[i+1] inside one), each timed out."""
    rng = np.random.default_rng(seed)
    parts = {k: [] for k in D.REQUIRED_KEYS}
    for _ in range(num_traj):
        states = rng.normal(size=(length + 1, OBS)).astype(np.float32)
        parts["observations"].append(states[:-1])
        parts["next_observations"].append(states[1:])
        parts["actions"].append(rng.uniform(-1, 1, (length, ACT)).astype(np.float32))
        parts["rewards"].append(rng.normal(size=length).astype(np.float32))
        parts["terminals"].append(np.zeros(length, bool))
        parts["timeouts"].append(np.arange(length) == length - 1)
    return {k: np.concatenate(v) for k, v in parts.items()}


def write_raw(path, arrays, metadata=META):
    """Write an npz without save_dataset's validation, to feed load_dataset bad files."""
    np.savez(path, metadata=np.array(json.dumps(metadata)), **arrays)
    return path


# --- npz format -----------------------------------------------------------------------------------


def test_round_trip_is_exact_and_leaves_no_temp_files(tmp_path):
    arrays = make_arrays()
    path = D.save_dataset(tmp_path / "sub" / "ds", arrays, META)
    assert path == tmp_path / "sub" / "ds.npz"
    assert list(path.parent.iterdir()) == [path]
    got, meta = D.load_dataset(path, observation_size=OBS, action_size=ACT, env="test-env")
    assert meta == {**META, "size": 10}
    assert set(got) == set(D.REQUIRED_KEYS)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k


def test_crash_during_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        D.save_dataset(tmp_path / "ds.npz", make_arrays(), META)
    assert list(tmp_path.iterdir()) == []


def test_casts_floats_and_flags_and_clips_tiny_action_overshoot(tmp_path):
    a = make_arrays()
    a = {**a, "observations": a["observations"].astype(np.float64)}
    a["terminals"] = a["terminals"].astype(np.int64)
    a["actions"][0, 0] = 1.0 + 5e-5
    arrays, _ = D.load_dataset(write_raw(tmp_path / "d.npz", a))
    assert arrays["observations"].dtype == np.float32 and arrays["terminals"].dtype == bool
    assert arrays["actions"][0, 0] == 1.0


def _drop(key):
    return lambda a: {k: v for k, v in a.items() if k != key}


def _set(key, fn):
    return lambda a: {**a, key: fn(a[key].copy())}


def _put(idx, value):
    def f(x):
        x[idx] = value
        return x

    return f


BAD = {
    "missing key": (_drop("timeouts"), {}, r"missing arrays \['timeouts'\]; present: \["),
    "wrong shape": (_set("observations", lambda x: x[:, 0]), {}, r"observations has shape \(10,\)"),
    "wrong next shape": (
        _set("next_observations", lambda x: x[:, :2]),
        {},
        r"next_observations has shape \(10, 2\), expected \(10, 3\)",
    ),
    "mismatched lengths": (
        _set("rewards", lambda x: x[:-1]),
        {},
        "rewards has 9 rows but observations has 10",
    ),
    "non-numeric": (_set("rewards", lambda x: x.astype(str)), {}, "rewards has non-numeric"),
    "nan": (
        _set("observations", _put((3, 1), np.nan)),
        {},
        "observations has 1 non-finite values .* first at row 3",
    ),
    "bad flag": (_set("terminals", lambda x: np.where(x, 1, 2)), {}, "terminals must be 0/1"),
    "action range": (
        _set("actions", _put((2, 0), 1.5)),
        {},
        r"actions must lie in \[-1, 1\].*1 entries outside, max \|a\| = 1.5, first at row 2",
    ),
    "obs size": (lambda a: a, {"observation_size": 4}, "3 features .* observation_size=4"),
    "action size": (lambda a: a, {"action_size": 1}, "2 dims .* action_size=1"),
    "env": (lambda a: a, {"env": "other"}, "collected in env 'test-env', not 'other'"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_raise_clear_errors(tmp_path, case):
    mutate, kwargs, match = BAD[case]
    path = write_raw(tmp_path / "bad.npz", mutate(make_arrays()))
    with pytest.raises(D.DatasetError, match=match):
        D.load_dataset(path, **kwargs)


def test_missing_file_and_wrong_size_metadata(tmp_path):
    with pytest.raises(D.DatasetError, match=r"not found: .*nope\.npz"):
        D.load_dataset(tmp_path / "nope.npz")
    path = write_raw(tmp_path / "d.npz", make_arrays(), {**META, "size": 11})
    with pytest.raises(D.DatasetError, match="size=11 but the arrays hold 10"):
        D.load_dataset(path)
    with pytest.raises(D.DatasetError, match="must name the env"):
        D.save_dataset(tmp_path / "x.npz", make_arrays(), {"method": "medium"})


def test_env_name_is_read_without_the_arrays(tmp_path, monkeypatch):
    """An empty env.name is taken from an npz dataset's metadata alone: no array is read."""
    from wsrl_mjx.phases.setup import resolve_env
    from wsrl_mjx.runtime.policy import load_config

    path = D.save_dataset(tmp_path / "ds.npz", make_arrays(), {**META, "env": "HalfCheetah-v5"})
    assert D.read_npz_metadata(path) == {**META, "env": "HalfCheetah-v5", "size": 10}

    def no_arrays(*args, **kwargs):
        raise AssertionError("the dataset's arrays were read to find its env")

    monkeypatch.setattr(D, "load_dataset", no_arrays)
    monkeypatch.setattr(R, "load_any", no_arrays)
    cfg = resolve_env(load_config(None, [f"offline.dataset={path}"]))
    assert cfg.env.name == "HalfCheetah-v5"
    unnamed = write_raw(tmp_path / "unnamed.npz", make_arrays(), {"method": "medium"})
    with pytest.raises(D.DatasetError, match="names no env"):
        resolve_env(load_config(None, [f"offline.dataset={unnamed}"]))
    write_raw(tmp_path / "list.npz", make_arrays(), [1, 2])
    with pytest.raises(D.DatasetError, match="must be a JSON object"):
        D.read_npz_metadata(tmp_path / "list.npz")


# --- rewards and returns --------------------------------------------------------------------------


def test_reward_transform_applies_exactly_once(tmp_path):
    data = D.validate(make_arrays(), META)
    raw = data.arrays["rewards"].copy()
    out = D.transform_rewards(data, 10.0, -5.0)
    np.testing.assert_array_equal(out.arrays["rewards"], raw * np.float32(10) - np.float32(5))
    np.testing.assert_array_equal(data.arrays["rewards"], raw)  # input untouched
    assert out.reward_transform == {"scale": 10.0, "bias": -5.0}
    with pytest.raises(D.DatasetError, match="already transformed with scale=10.0, bias=-5.0"):
        D.transform_rewards(out, 10.0, -5.0)
    # The marker survives a save/load round trip.
    reloaded = D.load_dataset(D.save_dataset(tmp_path / "t.npz", *out))
    with pytest.raises(D.DatasetError, match="already transformed"):
        D.transform_rewards(reloaded, 1.0, 0.0)


def test_mc_returns_hand_computed():
    # Trajectory A ends in a terminal, B in a timeout; gamma 0.9, no bootstrap at either end.
    rewards = np.array([1, 2, 3, 1, 1], np.float32)
    terminals = np.array([0, 0, 1, 0, 0], bool)
    timeouts = np.array([0, 0, 0, 0, 1], bool)
    expected = [1 + 0.9 * 4.7, 2 + 0.9 * 3, 3, 1 + 0.9 * 1, 1]  # 5.23, 4.7, 3, 1.9, 1
    got = D.mc_returns(rewards, terminals, timeouts, 0.9)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_mc_returns_sparse_all_negative_rule():
    # Antmaze transform x10 - 5: a failed trajectory (raw rewards all 0) is all -5 and gets
    # -5 / (1 - 0.9) = -50 everywhere; a successful one keeps its discounted sum.
    raw = np.array([0, 0, 0, 0, 0, 1], np.float32)
    rewards = raw * 10 - 5
    terminals = np.array([0, 0, 0, 0, 0, 1], bool)
    timeouts = np.array([0, 0, 1, 0, 0, 0], bool)
    got = D.mc_returns(rewards, terminals, timeouts, 0.9, sparse_negative_reward=-5.0)
    np.testing.assert_allclose(got, [-50, -50, -50, -5 - 0.9 * 0.5, -5 + 0.9 * 5, 5], rtol=1e-6)


def test_trajectory_ends_at_unflagged_obs_discontinuity():
    a = make_arrays(num_traj=2, length=3)
    a["timeouts"][:] = False  # concatenated without flags, as in some D4RL files
    ends = D.trajectory_ends(
        a["terminals"], a["timeouts"], a["observations"], a["next_observations"]
    )
    np.testing.assert_array_equal(ends, [0, 0, 1, 0, 0, 1])
    r = np.ones(6, np.float32)
    split = D.mc_returns(r, a["terminals"], a["timeouts"], 0.5, ends=ends)
    np.testing.assert_allclose(split, [1.75, 1.5, 1, 1.75, 1.5, 1])
    np.testing.assert_allclose(D.validate({**a, "rewards": r}).returns_to_go(0.5), split)
    assert D.mc_returns(r, a["terminals"], a["timeouts"], 0.5)[0] > 1.96  # one long trajectory


# --- HDF5 readers ---------------------------------------------------------------------------------


def test_d4rl_hdf5_rebuilds_next_observations(tmp_path):
    obs = np.arange(18, dtype=np.float32).reshape(6, OBS)  # trajectory A: rows 0-2, B: rows 3-5
    path = tmp_path / "d4rl.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.zeros((6, ACT), np.float32)
        f["rewards"] = np.arange(6, dtype=np.float32)[:, None]  # (N, 1) as in some D4RL files
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 0, 1], bool)
    arrays, meta = R.load_hdf5(path, observation_size=OBS, env="hopper")
    # Terminal row 2 is kept (its stand-in next obs is never bootstrapped); timed-out row 5 has no
    # known next obs and is dropped, so row 4 becomes B's truncated end.
    np.testing.assert_array_equal(arrays["rewards"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(arrays["next_observations"], obs[[1, 2, 2, 4, 5]])
    np.testing.assert_array_equal(arrays["terminals"], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(arrays["timeouts"], [0, 0, 0, 0, 1])
    assert meta["dropped_transitions"] == 1 and "rebuilt" in meta["next_observations"]
    assert meta["env"] == "hopper" and meta["env_assumed"] and meta["size"] == 5


def test_d4rl_hdf5_with_next_observations_is_read_as_is(tmp_path):
    a = make_arrays()
    with h5py.File(tmp_path / "d.h5", "w") as f:
        for k, v in a.items():
            f[k] = v
        f["infos/qpos"] = np.zeros((10, 2))  # extra D4RL groups are ignored
    arrays, meta = R.load_any(tmp_path / "d.h5")
    assert D.fingerprint(arrays) == D.fingerprint(a) and "dropped_transitions" not in meta


def _write_minari(root, dict_obs=False):
    """A Minari 0.5 dataset directory as `DataCollector` writes it: `data/metadata.json` holds the
    metadata (env_spec as a JSON string), `data/main_data.hdf5` the episodes, no root attrs."""
    data = root / "test" / "maze" / "tiny-v0" / "data"
    data.mkdir(parents=True)
    spec = {"id": "PointMaze_UMaze-v3", "kwargs": {"continuing_task": True}}
    meta = {"env_spec": json.dumps(spec), "dataset_id": "test/maze/tiny-v0", "total_steps": 5,
            "algorithm_name": "hand-written", "data_format": "hdf5"}  # fmt: skip
    (data / "metadata.json").write_text(json.dumps(meta))
    with h5py.File(data / "main_data.hdf5", "w") as f:
        for i, t in enumerate([3, 2]):
            ep = f.create_group(f"episode_{i}")
            obs = np.full((t + 1, OBS), 10.0 * i, np.float32) + np.arange(t + 1)[:, None]
            if dict_obs:
                ep["observations/observation"] = obs
                ep["observations/desired_goal"] = obs[:, :2] + 100
                ep["observations/achieved_goal"] = obs[:, :2]
            else:
                ep["observations"] = obs
            ep["actions"] = np.zeros((t, ACT), np.float32)
            ep["rewards"] = np.ones(t, np.float32)
            ep["terminations"] = np.arange(t) == t - 1 if i == 0 else np.zeros(t, bool)
            ep["truncations"] = np.zeros(t, bool)  # episode 1 ends with no flag at all
    return data.parent


def test_minari_hdf5(tmp_path):
    root = _write_minari(tmp_path)
    for path in (root, root / "data", root / "data" / "main_data.hdf5"):
        arrays, meta = R.load_any(path, env="PointMaze_UMaze-v3")
        np.testing.assert_array_equal(arrays["observations"][:, 0], [0, 1, 2, 10, 11])
        np.testing.assert_array_equal(arrays["next_observations"][:, 0], [1, 2, 3, 11, 12])
        np.testing.assert_array_equal(arrays["terminals"], [0, 0, 1, 0, 0])
        np.testing.assert_array_equal(arrays["timeouts"], [0, 0, 0, 0, 1])
        assert meta["episodes"] == 2 and meta["episodes_end_unflagged_marked_truncated"] == 1
        assert meta["dataset_id"] == "test/maze/tiny-v0" and meta["total_steps"] == 5
        assert meta["env_spec"]["kwargs"] == {"continuing_task": True}


def test_minari_lone_hdf5_with_pre_0_5_root_attributes(tmp_path):
    data = _write_minari(tmp_path) / "data"
    lone = tmp_path / "old.hdf5"
    (data / "main_data.hdf5").rename(lone)  # no metadata.json beside it
    with h5py.File(lone, "a") as f:
        f.attrs["env_spec"] = json.dumps({"id": "PointMaze_UMaze-v3"})
        f.attrs["dataset_id"] = "old/maze-v0"
    arrays, meta = R.load_any(lone)
    assert meta["env"] == "PointMaze_UMaze-v3" and meta["dataset_id"] == "old/maze-v0"
    assert len(arrays["rewards"]) == 5


def test_minari_dict_observations_flatten_and_unknown_suffix_raises(tmp_path):
    arrays, meta = R.load_any(_write_minari(tmp_path, dict_obs=True))
    assert meta["observation_keys"] == ["observation", "desired_goal"]
    assert arrays["observations"].shape == (5, OBS + 2)
    np.testing.assert_array_equal(arrays["observations"][0, OBS:], [100, 100])
    with pytest.raises(D.DatasetError, match="unknown dataset suffix '.pkl'"):
        R.load_any(tmp_path / "d.pkl")


# --- splitting, identity, device ------------------------------------------------------------------


def test_split_holdout_by_whole_trajectories():
    a = make_arrays(num_traj=10, length=5)
    a["index"] = np.arange(50)
    train, hold = D.split_holdout(a, 0.2, seed=0)
    assert len(train["index"]) == 40 and len(hold["index"]) == 10
    assert set(train["index"]).isdisjoint(hold["index"])
    assert set(train["index"]) | set(hold["index"]) == set(range(50))
    assert all(
        np.isin(np.arange(t * 5, t * 5 + 5), hold["index"]).all() for t in hold["index"] // 5
    )
    again = D.split_holdout(a, 0.2, seed=0)[1]
    np.testing.assert_array_equal(again["index"], hold["index"])


def test_split_holdout_falls_back_to_transitions_for_one_trajectory():
    a = make_arrays(num_traj=1, length=20)
    with pytest.warns(UserWarning, match="single transitions"):
        train, hold = D.split_holdout(a, 0.1, seed=1)
    assert len(train["rewards"]) == 18 and len(hold["rewards"]) == 2


def test_fingerprint_changes_with_one_value():
    a = make_arrays()
    fp = D.fingerprint(a)
    assert len(fp) == 16 and fp == D.fingerprint({k: v.copy() for k, v in a.items()})
    a["rewards"][7] += 1e-3
    assert D.fingerprint(a) != fp


def test_to_device():
    a = make_arrays()
    batch = D.to_device(a, np.arange(10, dtype=np.float32))
    assert isinstance(batch, OfflineTransition)
    assert batch.obs.shape == (10, OBS) and batch.action.shape == (10, ACT)
    for field in (batch.obs, batch.reward, batch.terminated, batch.truncated, batch.mc_return):
        assert field.dtype == np.float32
    np.testing.assert_array_equal(batch.truncated, a["timeouts"].astype(np.float32))
    with pytest.raises(D.DatasetError, match="mc_returns has 3 rows"):
        D.to_device(a, np.zeros(3))


def test_next_actions_follow_each_trajectory_and_stop_at_its_end():
    """Rows 0-2: a trajectory ending in a terminal; rows 3-4: one cut by a timeout; rows 5-6:
    an unflagged boundary (next_obs of row 5 is not obs of row 6), then the last row."""
    actions = np.arange(7, dtype=np.float32)[:, None] / 10
    obs = np.arange(7, dtype=np.float32)[:, None].repeat(2, 1)
    next_obs = obs + 1
    next_obs[5] = 99.0  # row 6 does not continue row 5
    arrays = {
        "observations": obs,
        "next_observations": next_obs,
        "actions": actions,
        "rewards": np.zeros(7, np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0, 0], bool),
        "timeouts": np.array([0, 0, 0, 0, 1, 0, 0], bool),
    }
    want = np.array([0.1, 0.2, 0.2, 0.4, 0.4, 0.5, 0.6], np.float32)[:, None]
    np.testing.assert_array_equal(D.next_actions(arrays), want)
    batch = D.to_device(arrays, np.zeros(7, np.float32))
    np.testing.assert_array_equal(batch.next_action, want)
    assert D.device_bytes(arrays) == 4 * (2 * 14 + 7 + 7 + 7 + 7 + 7 + 7)
