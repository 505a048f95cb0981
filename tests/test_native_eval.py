"""`evaluate`: a checkpoint's policy in the native Gymnasium env beside its MJX twin."""

import json

import jax
import numpy as np
import pytest

pytest.importorskip("gymnasium")

from wsrl_mjx.config import ConfigError, to_dict  # noqa: E402
from wsrl_mjx.core.environment import env_meta, make_env  # noqa: E402
from wsrl_mjx.datasets.scores import normalized_score  # noqa: E402
from wsrl_mjx.methods import make_agent  # noqa: E402
from wsrl_mjx.phases.native_eval import native_env  # noqa: E402
from wsrl_mjx.run import main  # noqa: E402
from wsrl_mjx.runtime.checkpoint import Checkpointer  # noqa: E402
from wsrl_mjx.runtime.policy import load_config  # noqa: E402

EPISODE_LENGTH = 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A HalfCheetah-v5 pre-training checkpoint of an untrained CQL agent (30-step episodes)."""
    run_dir = tmp_path_factory.mktemp("cheetah")
    sets = ["env.name=HalfCheetah-v5", f"env.episode_length={EPISODE_LENGTH}"]
    sets += ["agent.actor_hidden=[16,16]", "agent.critic_hidden=[16,16]", "agent.num_critics=2"]
    cfg = load_config(None, [*sets, "offline.algorithm=cql"])
    env = make_env(cfg.env)
    agent = make_agent("cql", cfg.agent, cfg.offline, env.observation_size, env.action_size)
    meta = {**env_meta(env), "algorithm": "cql", "config": to_dict(cfg)}
    meta |= {"gradient_steps": 0, "total_gradient_steps": 0}
    ckpt = Checkpointer(run_dir / "checkpoints")
    ckpt.save(0, agent.init(jax.random.PRNGKey(0)), meta)
    ckpt.close()
    return run_dir


def test_evaluate_reports_twin_and_native_side_by_side(checkpoint, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["evaluate", str(checkpoint), "--episodes", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| twin |" in printed and "| native |" in printed and "Welch's t-test" in printed
    report = json.loads(out.read_text())
    assert report["env"] == "HalfCheetah-v5" and report["episode_length"] == EPISODE_LENGTH
    for name in ("twin", "native"):
        side = report[name]
        assert len(side["returns"]) == 3 and np.isfinite(side["returns"]).all()
        assert side["length_mean"] == EPISODE_LENGTH  # HalfCheetah never terminates early
        assert side["success"] is None  # no success signal in locomotion
        assert side["normalized"] == pytest.approx(
            normalized_score("HalfCheetah-v5", side["return_mean"])
        )
    assert 0.0 <= report["welch_p"] <= 1.0


def test_envs_without_a_native_twin_are_refused():
    with pytest.raises(ConfigError, match="'ReacherEasy' has no native Gymnasium env"):
        native_env("ReacherEasy", {}, 100)
