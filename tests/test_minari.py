"""Minari datasets made offline by minari's own DataCollector on the native Gymnasium envs, read
by `wsrl_mjx.datasets.minari_io` (through `readers.load_any`), and the dataset <-> env checks of
pretrain.
The AntMaze_UMaze-v4 one also runs end to end in its twin: `pretrain`, then `finetune --method
wsrl`, through the command line (the slowest test here: four compiles of the twin).

Datasets are tiny (tens of steps) and made once per module under a temporary
MINARI_DATASETS_PATH; nothing is downloaded.
"""

import json
import os
import re

import h5py
import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
minari = pytest.importorskip("minari")
gymnasium_robotics = pytest.importorskip("gymnasium_robotics")

from wsrl_mjx.datasets import data as D  # noqa: E402
from wsrl_mjx.datasets import minari_io  # noqa: E402
from wsrl_mjx.datasets import readers as R  # noqa: E402
from wsrl_mjx.phases.setup import resolve_env  # noqa: E402
from wsrl_mjx.runtime.policy import load_config  # noqa: E402

gym.register_envs(gymnasium_robotics)
EPISODE_STEPS = 30


def _collect(env, dataset_id, episodes, policy, seed=0, **kwargs):
    """`episodes` episodes of `policy(obs)` through minari.DataCollector -> the dataset dir."""
    collector = minari.DataCollector(env, record_infos=False, **kwargs)
    for i in range(episodes):
        obs, _ = collector.reset(seed=seed + i)
        while True:
            obs, _, terminated, truncated, _ = collector.step(policy(obs))
            if terminated or truncated:
                break
    collector.create_dataset(dataset_id=dataset_id, algorithm_name="test-policy")
    return minari_io.datasets_root() / dataset_id


def _to_goal(obs):
    """Proportional-derivative controller of the point to its goal: reaches it in tens of steps."""
    pos, vel = obs["observation"][:2], obs["observation"][2:]
    return np.clip(2.0 * (obs["desired_goal"] - pos) - 0.5 * vel, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        rng = np.random.default_rng(0)
        cheetah = gym.make("HalfCheetah-v5", max_episode_steps=EPISODE_STEPS)
        hopper = gym.make("Hopper-v5")  # falls within ~100 random steps: terminated
        maze = gym.make(
            "PointMaze_Open-v3", continuing_task=True, reset_target=True, max_episode_steps=120
        )

        def rand(env):
            return lambda obs: rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)

        ant = gym.make("AntMaze_UMaze-v4", max_episode_steps=EPISODE_STEPS)
        out = {
            "ant": _collect(ant, "test/antmaze/umaze-random-v0", 2, rand(ant)),
            "cheetah": _collect(cheetah, "test/halfcheetah/random-v0", 2, rand(cheetah)),
            "hopper": _collect(hopper, "test/hopper/random-v0", 3, rand(hopper)),
            "maze": _collect(maze, "test/pointmaze/open-v0", 2, _to_goal, data_format="arrow"),
        }
        yield out, mp


def test_halfcheetah_hdf5_layout_metadata_and_t_plus_1_observations(datasets):
    paths, _ = datasets
    arrays, meta = R.load_any(paths["cheetah"], observation_size=17, action_size=6)
    assert (paths["cheetah"] / "data" / "metadata.json").is_file()
    with h5py.File(paths["cheetah"] / "data" / "main_data.hdf5") as f:
        assert dict(f.attrs) == {}  # Minari 0.5 keeps nothing in the HDF5 attributes
        episode = f["episode_0"]
        obs = episode["observations"][()]
        assert len(obs) == EPISODE_STEPS + 1
    assert meta["env"] == "HalfCheetah-v5" and meta["env_spec"]["max_episode_steps"] == 30
    assert meta["dataset_id"] == "test/halfcheetah/random-v0"
    assert meta["algorithm_name"] == "test-policy" and meta["total_steps"] == 2 * EPISODE_STEPS
    assert meta["skipped_episodes"]["count"] == 0 and meta["episodes"] == 2
    n = EPISODE_STEPS
    np.testing.assert_allclose(arrays["observations"][:n], obs[:-1].astype(np.float32))
    np.testing.assert_allclose(arrays["next_observations"][:n], obs[1:].astype(np.float32))
    assert not arrays["terminals"].any()
    np.testing.assert_array_equal(np.flatnonzero(arrays["timeouts"]), [n - 1, 2 * n - 1])


def test_hopper_terminations_become_terminals(datasets):
    paths, _ = datasets
    arrays, meta = R.load_any(paths["hopper"], env="Hopper-v5")
    ends = np.flatnonzero(arrays["terminals"])
    assert len(ends) == 3 and ends[-1] == len(arrays["rewards"]) - 1  # every episode fell
    assert not arrays["timeouts"].any()
    assert meta["total_steps"] == len(arrays["rewards"])


def test_pointmaze_arrow_dict_observations_and_terminals_from_reward(datasets):
    pytest.importorskip("pyarrow")
    paths, _ = datasets
    plain = R.load_any(paths["maze"])
    assert plain.metadata["minari"]["data_format"] == "arrow"
    assert plain.metadata["observation_keys"] == ["observation", "desired_goal"]
    obs = plain.arrays["observations"]
    assert obs.shape[1] == 6  # [x, y, vx, vy, goal_x, goal_y], as the PointMaze twin
    reached = plain.arrays["rewards"] == 1.0
    assert reached.any() and not plain.arrays["terminals"].any()  # continuing_task=True
    # reset_target=True: the goal moves after a success, seen from the next observation on.
    assert (np.abs(np.diff(obs[:, 4:], axis=0)).max(axis=1) > 0.5).any()
    goal = R.load_any(paths["maze"], terminals_from_reward=True)
    np.testing.assert_array_equal(goal.arrays["terminals"], reached)
    assert not (goal.arrays["terminals"] & goal.arrays["timeouts"]).any()
    assert goal.metadata["terminals_from_reward"]["terminals"] == int(reached.sum())


def test_arrow_without_pyarrow_names_the_extra(datasets, monkeypatch):
    import builtins

    paths, _ = datasets
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(D.DatasetError, match=r"arrow format.*wsrl-mjx\[arrow\]"):
        R.load_any(paths["maze"])


def test_malformed_episode_is_skipped_and_counted(datasets, tmp_path):
    paths, _ = datasets
    import shutil

    copy = tmp_path / "hopper"
    shutil.copytree(paths["hopper"], copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "a") as f:
        obs = f["episode_1/observations"][()]
        del f["episode_1/observations"]
        f["episode_1/observations"] = obs[:-1]  # T observations (Minari issue 199)
    full = R.load_any(paths["hopper"])
    arrays, meta = R.load_any(copy)
    assert meta["skipped_episodes"]["count"] == 1 and meta["episodes"] == 2
    assert "episode_1: needs T+1 observations" in meta["skipped_episodes"]["reasons"][0]
    assert len(arrays["rewards"]) == full.size - (len(obs) - 1)


def test_dataset_id_resolution_and_missing_id(datasets):
    _, mp = datasets
    data = R.load_any("test/halfcheetah/random")  # no version: the newest local one
    assert data.metadata["dataset_id"] == "test/halfcheetah/random-v0"
    with pytest.raises(D.DatasetError, match="looked for a path, then for the id under"):
        R.load_any("test/halfcheetah/expert-v0")
    assert os.environ["MINARI_DATASETS_PATH"] in str(minari_io.datasets_root())


def test_env_from_env_spec_and_mismatches_named(datasets):
    paths, _ = datasets
    cfg = load_config(None, [f"offline.dataset={paths['cheetah']}"])
    assert cfg.env.name == ""
    resolved = resolve_env(cfg)
    assert resolved.env.name == "HalfCheetah-v5"
    meta = R.load_any(paths["cheetah"]).metadata
    twin = type("Twin", (), {"name": "HalfCheetah-v5", "config": {"ctrl_cost_weight": 0.1}})
    minari_io.check_recorded_env(twin, meta, {}, "d")  # same env, default kwargs: accepted
    other = type("Other", (), {"name": "Hopper-v5", "config": {}})
    with pytest.raises(D.DatasetError, match="recorded in env 'HalfCheetah-v5'.*'Hopper-v5'"):
        minari_io.check_recorded_env(other, meta, {}, "d")
    spec = {**meta["env_spec"], "kwargs": {"ctrl_cost_weight": 0.2, "continuing_task": False}}
    with pytest.raises(D.DatasetError, match="ctrl_cost_weight=0.2 but the env has .*0.1"):
        minari_io.check_recorded_env(twin, {**meta, "env_spec": spec}, {}, "d")
    with pytest.raises(
        D.DatasetError,
        match="17 features but the env expects observation_size=11",
    ):
        R.load_any(paths["cheetah"], observation_size=11)


def test_metadata_json_is_kept(datasets):
    paths, _ = datasets
    meta = R.load_any(paths["cheetah"]).metadata
    on_disk = json.loads((paths["cheetah"] / "data" / "metadata.json").read_text())
    assert meta["minari"]["minari_version"] == on_disk["minari_version"]
    assert meta["minari"]["env_spec"] == json.loads(on_disk["env_spec"])


def _damaged_copies(src, tmp_path):
    """Copies of a Minari dataset, each with one HDF5 structure block (a local heap or a symbol
    table node: what locates an episode's arrays) overwritten: (block, copy)."""
    import re
    import shutil

    raw = (src / "data" / "main_data.hdf5").read_bytes()
    for i, match in enumerate(re.finditer(rb"HEAP|SNOD", raw)):
        copy = tmp_path / f"damaged{i}"
        shutil.copytree(src, copy)
        damaged = bytearray(raw)
        damaged[match.start() : match.start() + 16] = b"\xff" * 16
        (copy / "data" / "main_data.hdf5").write_bytes(bytes(damaged))
        yield f"{match.group().decode()} at byte {match.start()}", copy


def test_a_damaged_hdf5_block_skips_its_episode_or_names_the_file(datasets, tmp_path, capsys):
    """h5py raises KeyError, RuntimeError, OSError... for damaged blocks: an episode that cannot
    be read is skipped, counted and warned about; a file whose episode list cannot be read is a
    DatasetError (exit 2), never a traceback."""
    paths, _ = datasets
    outcomes = {}
    for block, copy in _damaged_copies(paths["hopper"], tmp_path):
        try:
            meta = R.load_any(copy).metadata
        except D.DatasetError as e:
            assert str(copy) in str(e)
            outcomes[block] = "refused: " + str(e)
            continue
        skipped = meta["skipped_episodes"]
        outcomes[block] = f"{skipped['count']} skipped"
        if skipped["count"]:
            assert "unreadable" in skipped["reasons"][0]
            assert f"skipped {skipped['count']} of 3 episodes" in capsys.readouterr().err
    assert any(o == "1 skipped" for o in outcomes.values()), outcomes
    assert any("damaged HDF5, its episode list cannot be read" in o for o in outcomes.values())


def test_antmaze_observations_keep_the_ants_x_y_first(datasets):
    """Gymnasium-Robotics' AntMaze `observation` lacks the ant's x, y (they are `achieved_goal`):
    the flattened row is D4RL's antmaze layout [x, y, the other 27 ant features, goal x, y]."""
    paths, _ = datasets
    arrays, meta = R.load_any(paths["ant"])
    assert meta["observation_keys"] == ["achieved_goal", "observation", "desired_goal"]
    assert arrays["observations"].shape[1] == 2 + 27 + 2
    with h5py.File(paths["ant"] / "data" / "main_data.hdf5") as f:
        ep = f["episode_0/observations"]
        first = np.concatenate([ep[k][0] for k in ("achieved_goal", "observation", "desired_goal")])
        assert not np.allclose(ep["achieved_goal"][:], ep["observation"][:, :2])  # not redundant
    np.testing.assert_allclose(arrays["observations"][0], first.astype(np.float32))
    maze = R.load_any(paths["maze"]).metadata  # PointMaze: x, y are inside `observation`
    assert maze["observation_keys"] == ["observation", "desired_goal"]


def test_episode_length_is_the_eval_spec_s_else_the_env_s_own_never_the_recording_s(
    datasets, tmp_path, capsys
):
    """The recording ran 30-step episodes (max_episode_steps=30): evaluation and fine-tuning use
    the dataset's eval_env_spec limit when it has one, else the env's own 1000, and say so."""
    import shutil

    paths, _ = datasets
    cfg = load_config(None, [f"offline.dataset={paths['cheetah']}"])
    assert resolve_env(cfg).env.episode_length is None  # the env's own limit
    out = capsys.readouterr().out
    assert "episode length: the env's own limit (the data was recorded with " in out
    assert "max_episode_steps=30)" in out
    from wsrl_mjx.core.environment import make_env

    assert make_env(resolve_env(cfg).env).episode_length == 1000
    copy = tmp_path / "with-eval-spec"
    shutil.copytree(paths["cheetah"], copy)
    meta_file = copy / "data" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    spec = json.loads(meta["env_spec"])
    meta["eval_env_spec"] = json.dumps({**spec, "max_episode_steps": 500})
    meta_file.write_text(json.dumps(meta))
    cfg = load_config(None, [f"offline.dataset={copy}"])
    assert resolve_env(cfg).env.episode_length == 500
    assert "episode length: 500, the dataset's eval_env_spec" in capsys.readouterr().out
    given = load_config(None, [f"offline.dataset={copy}", "env.episode_length=200"])
    assert resolve_env(given).env.episode_length == 200


@pytest.mark.parametrize("override", ["ctrl_cost_weight=0.5", "forward_reward_weight=2.0"])
def test_an_override_that_changes_the_reward_is_refused_by_name(datasets, tmp_path, override):
    """The cheetah data was recorded with default kwargs: an override that changes the reward
    would make the offline rewards disagree with the env's. A default value is accepted."""
    paths, _ = datasets
    key, value = override.split("=")
    argv = ["pretrain", "--set", f"offline.dataset={paths['cheetah']}"]
    argv += ["--set", f"env.overrides={{{key}: {value}}}", "--set", f"run.run_dir={tmp_path}/r"]
    from wsrl_mjx.run import main

    assert main(argv) == 2
    from wsrl_mjx.core.environment import make_env

    env = make_env(resolve_env(load_config(None, [f"offline.dataset={paths['cheetah']}"])).env)
    meta = R.load_any(paths["cheetah"]).metadata
    with pytest.raises(D.DatasetError, match=f"recorded with the env's default {key}="):
        minari_io.check_recorded_env(env, meta, {key: float(value)}, "d")
    minari_io.check_recorded_env(env, meta, {key: env.config[key]}, "d")  # the default: fine


def test_datasets_of_envs_without_a_twin_and_stray_paths_are_named(datasets, tmp_path, capsys):
    import shutil

    paths, _ = datasets
    from wsrl_mjx.run import main

    # The ant data relabelled as recorded in AntMaze_UMaze-v5, which has no twin (v4 has).
    copy = tmp_path / "v5"
    shutil.copytree(paths["ant"], copy)
    meta_file = copy / "data" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["env_spec"] = json.dumps({**json.loads(meta["env_spec"]), "id": "AntMaze_UMaze-v5"})
    meta_file.write_text(json.dumps(meta))
    argv = ["pretrain", "--set", f"offline.dataset={copy}", "--set", f"run.run_dir={tmp_path}/r"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "recorded in 'AntMaze_UMaze-v5', which has no MJX twin here" in err
    assert "AntMaze_*" in err and "PointMaze_*" in err and "Did you mean" not in err
    episode = next((paths["maze"] / "data").glob("0/*.arrow"))
    with pytest.raises(D.DatasetError, match="one file of a Minari arrow dataset"):
        R.load_any(episode)
    with pytest.raises(D.DatasetError, match="a namespace folder holds datasets: give one of"):
        R.load_any(paths["ant"].parent)  # test/antmaze: the namespace, not a dataset
    import envs

    with pytest.raises(ValueError, match="unknown env 'AntMaze_UMaze-v5'") as error:
        envs.make("AntMaze_UMaze-v5")
    assert "Did you mean 'AntMaze_UMaze-v4'?" in str(error.value)


def test_antmaze_dataset_resolves_to_its_twin(datasets):
    """A dataset recorded in native AntMaze_UMaze-v4 resolves to the twin of that id, with the
    recording's kwargs as overrides, and its rows have the twin's observation size."""
    paths, _ = datasets
    from wsrl_mjx.core.environment import make_env

    cfg = resolve_env(load_config(None, [f"offline.dataset={paths['ant']}"]))
    assert cfg.env.name == "AntMaze_UMaze-v4"
    env = make_env(cfg.env)
    arrays, meta = R.load_any(paths["ant"])
    assert arrays["observations"].shape[1] == env.observation_size == 31
    minari_io.check_recorded_env(env, meta, cfg.env.overrides, "ant data")  # no mismatch


# --- end to end: native-recorded antmaze data, pre-trained on and fine-tuned in the twin ----------

ANT_EPISODE_LENGTH = 10  # evaluation and fine-tuning episodes (the env's own: 700)
ANT_TINY = [
    "agent.actor_hidden=[16,16]",
    "agent.critic_hidden=[16,16]",
    "agent.num_critics=2",
    "agent.batch_size=16",
    "agent.critic_minibatches=1",
    f"env.episode_length={ANT_EPISODE_LENGTH}",
    "eval.num_episodes=2",
    "run.progress=false",
    "run.tensorboard=false",
]
ANT_PRETRAIN = [
    "offline.steps=20",
    "offline.chunk_length=10",
    "offline.eval_every_steps=20",
    "offline.checkpoint_every_steps=20",
    "offline.cql_num_actions=2",
]
# 2 envs x 5-step chunks: 20 warmup env steps with the pre-trained policy, then 20 with updates.
ANT_FINETUNE = [
    "online.num_envs=2",
    "online.chunk_length=5",
    "online.warmup_steps=20",
    "online.total_env_steps=40",
    "online.update_rounds=1",
    "online.buffer_capacity=1000",
    "eval.every_env_steps=40",
]


def _cli(command: list[str], *sets: str) -> int:
    from wsrl_mjx.run import main

    argv = list(command)
    for s in [*ANT_TINY, *sets]:
        argv += ["--set", s]
    return main(argv)


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _all_finite(rows: list[dict]) -> bool:
    values = [v for r in rows for v in r.values() if isinstance(v, int | float)]
    return bool(values) and bool(np.isfinite(values).all())


def test_antmaze_dataset_pretrain_then_wsrl_finetune_in_the_twin(datasets, tmp_path, capsys):
    """`pretrain` on the DataCollector's AntMaze_UMaze-v4 data (env from its env_spec: the
    twin), then `finetune --method wsrl` from that checkpoint (env from the checkpoint), both
    through the command line at the smallest sizes."""
    from wsrl_mjx.core.environment import make_env
    from wsrl_mjx.runtime.checkpoint import Checkpointer

    paths, _ = datasets
    ant = paths["ant"]
    unset = resolve_env(load_config(None, [f"offline.dataset={ant}"])).env
    assert make_env(unset).episode_length == 700  # the rule: the env's own, not the data's 30
    capsys.readouterr()

    pre, fine = tmp_path / "pretrain", tmp_path / "finetune"
    assert _cli(["pretrain"], f"offline.dataset={ant}", *ANT_PRETRAIN, f"run.run_dir={pre}") == 0
    out = capsys.readouterr().out
    assert "[env] AntMaze_UMaze-v4 from the dataset's env_spec" in out
    assert f"episode length: {ANT_EPISODE_LENGTH}, env.episode_length (the data was recorded" in out
    ckpt = Checkpointer(pre / "checkpoints")
    meta, step = ckpt.meta(), ckpt.latest_step()
    ckpt.close()
    assert step == 20 and meta["algorithm"] == "calql"
    sizes = (meta["observation_size"], meta["action_size"])
    assert meta["env"] == "AntMaze_UMaze-v4" and sizes == (31, 8)
    assert meta["dataset"]["size"] == 2 * EPISODE_STEPS  # every recorded transition
    offline = _metrics(pre)
    assert [r["eval_length"] for r in offline if r["phase"] == "eval"] == [ANT_EPISODE_LENGTH]
    assert _all_finite([r for r in offline if r["phase"] == "pretrain"])

    assert (
        _cli(
            ["finetune", "--checkpoint", str(pre), "--method", "wsrl"],
            *ANT_FINETUNE,
            f"run.run_dir={fine}",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "[finetune-wsrl] AntMaze_UMaze-v4: 2 envs, warmup 20 steps, 40 env steps" in out
    assert re.search(r"done: 40 env steps; eval return -?[0-9.]+ \(start\) -> -?[0-9.]+", out)
    online = _metrics(fine)
    warmup = [r for r in online if r["phase"] == "warmup"]
    updates = [r for r in online if r["phase"] == "finetune-wsrl"]
    evals = [r for r in online if r["phase"] == "eval"]
    assert warmup and all(r["updates"] == 0 for r in warmup)  # WSRL: warmup without updates
    assert updates and updates[-1]["updates"] > 0 and max(r["env_steps"] for r in online) == 40
    assert _all_finite(updates) and _all_finite(evals)
    assert {r["eval_length"] for r in evals} == {ANT_EPISODE_LENGTH}
    assert {r["label"] for r in evals} >= {"initial", "after_warmup", "finetune-wsrl"}
    ckpt = Checkpointer(fine / "checkpoints")
    assert ckpt.meta()["env"] == "AntMaze_UMaze-v4" and ckpt.latest_step() == 40
    ckpt.close()


def test_the_eval_env_spec_drives_the_evaluation_twin(datasets, tmp_path, monkeypatch):
    """A dataset recorded in one maze and evaluated in another (as Minari's antmaze datasets
    are, Minari issue #304): the training twin is the recording's, the evaluation twin the
    eval_env_spec's, maze map included; a fine-tuning inherits that from its checkpoint."""
    from wsrl_mjx.core.environment import make_env, make_eval_env

    _, mp = datasets
    goal_right = [[1, 1, 1, 1, 1], [1, 0, 0, "g", 1], [1, 1, 1, 0, 1], [1, "r", 0, 0, 1], [1] * 5]
    goal_left = [[1, 1, 1, 1, 1], [1, "g", 0, 0, 1], [1, 1, 1, 0, 1], [1, "r", 0, 0, 1], [1] * 5]
    recording = gym.make("PointMaze_UMaze-v3", maze_map=goal_right, max_episode_steps=40)
    evaluation = gym.make("PointMaze_UMaze-v3", maze_map=goal_left, max_episode_steps=300)
    collector = minari.DataCollector(recording, record_infos=False)
    for i in range(2):
        obs, _ = collector.reset(seed=i)
        for _ in range(40):
            obs, _, terminated, truncated, _ = collector.step(_to_goal(obs))
            if terminated or truncated:
                break
    collector.create_dataset(dataset_id="test/pointmaze/two-maps-v0", eval_env=evaluation)
    path = minari_io.datasets_root() / "test/pointmaze/two-maps-v0"
    cfg = resolve_env(load_config(None, [f"offline.dataset={path}"]))
    assert cfg.env.overrides["maze_map"] == goal_right
    assert cfg.eval.overrides == {"maze_map": goal_left}
    assert cfg.env.episode_length == 300  # the eval_env_spec's limit
    env = make_env(cfg.env)
    eval_env = make_eval_env(cfg, env)
    assert env.config["maze_map"] == goal_right and eval_env.config["maze_map"] == goal_left
    assert make_eval_env(resolve_env(load_config(None, ["env.name=PointMass"])), env) is env


def test_a_dataset_made_here_round_trips_through_minari(tmp_path, monkeypatch, capsys):
    """`export` writes an .npz dataset as a Minari dataset: minari.load_dataset reads it,
    recover_environment makes the native env, and the project's reader loads back the same
    arrays (an episode cut by the dataset's end is stored truncated, as Minari expects)."""
    from wsrl_mjx.run import main

    rng = np.random.default_rng(0)
    n, length = 70, 25  # two 25-step episodes ended by the time limit, one cut after 20
    obs = rng.standard_normal((n + 3, 17)).astype(np.float32)
    starts = np.arange(n) % length == 0
    nxt = obs[1 : n + 1].copy()
    arrays = {
        "observations": obs[:n],
        "next_observations": nxt,
        "actions": rng.uniform(-1, 1, (n, 6)).astype(np.float32),
        "rewards": rng.random(n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.roll(starts, -1) & (np.arange(n) < n - 1),
    }
    assert starts.sum() == 3
    npz = D.save_dataset(tmp_path / "HalfCheetah-v5-medium", arrays, {"env": "HalfCheetah-v5"})
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset_id = "wsrl-mjx/halfcheetah/medium-v0"
    assert main(["export", str(npz), "--id", dataset_id]) == 0
    assert f"wrote Minari dataset {dataset_id}" in capsys.readouterr().out
    dataset = minari.load_dataset(dataset_id)
    assert (dataset.total_episodes, dataset.total_steps) == (3, n)
    native = dataset.recover_environment()
    assert native.spec.id == "HalfCheetah-v5" and native.observation_space.shape == (17,)
    native.close()
    back = R.load_any(tmp_path / "minari" / dataset_id)
    for key in ("observations", "next_observations", "actions", "rewards", "terminals"):
        np.testing.assert_array_equal(back.arrays[key], arrays[key], err_msg=key)
    expected = arrays["timeouts"].copy()
    expected[-1] = True  # the cut last episode
    np.testing.assert_array_equal(back.arrays["timeouts"], expected)
    assert main(["export", str(npz), "--id", dataset_id]) == 2  # the id exists: not overwritten
    assert "already exists" in capsys.readouterr().err
