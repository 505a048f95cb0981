"""Normalized scores (wsrl_mjx.datasets.scores): AntMaze from the success rate, locomotion from the
return, and every report (pipeline summary, `evaluate`, curve files, experiment tables) using
the env's metric. Unit-level: no env is compiled."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from wsrl_mjx.datasets import scores
from wsrl_mjx.studies import evidence_curves

ANTMAZE = "AntMaze_Large_Diverse_GR-v4"
LOCOMOTION_YAML = Path(__file__).parents[1] / "configs" / "experiments" / "locomotion_wsrl.yaml"


def test_antmaze_score_is_100_x_success_rate_whatever_the_return():
    # A return of 237 (a continuing task rewards every step at the goal) is not a success rate.
    assert scores.normalized_of(ANTMAZE, {"return": 237.0, "success": 0.3}) == pytest.approx(30.0)
    dense = {"eval_return": 12.5, "eval_success": 0.75}  # Dense: exp(-distance) rewards
    assert scores.normalized_of("AntMaze_MediumDense-v4", dense, "eval_") == pytest.approx(75.0)
    assert scores.normalized_of(ANTMAZE, {"return": 237.0}) is None  # no success measured
    assert scores.normalized_of(ANTMAZE, {"return": 1.0, "success": math.nan}) is None
    with pytest.raises(ValueError, match="normalized from its success rate"):
        scores.normalized_score(ANTMAZE, 237.0)
    with pytest.raises(ValueError, match="normalized from its success rate"):
        scores.return_at(ANTMAZE, 50.0)


def test_locomotion_score_comes_from_the_return():
    # Hopper: 100 x (1000 + 20.272305) / (3234.3 + 20.272305) = 31.3489 (D4RL's references).
    record = {"return": 1000.0, "success": 1.0}
    assert scores.normalized_of("Hopper-v5", record) == pytest.approx(31.3489, abs=1e-4)
    assert scores.normalized_score("Hopper-v5", 1000.0) == pytest.approx(31.3489, abs=1e-4)
    assert scores.normalized_of("PointMass", record) is None  # no references


def test_every_registered_antmaze_twin_and_nothing_else_is_scored_by_success():
    from envs import registered_names
    from envs.gym_antmaze import ANTMAZE_IDS

    assert len(ANTMAZE_IDS) == 20  # 4 mazes (UMaze without diverse variants) x sparse / dense
    success_scored = {n for n in registered_names() if scores.references(n)} - set(
        scores.D4RL_REFERENCES
    )
    assert success_scored == set(ANTMAZE_IDS)
    assert all(scores.references(n).metric == "success" for n in ANTMAZE_IDS)
    assert scores.references("antmaze-medium") is None  # the project's own maze: another env


def test_native_evaluation_normalizes_the_success_rate():
    from wsrl_mjx.phases.native_eval import _summary

    result = {
        "return": np.array([400.0, 0.0, 120.0, 0.0]),
        "success": np.array([1.0, 0.0, 1.0, 0.0]),
        "length": np.array([700.0, 700.0, 700.0, 700.0]),
    }
    side = _summary("AntMaze_UMaze-v4", result)
    assert side["success"] == 0.5 and side["normalized"] == pytest.approx(50.0)
    result["success"] = np.full(4, np.nan)  # a locomotion task: no success, return normalized
    side = _summary("Hopper-v5", {**result, "return": np.full(4, 1000.0)})
    assert side["success"] is None and side["normalized"] == pytest.approx(31.3489, abs=1e-4)


def test_pipeline_summary_normalizes_antmaze_success_and_prints_it_beside_it(capsys):
    from wsrl_mjx.phases.pipeline import normalized_scores, print_summary

    summary = {
        "env": ANTMAZE,
        "behaviour_return": 80.0,
        "offline_score": 150.0,
        "offline_success": 0.25,
        "after_warmup_score": 90.0,
        "after_warmup_success": 0.125,
        "final_score": 300.0,
        "final_success": 0.5,
        "finetune_env_steps": 200,
        "episode_length": 1000,
        "seconds": {},
        "run_dir": "r",
    }
    summary |= normalized_scores(summary)
    assert summary["normalized_from"] == "success"
    assert summary["behaviour_return_normalized"] is None  # datasets record no success rate
    assert summary["offline_score_normalized"] == pytest.approx(25.0)
    assert summary["after_warmup_score_normalized"] == pytest.approx(12.5)
    assert summary["final_score_normalized"] == pytest.approx(50.0)
    print_summary(summary)
    out = capsys.readouterr().out
    assert "0.50 (normalized 50.0)" in out and "300.00 (normalized" not in out
    assert "0.12 (normalized 12.5)" in out  # after warmup


def _write_antmaze_run(run_dir: Path, evals: list[tuple[int, float, float]]) -> Path:
    """A finished fine-tuning run of ANTMAZE: (env_steps, return, success) per evaluation."""
    run_dir.mkdir(parents=True)
    rows = [
        {"phase": "eval", "env_steps": s, "eval_return": r, "eval_success": p} for s, r, p in evals
    ]
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in rows) + "\n")
    (run_dir / "config.yaml").write_text(json.dumps({"env": {"name": ANTMAZE}}))
    (run_dir / "done.json").write_text("{}")
    return run_dir


def test_experiment_tables_normalize_antmaze_success(tmp_path):
    from wsrl_mjx.studies.experiment_report import results_markdown, results_table
    from wsrl_mjx.studies.experiment_spec import load_experiment

    runs = {
        "wsrl": [
            _write_antmaze_run(tmp_path / "wsrl" / "seed0", [(0, 500.0, 0.25), (100, 9.0, 0.5)]),
            _write_antmaze_run(tmp_path / "wsrl" / "seed1", [(0, 7.0, 0.75), (100, 1.0, 1.0)]),
        ]
    }
    table = results_table(runs, budgets=(0,))
    assert table["wsrl"]["final"]["success_seeds"] == [0.5, 1.0]
    exp = load_experiment(LOCOMOTION_YAML, {"env": {"name": ANTMAZE}})
    normalized = results_markdown(exp, table).split("Normalized score (100 x success rate")[1]
    # Budget 0: seeds 25 and 75 (mean 50, std 35.4); end of run: 50 and 100 (75, 35.4).
    assert "| wsrl | 50.0 ± 35.4 | 75.0 ± 35.4 |" in normalized


def test_curve_files_and_load_task_normalize_antmaze_success(tmp_path):
    _write_antmaze_run(tmp_path / "exp" / "wsrl" / "seed0", [(0, 500.0, 0.25), (100, 9.0, 0.5)])
    (path,) = evidence_curves.export_curves(tmp_path / "exp", tmp_path / "curves")
    _, curve = evidence_curves.read_curve(path)
    np.testing.assert_allclose(curve["eval_success"], [0.25, 0.5])
    np.testing.assert_allclose(curve["normalized"], [25.0, 50.0])
    env, runs = evidence_curves.load_task(tmp_path / "curves")
    assert env == ANTMAZE
    np.testing.assert_allclose(runs["wsrl"][0].score, [25.0, 50.0])
