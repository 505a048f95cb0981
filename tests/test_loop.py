"""The fused online loop: resume after a kill, NaN guard, warmup semantics, replay ratio, and
several seeds vmapped in one program (run.num_seeds)."""

import dataclasses
import json
import os
import re
import shutil
import signal

import jax
import numpy as np
import pytest

import envs
from tests.common import TINY as COMMON_TINY
from tests.common import dir_bytes, leaves_equal
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.config import ConfigError, to_dict
from wsrl_mjx.core.environment import make_env
from wsrl_mjx.core.loops import make_chunk, policy_actions
from wsrl_mjx.core.online_system import init_training_state
from wsrl_mjx.core.replay import buffer_size, make_replay
from wsrl_mjx.core.schedule import Schedule, replay_ratio
from wsrl_mjx.phases import online as online_phase
from wsrl_mjx.phases.online import run_online
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError, TrainingDiverged
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.policy import ONLINE_RESUME_MAY_CHANGE, check_resume_settings, load_config

TINY = [
    *COMMON_TINY,
    "agent.critic_minibatches=2",
    "run.checkpoint_every_env_steps=80",
]


def tiny_config(tmp_path, *extra):
    return load_config(None, [*TINY, f"run.run_dir={tmp_path}", *extra])


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted tiny run, shared by the resume and overwrite tests."""
    root = tmp_path_factory.mktemp("full")
    return root, run_online(tiny_config(root))


def test_killed_run_resumes_to_the_same_state(full_run, tmp_path, monkeypatch):
    _, full = full_run
    assert full["env_steps"] == 200

    # Kill the second run right after its second checkpoint (env step 160 of 200).
    original_save = Checkpointer.save
    saves = []

    def save_then_die(self, step, state, meta):
        path = original_save(self, step, state, meta)
        saves.append(step)
        if len(saves) == 2:
            raise Killed
        return path

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(Killed):
        run_online(tiny_config(tmp_path / "killed"))
    monkeypatch.setattr(Checkpointer, "save", original_save)
    assert saves == [80, 160]

    resumed = run_online(tiny_config(tmp_path / "killed"), resume=True)
    # The log holds each evaluation once: records past the restored step were dropped.
    evals = [r["env_steps"] for r in read_metrics(tmp_path / "killed") if r["phase"] == "eval"]
    assert evals == [e["env_steps"] for e in full["evals"]]
    assert resumed["env_steps"] == full["env_steps"] == 200
    assert int(resumed["state"].updates) == int(full["state"].updates)
    # The summary holds the evaluations from before the kill too.
    assert [e["env_steps"] for e in resumed["evals"]] == [e["env_steps"] for e in full["evals"]]
    assert resumed["final_eval_return"] == full["final_eval_return"]
    # Agent, buffer, envs and rng all live in the checkpoint: resuming is bit-exact.
    assert leaves_equal(resumed["state"].agent, full["state"].agent)
    assert leaves_equal(resumed["state"].buffer, full["state"].buffer)
    # The final checkpoint is readable and holds the final state.
    ckpt = Checkpointer(tmp_path / "killed" / "checkpoints")
    assert ckpt.latest_step() == 200
    restored, meta = ckpt.restore(resumed["state"])
    assert meta["env"] == "PointMass" and meta["env_steps"] == 200
    assert leaves_equal(restored.agent, full["state"].agent)


def test_resuming_a_finished_run_reports_its_final_evaluation(full_run):
    root, full = full_run
    again = run_online(tiny_config(root), resume=True)
    assert again["env_steps"] == 200 and again["final_eval_return"] == full["final_eval_return"]


def test_fresh_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(
    full_run, tmp_path, monkeypatch
):
    """Both refusals come before anything is built or compiled (one took 54 s), and leave the
    run dir byte-identical, its lock record included."""
    root, _ = full_run
    cfg = tiny_config(root)
    before = dir_bytes(root)
    with monkeypatch.context() as m:
        never = lambda *a, **k: pytest.fail("built before the check")  # noqa: E731
        m.setattr(online_phase, "build_online", never)
        with pytest.raises(CheckpointError, match="already holds checkpoints"):
            run_online(cfg)
        with pytest.raises(CheckpointError, match="no checkpoint"):
            run_online(tiny_config(tmp_path / "empty"), resume=True)
        with pytest.raises(ConfigError, match="agent.critic_lr"):
            run_online(tiny_config(root, "agent.critic_lr=0.5"), resume=True)
    assert dir_bytes(root) == before
    with pytest.raises(ConfigError, match="env.name: 'PointMass' then, 'ReacherEasy' now"):
        run_online(
            dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, name="ReacherEasy")),
            resume=True,
        )


def test_nan_stops_the_run_and_saves_no_poisoned_state(tmp_path):
    # NaN rewards enter the buffer at warmup: the state at the first checkpoint is not finite,
    # so it is refused rather than kept as "good". (A NaN reward_scale is refused when a config
    # is read; set past the check, it stands for rewards that turn NaN.)
    cfg = tiny_config(tmp_path, "run.checkpoint_every_env_steps=40")
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, reward_scale=float("nan")))
    with pytest.raises(TrainingDiverged, match=r"non-finite values in the state at step 40 \(buf"):
        run_online(cfg)
    assert Checkpointer(tmp_path / "checkpoints").latest_step() is None


@pytest.fixture(scope="module")
def warmup_setup():
    cfg = load_config(None, TINY)
    env = make_env(cfg.env)
    agent = make_sac(cfg.agent, env.observation_size, env.action_size)
    batch_env = envs.BatchEnv(env, 4)
    buffer = make_replay(1000, 32)
    chunk = make_chunk(
        batch_env, agent, buffer, length=10, update_rounds=0, action_fn=policy_actions(agent)
    )
    return cfg, agent, batch_env, buffer, chunk


def test_warmup_makes_no_update_and_only_the_frozen_policy_acts(warmup_setup):
    cfg, agent, batch_env, buffer, chunk = warmup_setup
    state = init_training_state(cfg, agent, batch_env, buffer)
    # Make the "pre-trained" policy near-deterministic: log_std clipped to log(1e-5).
    params = state.agent.actor.params
    params["params"]["Dense_1"]["bias"] = params["params"]["Dense_1"]["bias"] - 100.0
    state = state.replace(agent=state.agent.replace(actor=state.agent.actor.replace(params=params)))
    before = jax.tree.map(np.asarray, state.agent)
    state, _ = chunk(state, None)
    assert int(state.updates) == 0 and int(state.env_steps) == 40
    assert leaves_equal(state.agent, before)  # no gradient step touched anything
    items = jax.tree.map(lambda x: np.asarray(x)[0, :40], state.buffer.experience)
    assert int(buffer_size(state.buffer)) == 40
    expected = agent.act(state.agent.actor.params, items.obs, None, deterministic=True)
    np.testing.assert_allclose(items.action, expected, atol=1e-4)


def test_schedule_and_replay_ratio():
    cfg = load_config(
        None,
        [
            "online.num_envs=8",
            "online.warmup_steps=100",
            "online.total_env_steps=1000",
            "online.chunk_length=5",
            "online.update_rounds=2",
            "agent.batch_size=64",
            "agent.critic_minibatches=4",
        ],
    )
    s = Schedule.from_config(cfg)
    assert s.warmup_vector_steps == 13 and s.warmup_env_steps == 104
    assert s.total_env_steps >= 1000 and (s.total_env_steps - 104) % (8 * 5) == 0
    ratio = replay_ratio(cfg)
    assert ratio["replay_ratio"] == 2 * 4 * 64 / 8
    assert ratio["utd"] == 1.0


def test_no_warmup_still_collects_one_batch_before_the_first_update(tmp_path):
    """K = 0 with the official start rule: the frozen policy fills one sampled batch's worth of
    online rows (2 x 16 = 32 here) before any update, instead of sampling 32 rows from 4."""
    result = run_online(tiny_config(tmp_path, "online.warmup_steps=0", "online.total_env_steps=72"))
    records = read_metrics(tmp_path)
    warmup = [r for r in records if r["phase"] == "warmup"]
    assert warmup and warmup[-1]["env_steps"] == 32 and warmup[-1]["updates"] == 0
    first_online = next(r for r in records if r["phase"] == "online")
    assert first_online["updates"] > 0 and result["env_steps"] == 72


# --- run.num_seeds: several seeds vmapped in one program ------------------------------------


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return root, run_online(tiny_config(root, "run.num_seeds=2"))


def test_each_seed_is_its_own_run(two_seeds):
    root, summaries = two_seeds
    assert [s["run_dir"] for s in summaries] == [str(root / "seed0"), str(root / "seed1")]
    for seed, summary in enumerate(summaries):
        run_dir = root / f"seed{seed}"
        assert summary["env_steps"] == 200
        assert load_config(run_dir / "config.yaml").run.seed == seed
        evals = [r for r in read_metrics(run_dir) if r["phase"] == "eval"]
        assert [e["label"] for e in evals][:2] == ["initial", "after_warmup"]
        restored, meta = Checkpointer(run_dir / "checkpoints").restore(summary["state"])
        assert meta["config"]["run"]["seed"] == seed and leaves_equal(restored, summary["state"])
    # Different seeds: different initial agents, different data.
    assert not leaves_equal(summaries[0]["state"].agent.actor, summaries[1]["state"].agent.actor)


def test_a_seed_in_the_program_behaves_like_its_own_run(two_seeds, full_run):
    """Seed 0 alone (`full_run`, no vmap) starts from the same init and draws the same random
    numbers: evaluations and losses match the program's seed 0 up to float reassociation."""
    (root, _), (alone_dir, _) = two_seeds, full_run
    in_program, alone = read_metrics(root / "seed0"), read_metrics(alone_dir)
    evals = lambda recs: [r["eval_return"] for r in recs if r["phase"] == "eval"]  # noqa: E731
    np.testing.assert_allclose(evals(in_program)[:2], evals(alone)[:2], rtol=1e-5)
    first = lambda recs: next(r for r in recs if r["phase"] == "online")  # noqa: E731
    for key in ("td_loss", "q_pred", "actor_loss", "train_return"):
        np.testing.assert_allclose(first(in_program)[key], first(alone)[key], rtol=1e-3)


def test_seeds_resume_from_their_checkpoints(two_seeds, tmp_path, capsys):
    """Seeds killed between their saves of step 200 (seed 1 holds 160 as its newest) resume
    together from 160, the newest step both hold, to the uninterrupted states."""
    root, full = two_seeds
    for k in range(2):
        shutil.copytree(root / f"seed{k}", tmp_path / f"seed{k}")
    shutil.rmtree(tmp_path / "seed1" / "checkpoints" / "200")
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        run_online(tiny_config(tmp_path, "run.num_seeds=2"))
    resumed = run_online(tiny_config(tmp_path, "run.num_seeds=2"), resume=True)
    assert "every seed resumes from 160" in capsys.readouterr().err
    for k in range(2):
        assert resumed[k]["env_steps"] == 200
        assert leaves_equal(resumed[k]["state"].agent, full[k]["state"].agent)
        assert leaves_equal(resumed[k]["state"].buffer, full[k]["state"].buffer)
        records = read_metrics(tmp_path / f"seed{k}")
        evals = [r["env_steps"] for r in records if r["phase"] == "eval"]
        assert evals == [e["env_steps"] for e in full[k]["evals"]]


def test_commands_that_run_one_seed_say_so(tmp_path):
    from wsrl_mjx.phases.collect import run_collect

    cfg = tiny_config(tmp_path, "run.num_seeds=2")
    with pytest.raises(ConfigError, match="collect runs one seed"):
        run_collect(cfg)
    too_many = jax.device_count() + 1  # seeds split over devices need that many
    with pytest.raises(ConfigError, match=f"run.num_devices={too_many}: this process sees"):
        run_online(tiny_config(tmp_path, "run.num_seeds=2", f"run.num_devices={too_many}"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_chunk_with_a_checkpoint_and_resumes_bit_exactly(
    full_run, tmp_path, monkeypatch, capsys, signum
):
    """SIGTERM (a batch scheduler) or SIGINT (Ctrl-C) mid-run: the chunk finishes, a checkpoint
    is written at that step (120, off the 80-step cadence), the command exits 128 + signal
    saying how to resume, and `--resume` ends in the uninterrupted run's state."""
    from wsrl_mjx.phases import online
    from wsrl_mjx.run import main

    root, full = full_run
    original = online.OnlineRun.record

    def signal_at_120(self, state, metrics, phase, start):
        original(self, state, metrics, phase, start)
        if int(state.env_steps) == 120:  # the signal arrives while the chunk ends
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(online.OnlineRun, "record", signal_at_120)
    argv = ["online", *[a for item in TINY for a in ("--set", item)]]
    argv += ["--set", f"run.run_dir={tmp_path}"]
    assert main(argv) == 128 + signum
    err = capsys.readouterr().err
    assert f"stopped by {signal.Signals(signum).name} at env step 120" in err
    assert "--resume" in err
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 120
    assert signal.getsignal(signum) is not None  # the handler was put back
    monkeypatch.setattr(online.OnlineRun, "record", original)
    assert main([*argv, "--resume"]) == 0
    resumed, _ = Checkpointer(tmp_path / "checkpoints").restore(full["state"])
    expected, _ = Checkpointer(root / "checkpoints").restore(full["state"])
    assert leaves_equal(resumed.agent, expected.agent)
    assert leaves_equal(resumed.buffer, expected.buffer)
    evals = [r["env_steps"] for r in read_metrics(tmp_path) if r["phase"] == "eval"]
    assert evals == [e["env_steps"] for e in full["evals"]]


def test_a_second_signal_stops_at_once():
    from wsrl_mjx.runtime.signals import graceful_stop, stop_requested

    # The precondition: Python's own SIGINT handler (a test runner's worker may hold another).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with graceful_stop():
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop_requested() == signal.SIGTERM
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)  # the default SIGINT handler: stop now
        assert stop_requested() is None
    finally:
        signal.signal(signal.SIGINT, outer)


def test_resume_with_settings_that_change_the_run_is_refused_unchanged(full_run, capsys):
    """`online --resume` compares the whole config with the one the run started with: a change
    to what it learns is refused naming each key, with the run dir left byte-identical; a
    change of cadence or budget is allowed and noted."""
    root, _ = full_run
    before = dir_bytes(root)
    for extra, key in [
        (["agent.critic_lr=0.5", "online.warmup_steps=80"], "agent.critic_lr: 0.0003 then, 0.5"),
        (["online.warmup_steps=80"], "online.warmup_steps: 40 then, 80 now"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(key)):
            run_online(tiny_config(root, *extra), resume=True)
    assert dir_bytes(root) == before
    check_resume_settings(
        json.loads(json.dumps(to_dict(tiny_config(root)), default=list)),
        tiny_config(root, "eval.every_env_steps=50", "online.total_env_steps=240"),
        ONLINE_RESUME_MAY_CHANGE,
    )
    err = capsys.readouterr().err
    assert "eval.every_env_steps changed from 100 to 50" in err
    assert "online.total_env_steps changed from 200 to 240" in err
