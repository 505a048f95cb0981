"""The experiment matrix: spec validation, the results table at budgets, grouped plots."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from wsrl_mjx.config import ConfigError
from wsrl_mjx.studies.experiment_report import (
    eval_at,
    results_markdown,
    results_table,
    run_diagnostics,
    switch_report,
)
from wsrl_mjx.studies.experiment_spec import (
    check_same_experiment,
    load_experiment,
    pretrain_dir,
    pretrain_groups,
)
from wsrl_mjx.studies.plots import draw_groups, plot_groups

EXPERIMENTS = sorted((Path(__file__).parents[1] / "configs" / "experiments").glob("*.yaml"))
EXPERIMENTS_BY_NAME = {p.stem: p for p in EXPERIMENTS}


def write_run(run_dir: Path, evals: list[tuple[int, float]]) -> Path:
    run_dir.mkdir(parents=True)
    lines = [{"env_steps": s, "phase": "eval", "eval_return": r} for s, r in evals]
    lines += [
        {"env_steps": s, "phase": "finetune-wsrl", "q_pred": 1.0 + r, "td_loss": 0.1}
        for s, r in evals
    ]
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return run_dir


def test_eval_at_takes_the_last_evaluation_within_the_budget(tmp_path):
    records = [{"env_steps": s, "phase": "eval", "eval_return": r} for s, r in [(0, 1), (50, 2)]]
    assert eval_at(records, 49) == 1 and eval_at(records, 50) == 2
    assert np.isnan(eval_at(records[1:], 10))


def test_results_table_mean_and_spread_over_seeds(tmp_path):
    runs = {
        "wsrl": [
            write_run(tmp_path / "w0", [(0, 1.0), (100, 3.0), (200, 5.0)]),
            write_run(tmp_path / "w1", [(0, 3.0), (100, 5.0), (200, 9.0)]),
        ],
        # A method with a warmup can end past the others: its end is still the "final" column.
        "sac": [write_run(tmp_path / "s0", [(0, 0.0), (100, 0.5), (208, 1.0)])],
    }
    table = results_table(runs, budgets=(100,))
    assert table["wsrl"]["100"]["mean"] == 4.0
    assert table["wsrl"]["100"]["std"] == pytest.approx(math.sqrt(2.0))  # sample std (ddof 1)
    assert math.isnan(table["sac"]["100"]["std"])  # one seed: no spread
    assert table["wsrl"]["final"]["seeds"] == [5.0, 9.0]  # the run's end is always a column
    assert table["sac"]["final"]["mean"] == 1.0 and table["sac"]["final"]["env_steps"] == [208]
    exp = load_experiment(EXPERIMENTS[0])
    markdown = results_markdown(exp, table)
    assert "| wsrl | 4.0 ± 1.4 | 7.0 ± 2.8 |" in markdown
    png = plot_groups(runs, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_shipped_experiments_are_valid(path):
    exp = load_experiment(path)
    assert {"wsrl", "wsrl-no-warmup"} <= set(exp.methods)
    offline_fine_tuners = {"calql", "cql", "iql"} & set(exp.methods)
    assert offline_fine_tuners, f"{path.name}: no offline-RL fine-tuner to compare WSRL with"
    assert exp.methods["wsrl"].finetune.method == "wsrl"
    assert exp.methods["wsrl-no-warmup"].online.warmup_steps == 0
    assert len(exp.seeds) >= (1 if "ablations" in path.stem else 3)


def test_bad_experiment_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_experiment(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: {wsrl: {}}\nseed: [0]\n")
    with pytest.raises(ConfigError, match="unknown key 'seed'.*seeds"):
        load_experiment(bad)
    bad.write_text("methods: {wsrl: {online: {num_env: 4}}}\n")
    with pytest.raises(ConfigError, match="method 'wsrl'.*online.num_env"):
        load_experiment(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a mapping of"),
        ("methods: [wsrl, sac]", "'methods' must map method names"),
        ("methods: {wsrl: {}}\nseeds: 5", "'seeds' must be a list of integers"),
        ("methods: {wsrl: {}}\nseeds: [a]", "'seeds' must be a list of integers"),
        ("methods: {wsrl: {}}\nseeds: []", "'seeds' is empty"),
        ("methods: {wsrl: {}}\nbudgets: abc", "'budgets' must be a list of integers"),
        ("methods: {wsrl: {}}\nbase: [1, 2]", "'base' must be a mapping"),
        ("methods: {wsrl: 3}", "method 'wsrl': expected a mapping"),
        ("methods: {'../../x': {}}", "method name '../../x'"),
        ("methods: {wsrl: {}}\noutputs: ../../x", "must be a folder inside"),
        ("methods: {wsrl: {}}\ntitle: [1]", "'title' must be a string"),
    ],
)
def test_bad_experiment_file_shapes_are_refused(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_experiment(bad)


def test_damaged_bookkeeping_files_are_named_not_tracebacks(tmp_path):
    from wsrl_mjx.runtime.rundir import git_commit
    from wsrl_mjx.studies import experiment
    from wsrl_mjx.studies.experiment import _once
    from wsrl_mjx.studies.experiment_spec import DONE_FILE, SETTINGS_FILE

    run = tmp_path / "wsrl" / "seed0"
    run.mkdir(parents=True)
    for text in ("", '{"run_dir": "x"', "123"):
        (run / DONE_FILE).write_text(text)
        with pytest.raises(ConfigError, match="done.json is damaged.*delete it"):
            _once(run, lambda: pytest.fail("a finished run is not re-run"))
    (run / DONE_FILE).unlink()
    record = _once(run, lambda: {"run_dir": str(run), "state": object()})
    # Written atomically, without the live state, naming the commit the run finished with.
    assert record == {"run_dir": str(run), "commit": git_commit(Path(experiment.__file__).parent)}
    assert len(record["commit"]) == 40
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp file left
    exp = load_experiment(EXPERIMENTS[0], {"run": {"run_dir": str(tmp_path / "exp")}})
    (exp.run_dir).mkdir(parents=True)
    (exp.run_dir / SETTINGS_FILE).write_text('{"wsrl": ')
    with pytest.raises(ConfigError, match="experiment.json is damaged"):
        check_same_experiment(exp)


def test_rerun_with_other_settings_is_refused(tmp_path):
    """Finished runs are reused on a re-run, so other --set values must not land in them."""
    moved = {"run": {"run_dir": str(tmp_path / "exp")}}
    exp = load_experiment(EXPERIMENTS[0], moved)
    assert exp.run_dir == tmp_path / "exp"  # --set run.run_dir moves the whole experiment
    check_same_experiment(exp)
    check_same_experiment(load_experiment(EXPERIMENTS[0], moved))  # same settings: fine
    other = load_experiment(EXPERIMENTS[0], {**moved, "agent": {"init_temperature": 0.5}})
    with pytest.raises(ConfigError, match="agent.init_temperature differs"):
        check_same_experiment(other)
    # A record made before a key existed: the key at its default changes nothing; set, it does.
    record = json.loads((exp.run_dir / "experiment.json").read_text())
    for settings in record.values():
        del settings["online.first_update"]
    # Records of older versions spelt every key with a trailing dot ("env.name."): the same.
    record = {m: {f"{k}.": v for k, v in settings.items()} for m, settings in record.items()}
    (exp.run_dir / "experiment.json").write_text(json.dumps(record))
    check_same_experiment(load_experiment(EXPERIMENTS[0], moved))
    with pytest.raises(ConfigError, match="agent.init_temperature differs"):
        check_same_experiment(other)
    newer = load_experiment(EXPERIMENTS[0], {**moved, "online": {"first_update": "after_warmup"}})
    with pytest.raises(ConfigError, match="online.first_update differs"):
        check_same_experiment(newer)


def test_methods_share_a_pretraining_only_with_the_same_settings():
    exp = load_experiment(EXPERIMENTS_BY_NAME["pointmaze_wsrl"])
    groups = pretrain_groups(exp)
    assert groups["wsrl"][0] == groups["calql"][0] == groups["jsrl"][0] == "pretrain"
    assert groups["sac"][0] == groups["rlpd"][0] == "pretrain"  # settings equal; never restored
    assert groups["iql"][0] == "pretrain-iql" and groups["iql"][1].offline.algorithm == "iql"
    assert pretrain_dir(exp, "pretrain-iql", 1) == exp.run_dir / "pretrain-iql" / "seed1"
    ablations = pretrain_groups(load_experiment(EXPERIMENTS_BY_NAME["pointmaze_ablations"]))
    assert ablations["wsrl-no-idle-steps"][0] == "pretrain"  # online-only key: shared
    assert ablations["wsrl-actor-no-layer-norm"][0] == "pretrain-wsrl-actor-no-layer-norm"


def test_switch_report_reads_scores_warmup_and_offline_diagnostics(tmp_path):
    run = tmp_path / "wsrl" / "seed0"
    run.mkdir(parents=True)
    records = [
        {"env_steps": 0, "phase": "eval", "eval_return": 1.0},
        {
            "env_steps": 40,
            "phase": "warmup",
            "updates": 0,
            "episodes": 4.0,
            "train_return": 2.0,
            "train_success": 0.5,
        },
        {"env_steps": 40, "phase": "eval", "eval_return": 1.0},
        {"env_steps": 80, "phase": "finetune-wsrl", "offline_q": 3.0, "offline_td": 0.1},
        {"env_steps": 80, "phase": "eval", "eval_return": 0.2},
        {"env_steps": 120, "phase": "finetune-wsrl", "offline_q": 2.0, "offline_td": 0.5},
        {"env_steps": 120, "phase": "eval", "eval_return": 0.1},
        {"env_steps": 160, "phase": "finetune-wsrl", "offline_q": 2.5, "offline_td": 0.2},
        {"env_steps": 160, "phase": "eval", "eval_return": 3.0},
    ]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    d = run_diagnostics(run)
    assert (d["switch_step"], d["at_switch"], d["first_after"]) == (40, 1.0, 0.2)
    assert (d["min_after"], d["final"], d["recovered_at"]) == (0.1, 3.0, 160)
    assert (d["warmup_episodes"], d["warmup_success"], d["warmup_return"]) == (4.0, 0.5, 2.0)
    assert d["offline_q"] == (3.0, 2.0, 2.5) and d["offline_td"] == (0.1, 0.5, 0.2)
    exp = load_experiment(EXPERIMENTS_BY_NAME["pointmaze_wsrl"])
    report = switch_report(exp, {"wsrl": [run]}, {})
    row = "| wsrl | 40 | 1.00 | 0.20 | 0.10 | 160 (1/1) | 3.00 | n/a -> n/a | 4 | 2.00 | 0.50 |"
    assert row in report


def test_a_group_keeps_its_colour_in_panels_where_another_logged_nothing(tmp_path):
    """The legend is drawn once: a group without held-out Q must not shift the others' colours."""
    plain = write_run(tmp_path / "a", [(0, 1.0), (100, 2.0)])
    diag = write_run(tmp_path / "b", [(0, 1.0), (100, 3.0)])
    lines = (diag / "metrics.jsonl").read_text()
    extra = json.dumps({"env_steps": 100, "phase": "finetune-wsrl", "offline_q": 2.0})
    (diag / "metrics.jsonl").write_text(lines + extra + "\n")
    fig = draw_groups({"a": [plain], "b": [diag]})
    eval_ax, offline_q_ax = fig.axes[0], fig.axes[4]
    assert [line.get_color() for line in eval_ax.lines] == ["C0", "C1"]
    assert [line.get_color() for line in offline_q_ax.lines] == ["C1"]
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]
    assert [h.get_color() for h in legend.legend_handles] == ["C0", "C1"]


def test_back_at_counts_only_after_a_dip():
    from wsrl_mjx.studies.experiment_report import recovered_at

    evals = lambda *scores: [  # noqa: E731
        {"env_steps": 100 * (i + 1), "eval_return": s} for i, s in enumerate(scores)
    ]
    # Above the switch score first (no dip yet), then the dip, then back: back after the dip.
    assert recovered_at(evals(1.2, 0.5, 0.8, 1.1), 1.0) == 400
    assert math.isnan(recovered_at(evals(1.2, 1.0, 1.5), 1.0))  # never below: no dip
    assert math.isnan(recovered_at(evals(0.5, 0.7), 1.0))  # dipped, never back


def test_one_experiment_file_serves_several_tasks_and_datasets():
    path = Path("configs/experiments/locomotion_wsrl.yaml")
    exp = load_experiment(path, {"env": {"name": "Hopper-v5"}})
    assert exp.dataset == "data/locomotion/Hopper-v5-medium-replay.npz"
    assert exp.run_dir == Path("runs/locomotion/Hopper-v5")
    assert exp.title.startswith("Hopper-v5: WSRL vs baselines")
    other = load_experiment(path, {"env": {"name": "Hopper-v5"}}, dataset="d/{env}-medium.npz")
    assert other.dataset == "d/Hopper-v5-medium.npz"


def test_a_moved_experiment_is_the_same_experiment(tmp_path):
    """The record names the run dir; moving the folder (and saying so with --set run.run_dir)
    reuses its finished runs instead of refusing them."""
    first = load_experiment(EXPERIMENTS[0], {"run": {"run_dir": str(tmp_path / "a")}})
    check_same_experiment(first)
    (tmp_path / "a").rename(tmp_path / "b")
    check_same_experiment(
        load_experiment(EXPERIMENTS[0], {"run": {"run_dir": str(tmp_path / "b")}})
    )


def test_tables_add_normalized_scores_where_the_env_has_references(tmp_path):
    runs = {
        "wsrl": [
            write_run(tmp_path / "w0", [(0, 1.0), (100, 3.0), (200, 5.0)]),
            write_run(tmp_path / "w1", [(0, 3.0), (100, 5.0), (200, 9.0)]),
        ]
    }
    table = results_table(runs, budgets=(100,))
    path = Path(__file__).parents[1] / "configs" / "experiments" / "locomotion_wsrl.yaml"
    cheetah = load_experiment(path, {"env": {"name": "HalfCheetah-v5"}})
    norm = lambda r: 100 * (r + 280.178953) / (12135.0 + 280.178953)  # noqa: E731  D4RL's refs
    markdown = results_markdown(cheetah, table)
    mean = (norm(3.0) + norm(5.0)) / 2
    spread = abs(norm(5.0) - norm(3.0)) / math.sqrt(2)
    assert f"| wsrl | {mean:.1f} ± {spread:.1f} |" in markdown.split("Normalized score")[1]
    assert "Normalized score" not in results_markdown(load_experiment(EXPERIMENTS[0]), table)
