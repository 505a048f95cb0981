"""`pretrain --resume`: a run stopped after a checkpoint (the newest one broken, even) continues
to the same bits as an uninterrupted run; an unfinished pre-training is not fine-tuned from."""

import dataclasses

import jax
import numpy as np
import pytest

from tests.common import TINY, dir_bytes, leaves_equal
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.config import ConfigError
from wsrl_mjx.datasets import data
from wsrl_mjx.phases.bridge import restore_pretrained
from wsrl_mjx.phases.pretrain import run_pretrain
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.policy import load_config

PRETRAIN = [
    *TINY,
    "offline.steps=100",
    "offline.chunk_length=25",
    "offline.checkpoint_every_steps=25",
    "offline.eval_every_steps=50",
    "offline.holdout_fraction=0.1",
]


class Killed(Exception):
    pass


def random_dataset(path, seed: int = 0) -> str:
    """200 PointMass-shaped transitions in 10 episodes of 20 steps."""
    arrays = data.random_transitions(200, 4, 2, episode_length=20, seed=seed)
    return str(data.save_dataset(path, arrays, {"env": "PointMass"}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    dataset = random_dataset(root / "ds.npz")

    def cfg(name):
        return load_config(
            None, [*PRETRAIN, f"offline.dataset={dataset}", f"run.run_dir={root / name}"]
        )

    full = run_pretrain(cfg("full"))
    # Stop the second run right after its third checkpoint (step 75 of 100).
    original, saves = Checkpointer.save, []

    def save_then_die(self, step, state, meta):
        path = original(self, step, state, meta)
        saves.append(step)
        if len(saves) == 3:
            raise Killed
        return path

    Checkpointer.save = save_then_die
    try:
        with pytest.raises(Killed):
            run_pretrain(cfg("killed"))
    finally:
        Checkpointer.save = original
    assert saves == [25, 50, 75]
    return root, cfg, full


def test_unfinished_pretraining_is_refused_for_finetuning(runs):
    root, cfg, _ = runs
    agent = make_sac(cfg("killed").agent, 4, 2)
    with pytest.raises(CheckpointError, match="unfinished pre-training .*75 of 100"):
        restore_pretrained(root / "killed", agent, "PointMass")
    with pytest.raises(CheckpointError, match="pass --resume"):
        run_pretrain(cfg("killed"))


def test_resume_falls_back_past_a_broken_step_and_ends_bit_identical(runs, capsys):
    root, cfg, full = runs
    for f in (root / "killed" / "checkpoints" / "75").rglob("d/*"):
        f.write_bytes(f.read_bytes()[:10])  # truncate the newest step's data
    resumed = run_pretrain(cfg("killed"), resume=True)
    err = capsys.readouterr().err
    assert "checkpoints/75 is broken" in err and "older checkpoint" in err and "/50" in err
    assert leaves_equal(resumed["state"], full["state"])
    restored, meta = Checkpointer(root / "killed" / "checkpoints").restore(full["state"])
    assert meta["gradient_steps"] == 100 and leaves_equal(restored, full["state"])
    # The log holds each record once, as the uninterrupted run's does.
    keys = lambda run: [(r["phase"], r["env_steps"]) for r in read_metrics(root / run)]  # noqa: E731
    assert keys("killed") == keys("full")
    assert resumed["evals"] == full["evals"]


def test_a_refused_resume_leaves_the_run_dir_byte_identical(runs):
    """Resuming with another dataset or another critic_lr is refused before config.yaml or the
    held-out split is touched (a later finetune reads both)."""
    root, cfg, _ = runs
    before = dir_bytes(root / "killed")
    other = load_config(
        None,
        [
            *PRETRAIN,
            f"run.run_dir={root / 'killed'}",
            f"offline.dataset={random_dataset(root / 'other.npz', seed=1)}",
        ],
    )
    with pytest.raises(CheckpointError, match="pre-trained on other data"):
        run_pretrain(other, resume=True)
    changed = dataclasses.replace(
        cfg("killed"), agent=dataclasses.replace(cfg("killed").agent, critic_lr=0.5)
    )
    with pytest.raises(ConfigError, match="agent.critic_lr: 0.0003 then, 0.5 now"):
        run_pretrain(changed, resume=True)
    assert dir_bytes(root / "killed") == before


def test_seeds_pretrain_as_one_program_like_each_alone_and_resume(tmp_path, monkeypatch):
    """run.num_seeds=2: each seed its own split, run dir and checkpoints, trained by one vmapped
    program to what the seed trains alone (within float rounding of the batched matmuls), also
    when the seeds' splits differ in length (episodes of 5 to 35 steps); a stop between
    checkpoints resumes both to the same bits."""
    arrays = data.random_transitions(200, 4, 2, episode_length=20, seed=0)
    lengths = np.random.default_rng(0).integers(5, 36, 20)
    arrays["timeouts"] = np.isin(np.arange(200), np.cumsum(lengths) - 1)
    arrays["timeouts"][-1] = True
    arrays["next_observations"][:-1] = arrays["observations"][1:]  # continuous within episodes
    dataset = str(data.save_dataset(tmp_path / "ds.npz", arrays, {"env": "PointMass"}))

    def cfg(name, *extra):
        return load_config(
            None,
            [*PRETRAIN, f"offline.dataset={dataset}", f"run.run_dir={tmp_path / name}", *extra],
        )

    both = run_pretrain(cfg("both", "run.num_seeds=2", "run.seed=3"))
    assert [s["run_dir"] for s in both] == [str(tmp_path / "both" / f"seed{k}") for k in (3, 4)]
    for k, seed in enumerate((3, 4)):
        alone = run_pretrain(cfg(f"alone{seed}", f"run.seed={seed}"))
        for a, b in zip(
            jax.tree.leaves(both[k]["state"]), jax.tree.leaves(alone["state"]), strict=True
        ):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
        assert Checkpointer(tmp_path / "both" / f"seed{seed}" / "checkpoints").latest_step() == 100
        assert len(both[k]["evals"]) == len(alone["evals"])
    # The seeds' own splits differ: each seed's holdout is its own.
    holdouts = [np.load(tmp_path / "both" / f"seed{s}" / "holdout.npz") for s in (3, 4)]
    assert not np.array_equal(holdouts[0]["observations"], holdouts[1]["observations"])
    assert len(holdouts[0]["rewards"]) != len(holdouts[1]["rewards"])  # splits of other lengths

    original, saves = Checkpointer.save, []

    def save_then_die(self, step, state, meta):
        path = original(self, step, state, meta)
        saves.append(step)
        if len(saves) == 3:  # seed 3 saved step 50, seed 4 has not: a stop between the saves
            raise Killed
        return path

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(Killed):
        run_pretrain(cfg("killed", "run.num_seeds=2", "run.seed=3"))
    monkeypatch.setattr(Checkpointer, "save", original)
    resumed = run_pretrain(cfg("killed", "run.num_seeds=2", "run.seed=3"), resume=True)
    for k in range(2):
        assert leaves_equal(resumed[k]["state"], both[k]["state"])


def evals_of(scores, qs, every=10):
    return [
        {"gradient_steps": every * (i + 1), "eval_return": s, "eval_offline_q": q}
        for i, (s, q) in enumerate(zip(scores, qs, strict=True))
    ]


def test_the_plateau_rule_reads_score_and_held_out_q_over_two_windows():
    from wsrl_mjx.config import OfflineConfig
    from wsrl_mjx.phases.pretrain import plateaued

    rule = OfflineConfig(plateau_from=40, plateau_window=2, plateau_score=3.0, plateau_q=0.1)
    flat = evals_of([10, 20, 30, 31, 32, 31], [50, 80, 99, 100, 104, 105])
    assert plateaued(rule, "PointMass", [flat])  # scores 31.5 vs 31.5; Q 100 -> 105 (5 %)
    assert not plateaued(rule, "PointMass", [flat[:3]])  # fewer than two windows
    assert not plateaued(dataclasses.replace(rule, plateau_from=70), "PointMass", [flat])
    assert not plateaued(dataclasses.replace(rule, plateau_from=0), "PointMass", [flat])  # off
    rising_q = evals_of([10, 20, 30, 31, 32, 31], [50, 80, 99, 100, 104, 120])  # 100 -> 120
    assert not plateaued(rule, "PointMass", [rising_q])
    rising_score = evals_of([10, 20, 30, 31, 36, 38], [50, 80, 99, 100, 104, 105])
    assert not plateaued(rule, "PointMass", [rising_score])
    # Several seeds: the means over seeds decide; a seed without held-out Q never plateaus.
    other = evals_of([12, 18, 28, 33, 30, 33], [52, 78, 101, 100, 106, 105])
    assert plateaued(rule, "PointMass", [flat, other])
    no_q = [{k: v for k, v in r.items() if k != "eval_offline_q"} for r in flat]
    assert not plateaued(rule, "PointMass", [flat, no_q])
    # Where the env has references, the score is normalized (3 points of D4RL's Hopper range
    # are ~98 return): returns moving by 30 are a plateau there.
    hopper = evals_of([900, 1000, 1100, 1160, 1130, 1190], [50, 80, 99, 100, 104, 105])
    assert plateaued(rule, "Hopper-v5", [hopper]) and not plateaued(rule, "PointMass", [hopper])


def test_a_pretraining_that_plateaus_stops_there_with_a_checkpoint(tmp_path):
    """Tolerances no run can miss stop the run at the first evaluation the rule may read; the
    held-out Q is in every evaluation record; fine-tuning restores the last checkpoint."""
    dataset = random_dataset(tmp_path / "ds.npz")
    overrides = [*PRETRAIN, f"offline.dataset={dataset}", f"run.run_dir={tmp_path / 'run'}"]
    overrides += ["offline.eval_every_steps=25", "offline.plateau_from=50"]
    overrides += ["offline.plateau_window=1", "offline.plateau_score=1e9", "offline.plateau_q=1e9"]
    cfg = load_config(None, overrides)
    summary = run_pretrain(cfg)
    assert summary["gradient_steps"] == 50  # evaluations at 25, 50: the rule may read 50
    evals = [r for r in read_metrics(tmp_path / "run") if r["phase"] == "eval"]
    assert [r["gradient_steps"] for r in evals] == [25, 50]
    assert all(np.isfinite(r["eval_offline_q"]) and r["eval_offline_td"] >= 0 for r in evals)
    assert Checkpointer(tmp_path / "run" / "checkpoints").latest_step() == 50
    # Recorded finished at 50, so fine-tuning takes it (an unfinished one is refused).
    agent = make_sac(cfg.agent, 4, 2)
    _, meta = restore_pretrained(tmp_path / "run", agent, "PointMass")
    assert meta["plateaued_at"] == meta["total_gradient_steps"] == meta["gradient_steps"] == 50
