"""run.num_seeds: several seeds vmapped in one program, each with its own run dir, evaluations,
checkpoints and resume."""

import numpy as np
import pytest

from tests.common import TINY as COMMON_TINY
from tests.common import leaves_equal
from wsrl_mjx.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.config import ConfigError, load_config
from wsrl_mjx.logger import read_metrics
from wsrl_mjx.pretrain import run_pretrain
from wsrl_mjx.train import run_online

TINY = [
    *COMMON_TINY,
    "agent.critic_minibatches=2",
    "run.checkpoint_every_env_steps=80",
]


class Killed(Exception):
    pass


def seeds_config(root, *extra):
    return load_config(None, [*TINY, "run.num_seeds=2", f"run.run_dir={root}", *extra])


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return root, run_online(seeds_config(root))


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


def test_a_seed_in_the_program_behaves_like_its_own_run(two_seeds, tmp_path):
    """Seed 1 alone (no vmap) starts from the same init and sees the same random numbers: its
    evaluations and logged losses match the program's seed 1 up to float reassociation."""
    root, _ = two_seeds
    cfg = load_config(None, [*TINY, "run.seed=1", f"run.run_dir={tmp_path}"])
    alone = run_online(cfg)
    in_program = read_metrics(root / "seed1")
    for key in ("eval_return",):
        a = [r[key] for r in read_metrics(tmp_path) if r["phase"] == "eval"]
        b = [r[key] for r in in_program if r["phase"] == "eval"]
        np.testing.assert_allclose(a[:2], b[:2], rtol=1e-5)  # initial and after warmup
    first = lambda recs: next(r for r in recs if r["phase"] == "online")  # noqa: E731
    a, b = first(read_metrics(tmp_path)), first(in_program)
    for key in ("td_loss", "q_pred", "actor_loss", "train_return"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-3, err_msg=key)
    assert alone["env_steps"] == 200


def test_killed_seeds_resume_to_the_same_states(two_seeds, tmp_path, monkeypatch):
    _, full = two_seeds
    original_save = Checkpointer.save
    saves = []

    def save_then_die(self, step, state, meta):
        path = original_save(self, step, state, meta)
        saves.append(step)
        if len(saves) == 4:  # both seeds saved env step 160
            raise Killed
        return path

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(Killed):
        run_online(seeds_config(tmp_path))
    monkeypatch.setattr(Checkpointer, "save", original_save)
    assert saves == [80, 80, 160, 160]

    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        run_online(seeds_config(tmp_path))
    resumed = run_online(seeds_config(tmp_path), resume=True)
    for k in range(2):
        assert resumed[k]["env_steps"] == 200
        assert leaves_equal(resumed[k]["state"].agent, full[k]["state"].agent)
        assert leaves_equal(resumed[k]["state"].buffer, full[k]["state"].buffer)
        records = read_metrics(tmp_path / f"seed{k}")
        evals = [r["env_steps"] for r in records if r["phase"] == "eval"]
        assert evals == [e["env_steps"] for e in full[k]["evals"]]


def test_commands_that_run_one_seed_say_so(tmp_path):
    cfg = seeds_config(tmp_path, "offline.dataset=x.npz")
    with pytest.raises(ConfigError, match="pretrain runs one seed"):
        run_pretrain(cfg)
    with pytest.raises(ConfigError, match="run.num_seeds > 1 runs on one device"):
        run_online(seeds_config(tmp_path, "run.num_devices=2"))
