"""`pretrain --resume`: a run stopped after a checkpoint (the newest one broken, even) continues
to the same bits as an uninterrupted run; an unfinished pre-training is not fine-tuned from."""

import dataclasses

import jax
import numpy as np
import pytest

from tests.common import TINY, dir_bytes, leaves_equal
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.config import ConfigError, load_config
from wsrl_mjx.datasets import data
from wsrl_mjx.phases.bridge import restore_pretrained
from wsrl_mjx.phases.pretrain import run_pretrain
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.logger import read_metrics

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
    program to what the seed trains alone (within float rounding of the batched matmuls); a
    stop between checkpoints resumes both to the same bits."""
    dataset = random_dataset(tmp_path / "ds.npz")

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
