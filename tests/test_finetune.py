"""collect -> pretrain -> finetune: datasets, the Orbax bridge, WSRL's data rule, baselines.

One tiny pipeline run (module fixture) feeds most tests, so MJX compiles a handful of times.
"""

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.common import TINY as COMMON_TINY
from tests.common import leaves_equal
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.config import CollectConfig, Config, ConfigError
from wsrl_mjx.core.loops import Aux, guided_actions, mixed_sampler, replay_sampler
from wsrl_mjx.core.replay import example_transition, make_replay
from wsrl_mjx.datasets import data
from wsrl_mjx.datasets.scores import normalized_score
from wsrl_mjx.methods import make_agent, offline_rows
from wsrl_mjx.phases.bridge import restore_pretrained
from wsrl_mjx.phases.collect import medium_return, pick_medium, trained_snapshots
from wsrl_mjx.phases.finetune import plan_finetune, run_finetune
from wsrl_mjx.phases.pipeline import run_pipeline
from wsrl_mjx.phases.setup import setup_finetune
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.policy import load_config
from wsrl_mjx.types import OfflineTransition

TINY = [
    *COMMON_TINY,
    "agent.critic_minibatches=1",
    "offline.steps=100",
    "offline.chunk_length=50",
    "offline.eval_every_steps=100",
    "offline.holdout_fraction=0.1",
    "collect.kinds=[random,medium,medium-replay]",
    "collect.size=160",
    "collect.num_envs=4",
    "run.checkpoint_every_env_steps=1000",
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    cfg = load_config(None, [*TINY, f"run.run_dir={root}"])
    return cfg, run_pipeline(cfg)


def cfg_root(cfg) -> Path:
    return Path(cfg.run.run_dir)


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_pipeline_summary_and_files(pipeline):
    cfg, result = pipeline
    on_disk = json.loads((cfg_root(cfg) / "summary.json").read_text())
    assert on_disk["env"] == "PointMass"
    for key in ("offline_score", "after_warmup_score", "final_score"):
        assert np.isfinite(on_disk[key]), key
    assert set(on_disk["seconds"]) >= {"collect_s", "pretrain_s", "finetune_s"}
    assert result["finetune_env_steps"] == 200
    assert on_disk["episode_length"] == 20  # the run's env.episode_length
    assert on_disk["final_score_normalized"] is None  # PointMass has no reference returns
    for phase in ("behaviour", "pretrain", "finetune"):
        assert (cfg_root(cfg) / phase / "config.yaml").is_file(), phase


def test_pipeline_resume_keeps_finished_phases(pipeline, capsys):
    cfg, result = pipeline
    again = run_pipeline(cfg, resume=True)  # every phase finished: nothing runs again
    for key in ("offline_score", "after_warmup_score", "final_score", "finetune_env_steps"):
        assert again[key] == result[key], key
    out = capsys.readouterr().out
    assert "collect: finished before" in out and "pretrain: finished before" in out
    # Resumed at its end: no new evaluation; the summary reports the ones the run made.
    assert again["phases"]["finetune"]["evals"] == result["phases"]["finetune"]["evals"]
    logged = [r for r in read_metrics(Path(cfg.run.run_dir) / "finetune") if r["phase"] == "eval"]
    assert len(logged) == len(result["phases"]["finetune"]["evals"])
    with pytest.raises(CheckpointError, match="pass --resume"):  # nothing is overwritten
        run_pipeline(cfg)


def test_a_killed_collect_resumes_to_the_same_datasets(pipeline, tmp_path, monkeypatch):
    """Killed after its first checkpoint, `collect --resume` continues the behaviour run with the
    actor snapshots it had saved and writes the datasets an uninterrupted run wrote."""
    from wsrl_mjx.phases.collect import run_collect
    from wsrl_mjx.phases.online import SNAPSHOTS

    cfg, result = pipeline
    extra = [f"run.run_dir={tmp_path / 'behaviour'}", f"collect.out_dir={tmp_path / 'data'}"]
    killed_cfg = load_config(None, [*TINY, "run.checkpoint_every_env_steps=80", *extra])
    original_save = Checkpointer.save

    def save_then_die(self, step, state, meta):
        original_save(self, step, state, meta)
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_collect(killed_cfg)
    monkeypatch.setattr(Checkpointer, "save", original_save)
    assert not (tmp_path / "data").exists()
    with pytest.raises(CheckpointError, match="pass --resume"):
        run_collect(killed_cfg)
    written = run_collect(killed_cfg, resume=True)

    def snapshots(run_dir):
        return sorted(p.name for p in (run_dir / SNAPSHOTS).glob("*.npz"))

    # One per evaluation, none lost or repeated by the kill, as the uninterrupted run's.
    assert snapshots(tmp_path / "behaviour") == snapshots(cfg_root(cfg) / "behaviour")
    evals = [r for r in read_metrics(tmp_path / "behaviour") if r["phase"] == "eval"]
    assert len(snapshots(tmp_path / "behaviour")) == len(evals) >= 3
    for kind, info in result["phases"]["collect"]["all"].items():
        resumed = data.load_dataset(
            written[kind]["path"], observation_size=4, action_size=2, env="PointMass"
        )
        uninterrupted = data.load_dataset(
            info["path"], observation_size=4, action_size=2, env="PointMass"
        )
        assert written[kind]["behaviour_return"] == info["behaviour_return"], kind
        for key, value in uninterrupted.arrays.items():
            np.testing.assert_array_equal(resumed.arrays[key], value, err_msg=f"{kind} {key}")


def test_collected_datasets_have_the_requested_shapes(pipeline):
    cfg, result = pipeline
    written = result["phases"]["collect"]["all"]
    assert set(written) == {"random", "medium", "medium-replay"}
    for kind, info in written.items():
        loaded = data.load_dataset(info["path"], observation_size=4, action_size=2, env="PointMass")
        expected = 160 if kind != "medium-replay" else info["snapshot_env_steps"]
        assert loaded.size == expected, kind
        assert loaded.arrays["observations"].shape == (expected, 4)
        assert loaded.arrays["actions"].shape == (expected, 2)
        assert np.abs(loaded.arrays["actions"]).max() <= 1.0
        assert loaded.metadata["method"] == kind and "behaviour_return" in loaded.metadata
        # 4 per-env streams of 20-step episodes: a timeout every 20 rows and at each stream's
        # end; PointMass never terminates.
        per_env = expected // 4
        assert loaded.arrays["timeouts"].sum() == 4 * -(-per_env // 20)
        assert loaded.arrays["timeouts"].reshape(4, per_env)[:, -1].all()
        assert not loaded.arrays["terminals"].any()
        # Consecutive rows of one episode chain: next_obs[t] == obs[t + 1] inside episodes.
        inside = ~loaded.arrays["timeouts"][:-1]
        np.testing.assert_array_equal(
            loaded.arrays["next_observations"][:-1][inside],
            loaded.arrays["observations"][1:][inside],
        )


def test_pretrain_checkpoint_round_trips_bit_exactly(pipeline):
    cfg, result = pipeline
    pre = result["phases"]["pretrain"]
    agent = make_agent("calql", cfg.agent, cfg.offline, 4, 2)
    ckpt = Checkpointer(pre["checkpoint"])
    restored, meta = ckpt.restore(jax.eval_shape(agent.init, jax.random.PRNGKey(0)))
    # Actor, critics, targets, temperature, every optimizer state and the step counter.
    assert leaves_equal(restored, pre["state"])
    assert int(restored.step) == 100
    assert meta["algorithm"] == "calql" and meta["env"] == "PointMass"
    assert len(meta["dataset"]["fingerprint"]) == 16


def test_restored_agent_acts_exactly_like_the_pretrained_one(pipeline):
    cfg, result = pipeline
    pre_state = result["phases"]["pretrain"]["state"]
    online = make_sac(cfg.agent, 4, 2)
    restored, _ = restore_pretrained(result["phases"]["pretrain"]["run_dir"], online, "PointMass")
    obs = jax.random.normal(jax.random.PRNGKey(3), (8, 4))
    mean_a, log_std_a = online.networks.actor.apply(restored.actor.params, obs)
    mean_b, log_std_b = online.networks.actor.apply(pre_state.actor.params, obs)
    np.testing.assert_array_equal(mean_a, mean_b)
    np.testing.assert_array_equal(log_std_a, log_std_b)
    assert leaves_equal(restored.critic, pre_state.critic)  # nothing is reset
    assert leaves_equal(restored.temperature, pre_state.temperature)


def test_mismatched_checkpoint_is_refused_by_name(pipeline):
    cfg, result = pipeline
    run_dir = result["phases"]["pretrain"]["run_dir"]
    with pytest.raises(CheckpointError, match="env='PointMass'.*'ReacherEasy'"):
        restore_pretrained(run_dir, make_sac(cfg.agent, 4, 2), "ReacherEasy")
    wider = dataclasses.replace(cfg.agent, critic_hidden=(32, 16))
    with pytest.raises(CheckpointError, match="critic"):
        restore_pretrained(run_dir, make_sac(wider, 4, 2), "PointMass")
    with pytest.raises(CheckpointError, match="not a pre-training checkpoint"):
        restore_pretrained(cfg_root(cfg) / "finetune", make_sac(cfg.agent, 4, 2), "PointMass")
    with pytest.raises(CheckpointError, match="not found"):
        restore_pretrained(cfg_root(cfg) / "nope", make_sac(cfg.agent, 4, 2), "PointMass")


def test_wsrl_finetune_logs_warmup_and_offline_diagnostics(pipeline):
    cfg, _ = pipeline
    records = read_metrics(cfg_root(cfg) / "finetune")
    phases = {r["phase"] for r in records}
    assert {"warmup", "finetune-wsrl", "eval"} <= phases
    warmup = [r for r in records if r["phase"] == "warmup"]
    assert all(r["updates"] == 0 for r in warmup)  # the warmup makes no gradient update
    online = [r for r in records if r["phase"] == "finetune-wsrl"]
    for key in ("q_pred", "q_target", "td_loss", "offline_q", "offline_td"):
        assert all(np.isfinite(r[key]) for r in online), key
    labels = [r["label"] for r in records if r["phase"] == "eval"]
    assert labels[:2] == ["initial", "after_warmup"]


def test_wsrl_plan_never_touches_offline_data(pipeline):
    cfg, result = pipeline
    ft_cfg = load_config(
        None,
        [*TINY, f"finetune.checkpoint={result['phases']['pretrain']['run_dir']}"],
    )
    plan = plan_finetune(setup_finetune([ft_cfg]))[0]
    assert plan.offline_per_minibatch == 0
    assert plan.offline is None
    assert plan.holdout is not None  # diagnostics only
    assert leaves_equal(plan.initial_agent.actor, result["phases"]["pretrain"]["state"].actor)


def test_setup_reads_retained_data_once_for_every_seed(pipeline, monkeypatch):
    """RLPD's seeds share one load of the retained data (the plans hold the same arrays), and
    seeds naming different datasets are refused before anything is loaded."""
    from wsrl_mjx.phases import setup

    _, result = pipeline
    written = result["phases"]["collect"]["all"]
    seeds = [
        load_config(None, [*TINY, "finetune.method=rlpd", f"finetune.dataset={path}"])
        for path in (written["medium"]["path"], written["medium"]["path"])
    ]
    loads = []
    original = setup.load_offline_data
    monkeypatch.setattr(setup, "load_offline_data", lambda *a: loads.append(a) or original(*a))
    plans = plan_finetune(setup_finetune(seeds))
    assert len(loads) == 1
    assert plans[0].offline is plans[1].offline and plans[0].offline_per_minibatch > 0
    other = load_config(
        None, [*TINY, "finetune.method=rlpd", f"finetune.dataset={written['random']['path']}"]
    )
    with pytest.raises(ConfigError, match="different datasets"):
        setup_finetune([seeds[0], other])
    assert len(loads) == 1


def test_finetune_refuses_another_reward_transform_or_discount(pipeline):
    _, result = pipeline
    checkpoint = f"finetune.checkpoint={result['phases']['pretrain']['run_dir']}"
    for change in ("env.reward_scale=10", "agent.discount=0.9"):
        ft_cfg = load_config(None, [*TINY, checkpoint, change])
        with pytest.raises(ConfigError, match=change.split("=")[0] + ".*pre-trained with"):
            plan_finetune(setup_finetune([ft_cfg]))[0]


def test_finetune_inherits_the_pretrainings_network_and_refuses_a_conflict(
    pipeline, tmp_path, capsys, monkeypatch
):
    """`finetune --checkpoint DIR` without the pre-training's agent settings used to exit 2
    listing 30 shape mismatches; now the network and value settings it is not given come from
    the pre-training (said on stderr) and restore; a conflicting one is refused by name."""
    from wsrl_mjx.phases import finetune
    from wsrl_mjx.run import main
    from wsrl_mjx.runtime.preflight import INHERITED_KEYS

    _, result = pipeline
    pre = result["phases"]["pretrain"]["run_dir"]
    given = [s for s in TINY if s.split("=")[0] not in INHERITED_KEYS]
    assert len(given) < len(TINY)  # the network settings are left out
    argv = ["finetune", "--checkpoint", pre, "--set", f"run.run_dir={tmp_path / 'ft'}"]
    argv += [a for s in given for a in ("--set", s)]
    seen = []
    monkeypatch.setattr(finetune, "run_finetune", lambda cfg, resume: seen.append(cfg) or [])
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "inherited from the pre-training" in err
    assert "agent.critic_hidden=[16, 16]" in err and "agent.num_critics=2" in err
    cfg = seen[0]
    assert cfg.agent.critic_hidden == (16, 16) and cfg.agent.actor_hidden == (16, 16)
    plan = plan_finetune(setup_finetune([cfg]))[0]  # the pre-trained agent restores into it
    assert leaves_equal(plan.initial_agent.critic, result["phases"]["pretrain"]["state"].critic)
    assert main([*argv, "--set", "agent.critic_hidden=[32,32]"]) == 2
    err = capsys.readouterr().err
    assert "agent.critic_hidden=[32, 32] (the pre-training has [16, 16])" in err
    assert len(seen) == 1 and not (tmp_path / "ft").exists()  # refused before anything ran


def test_offline_rows_per_method():
    assert offline_rows("wsrl", None, 256) == 0
    assert offline_rows("calql", None, 256) == 0
    assert offline_rows("rlpd", None, 256) == 128
    assert offline_rows("calql", 0.25, 256) == 64
    with pytest.raises(ConfigError, match="offline_ratio"):
        offline_rows("rlpd", 1.0, 256)
    with pytest.raises(ConfigError, match="no online rows"):
        offline_rows("rlpd", 0.999, 256)


def _marked_buffer_state(buffer, rows: int):
    """A buffer filled with online rows marked reward=+1."""
    example = example_transition(3, 1)
    state = buffer.init(example)
    items = jax.tree.map(lambda x: jnp.zeros((rows, *x.shape)), example)
    return buffer.add(state, items.replace(reward=jnp.ones((rows,))))


def test_samplers_mark_online_and_offline_rows():
    minibatches, batch, offline_per = 2, 8, 3
    offline = OfflineTransition(
        **{f: v for f, v in vars(example_transition(3, 1)).items()},
        mc_return=jnp.zeros(()),
    )
    offline = jax.tree.map(lambda x: jnp.zeros((50, *x.shape)), offline)
    offline = offline.replace(reward=-jnp.ones((50,)), mc_return=jnp.full((50,), 7.0))
    aux = Aux(offline=offline)
    key = jax.random.PRNGKey(0)

    # WSRL: the replay sampler sees the online buffer only.
    buffer = make_replay(100, minibatches * batch)
    state = SimpleNamespace(buffer=_marked_buffer_state(buffer, 40))
    sampled = replay_sampler(buffer)(state, aux, key)
    assert sampled.reward.shape == (minibatches * batch,)
    assert (sampled.reward == 1.0).all()

    # Retention / RLPD: exactly `offline_per` offline rows in every critic minibatch.
    online_buffer = make_replay(100, minibatches * (batch - offline_per))
    state = SimpleNamespace(buffer=_marked_buffer_state(online_buffer, 40))
    mixed = mixed_sampler(online_buffer, minibatches, batch, offline_per)(state, aux, key)
    reward = np.asarray(mixed.reward).reshape(minibatches, batch)
    assert ((reward == -1.0).sum(axis=1) == offline_per).all()
    assert ((reward == 1.0).sum(axis=1) == batch - offline_per).all()
    mc = np.asarray(mixed.mc_return).reshape(minibatches, batch)
    assert (mc[reward == -1.0] == 7.0).all() and np.isneginf(mc[reward == 1.0]).all()


def pinned_actor(params, mean_bias: float):
    """A near-deterministic actor (log_std at its floor) whose actions sit at sign(mean_bias)."""
    heads = dict(params["params"])
    heads["Dense_0"] = {**heads["Dense_0"], "bias": heads["Dense_0"]["bias"] + mean_bias}
    heads["Dense_1"] = {**heads["Dense_1"], "bias": heads["Dense_1"]["bias"] - 100.0}
    return {"params": heads}


def test_jsrl_guide_acts_for_the_drawn_horizon_then_the_learner():
    agent = make_sac(load_config(None, TINY).agent, 3, 1)
    learner = agent.init(jax.random.PRNGKey(0))
    learner = learner.replace(
        actor=learner.actor.replace(params=pinned_actor(learner.actor.params, -50.0))
    )
    guide_params = pinned_actor(agent.init(jax.random.PRNGKey(1)).actor.params, 50.0)
    state = SimpleNamespace(
        agent=learner,
        env=SimpleNamespace(obs=jnp.zeros((4, 3)), steps=jnp.array([0, 3, 5, 9])),
        acting=jnp.array([0, 4, 4, 4]),
    )
    act = guided_actions(agent, max_guide_steps=10)
    action, horizon = act(state, Aux(acting=guide_params), jax.random.PRNGKey(2))
    horizon = np.asarray(horizon)
    assert 0 <= horizon[0] <= 10  # env 0 starts an episode: a fresh horizon is drawn
    np.testing.assert_array_equal(horizon[1:], [4, 4, 4])  # the others keep theirs
    guided = np.asarray(state.env.steps) < horizon
    np.testing.assert_array_equal(np.asarray(action)[:, 0] > 0, guided)  # guide +, learner -


@pytest.fixture(scope="module")
def calql_retention(pipeline, tmp_path_factory):
    cfg, result = pipeline
    run_dir = tmp_path_factory.mktemp("calql")
    ft_cfg = load_config(
        None,
        [
            *TINY,
            "finetune.method=calql",
            "finetune.offline_ratio=0.5",
            "online.total_env_steps=120",
            f"finetune.checkpoint={result['phases']['pretrain']['run_dir']}",
            f"run.run_dir={run_dir}",
        ],
    )
    return run_finetune(ft_cfg)


def test_calql_with_retention_runs_its_own_loss_on_mixed_batches(calql_retention):
    summary = calql_retention
    assert summary["env_steps"] == 120
    records = read_metrics(summary["run_dir"])
    online = [r for r in records if r["phase"] == "finetune-calql"]
    assert online and all(np.isfinite(r["cql_diff"]) for r in online)  # CalQL's own loss
    assert all(0.0 <= r["calql_bound_rate"] <= 1.0 for r in online)
    # Official start with the online MC bound: the frozen policy runs one full episode length
    # (20 steps) in each of the 4 envs before the first update, so finished episodes exist.
    warmup = [r for r in records if r["phase"] == "warmup"]
    assert warmup[-1]["env_steps"] == 80 and warmup[-1]["updates"] == 0
    assert warmup[-1]["episodes"] >= 4
    state = summary["state"]
    finished = np.asarray(state.buffer.finished)
    assert finished.sum() >= 80 and np.isfinite(np.asarray(state.buffer.mc_return)[finished]).all()


def test_medium_snapshot_is_nearest_the_target_and_never_the_initial_actor():
    snapshots = [(0, 0.0, "i"), (40, 1.0, "a"), (80, 4.0, "b"), (120, 6.0, "c"), (160, 10.0, "end")]
    cfg = Config(collect=CollectConfig(medium_fraction=0.4))
    assert medium_return(cfg, "PointMass", snapshots) == pytest.approx(4.0)  # 0.4 x final
    assert pick_medium(snapshots, 4.0)[2] == "b"
    assert pick_medium(snapshots, 0.0)[2] == "a"  # not the random-init actor at step 0
    assert pick_medium(snapshots[:1] + snapshots[-1:], 4.0)[2] == "end"


def test_an_early_stopped_medium_is_picked_before_the_run_first_holds_the_target():
    """With medium_window=2, snapshots after the first two evaluations averaging >= the target
    are out, however near the target a later dip is; the final one is never medium."""
    snapshots = [(0, 0.0, "i"), (10, 50.0, "a"), (20, 120.0, "b"), (30, 70.0, "c")]
    snapshots += [(40, 140.0, "d"), (50, 160.0, "e"), (60, 100.0, "dip"), (70, 300.0, "end")]
    # (70 + 140) / 2 = 105 >= 100 first at the 4th evaluation: a..d remain.
    assert [s[2] for s in trained_snapshots(snapshots, 100.0, 2)] == ["a", "b", "c", "d"]
    assert pick_medium(snapshots, 100.0, window=2)[2] == "b"
    assert pick_medium(snapshots, 100.0)[2] == "dip"  # no window: the late dip
    assert [s[2] for s in trained_snapshots(snapshots, 1e9, 2)] == [s[2] for s in snapshots[1:-1]]


def test_medium_target_reference_is_a_share_of_the_normalized_range():
    cfg = Config(collect=CollectConfig(medium_fraction=1 / 3, medium_target="reference"))
    # D4RL Hopper: random -20.272305, expert 3234.3 -> one third of the way.
    assert medium_return(cfg, "Hopper-v5", []) == pytest.approx(-20.272305 + 3254.572305 / 3)
    assert normalized_score("Hopper-v5", medium_return(cfg, "Hopper-v5", [])) == pytest.approx(
        100 / 3
    )
    with pytest.raises(ConfigError, match="no reference returns"):
        medium_return(cfg, "PointMass", [])


def test_medium_target_d4rl_is_d4rls_own_medium_level_per_task():
    cfg = Config(collect=CollectConfig(medium_target="d4rl"))
    for env_name, level in [("Hopper-v5", 44.3), ("Walker2d-v5", 62.1), ("HalfCheetah-v5", 40.7)]:
        assert normalized_score(env_name, medium_return(cfg, env_name, [])) == pytest.approx(level)
    # Hopper: the D4RL level is a hopper (1,422), above standing still (1,000) by 13 points.
    assert medium_return(cfg, "Hopper-v5", []) == pytest.approx(1421.5, abs=0.1)
    with pytest.raises(ConfigError, match="D4RL has no medium dataset for 'Ant-v5'"):
        medium_return(cfg, "Ant-v5", [])
    with pytest.raises(ConfigError, match="no reference returns"):
        medium_return(cfg, "PointMass", [])


def test_expert_is_the_late_candidate_whose_rollout_returns_most(monkeypatch):
    """An early spike is never an expert candidate; of the final policy and the best evaluated
    snapshots of the second half, the best rollout wins; a rollout without an ended episode
    (NaN) never does; expert_candidates=1 is the final policy."""
    from wsrl_mjx.phases import collect

    rollouts = {"early": 900.0, "a": 250.0, "b": 310.0, "c": 200.0, "d": math.nan, "final": 280.0}
    monkeypatch.setattr(
        collect, "rollout", lambda cfg, env, params, size, seed: ({}, rollouts[params])
    )
    snapshots = [(0, 0.0, "init"), (10, 500.0, "early"), (60, 300.0, "a"), (70, 290.0, "b")]
    snapshots += [(80, 100.0, "c"), (90, 400.0, "d"), (100, 260.0, "final")]
    assert [s[2] for s in collect.expert_candidates(snapshots, 3)] == ["a", "d", "final"]
    cfg = load_config(None, [*TINY, "collect.expert_candidates=4"])
    picked = collect.pick_expert_by_rollout(cfg, None, snapshots, seed=0)
    assert [c["env_steps"] for c in picked["candidates"]] == [60, 70, 90, 100]
    assert picked["snapshot"][2] == "b" and picked["rollout_return"] == 310.0
    one = collect.pick_expert_by_rollout(load_config(None, TINY), None, snapshots, seed=0)
    assert one["snapshot"][2] == "final" and len(one["candidates"]) == 1


def test_summary_prints_normalized_scores_where_the_env_has_references(capsys):
    from wsrl_mjx.datasets.scores import normalized_score
    from wsrl_mjx.phases.pipeline import print_summary

    summary = {
        "env": "Hopper-v5",
        "behaviour_return": None,
        "offline_score": 1000.0,
        "offline_score_normalized": normalized_score("Hopper-v5", 1000.0),
        "offline_success": None,
        "after_warmup_score": None,
        "final_score": 1100.0,
        "final_score_normalized": normalized_score("Hopper-v5", 1100.0),
        "final_success": None,
        "finetune_env_steps": 200,
        "episode_length": 1000,
        "seconds": {},
        "run_dir": "r",
    }
    print_summary(summary)
    out = capsys.readouterr().out
    assert "1000.00 (normalized 31.3)" in out and "1100.00 (normalized 34.4)" in out
    assert "episode length (evaluation and fine-tuning)  1000" in out


def test_collect_refuses_a_buffer_that_the_rounded_behaviour_run_would_overflow(tmp_path):
    """190 env steps run as whole chunks make 200: a 195-row buffer would overwrite the first
    rows medium-replay is made of."""
    from wsrl_mjx.phases.collect import run_collect

    cfg = load_config(
        None,
        [*TINY, "online.total_env_steps=190", "online.buffer_capacity=195"]
        + [f"run.run_dir={tmp_path / 'run'}", f"collect.out_dir={tmp_path / 'data'}"],
    )
    with pytest.raises(ConfigError, match="buffer_capacity=195 < the 200 env steps"):
        run_collect(cfg)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_medium_is_the_candidate_whose_whole_rollout_is_nearest_the_target(pipeline, tmp_path):
    """With collect.medium_candidates=5 every candidate's rollout is recorded and the nearest
    one is the dataset (the finished behaviour run is only restored: collect.* may change)."""
    from wsrl_mjx.phases.collect import run_collect

    cfg, _ = pipeline
    picked_cfg = load_config(
        None,
        [*TINY, "collect.kinds=[medium,medium-replay]", "collect.medium_candidates=5"]
        + [f"run.run_dir={cfg_root(cfg) / 'behaviour'}", f"collect.out_dir={tmp_path}"],
    )
    written = run_collect(picked_cfg, resume=True)
    candidates = written["medium"]["medium_candidates"]
    # Every trained snapshot but the final one (2 in this run) is a candidate.
    assert [c["env_steps"] for c in candidates] == [40, 120]
    target = written["medium"]["target_return"]
    nearest = min(candidates, key=lambda c: abs(c["rollout_return"] - target))
    assert written["medium"]["snapshot_env_steps"] == nearest["env_steps"]
    assert written["medium-replay"]["snapshot_env_steps"] == nearest["env_steps"]
    assert written["medium"]["rollout_return"] == nearest["rollout_return"]


def test_one_lucky_evaluation_does_not_pick_medium(monkeypatch):
    """The snapshot evaluated nearest the target (a 16-episode spike) loses to one whose whole
    rollout is nearer; only the `medium_candidates` nearest by evaluation are rolled out."""
    from wsrl_mjx.phases import collect

    rollouts = {"spike": 40.0, "steady": 97.0, "low": 60.0, "far": 100.0}
    monkeypatch.setattr(
        collect, "rollout", lambda cfg, env, params, size, seed: ({}, rollouts[params])
    )
    snapshots = [(0, 0.0, "init"), (10, 101.0, "spike"), (20, 90.0, "steady"), (30, 70.0, "low")]
    snapshots += [(40, 20.0, "far"), (50, 300.0, "final")]
    cfg = load_config(None, [*TINY, "collect.medium_candidates=3"])
    picked = collect.pick_medium_by_rollout(cfg, None, snapshots, 100.0, seed=0)
    assert picked["snapshot"][2] == "steady"
    assert [c["env_steps"] for c in picked["candidates"]] == [10, 20, 30]  # "far" not tried
