"""wsrl_mjx/studies/evidence.py on hand-made run directories: curve files, per-seed quantities,
claims."""

import json
import math

import numpy as np
import pytest
import yaml

from wsrl_mjx.datasets import scores
from wsrl_mjx.run import main
from wsrl_mjx.studies import evidence_claims, evidence_curves
from wsrl_mjx.studies import verdicts as V

ENV = "Hopper-v5"
REFS = scores.references(ENV)


@pytest.fixture(autouse=True)
def fewer_bootstrap_draws(monkeypatch):
    monkeypatch.setattr(evidence_claims, "BOOTSTRAP_REPS", 1000)
    monkeypatch.setattr(V, "BOOTSTRAP_REPS", 1000)


def ret(score: float) -> float:
    """The Hopper return whose normalized score is `score`."""
    return scores.return_at(ENV, score)


def make_run(root, method, seed, evals, switch=0, offline_td=None):
    """A finished fine-tuning run dir: evaluations (env_steps, normalized score), a warmup
    ending at `switch`, and one training record (with held-out TD) before each evaluation."""
    run = root / method / f"seed{seed}"
    run.mkdir(parents=True)
    records = []
    if switch:
        records.append({"phase": "warmup", "env_steps": switch, "episodes": 1})
    for i, (step, score) in enumerate(evals):
        if step > switch:
            td = (offline_td or [1.0] * len(evals))[i]
            records.append(
                {
                    "phase": "online",
                    "env_steps": step,
                    "q_pred": 1.0,
                    "td_loss": 0.5,
                    "offline_q": 2.0,
                    "offline_td": td,
                }
            )
        records.append(
            {"phase": "eval", "env_steps": step, "eval_return": ret(score), "eval_length": 1000.0}
        )
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"env": {"name": ENV}}))
    (run / "done.json").write_text('{"commit": "c0ffee"}' if seed == 1 else "{}")
    return run


def test_curve_files_name_the_commit_the_run_finished_with(tmp_path):
    make_run(tmp_path / "exp", "wsrl", 0, [(0, 1.0)])
    make_run(tmp_path / "exp", "wsrl", 1, [(0, 1.0)])  # its done.json records c0ffee
    written = evidence_curves.export_curves(tmp_path / "exp", tmp_path / "curves", commit="later")
    commits = [evidence_curves.read_curve(p)[0]["commit"] for p in written]
    assert commits == ["later", "c0ffee"]


def test_export_and_analyze_are_commands_of_the_command_line(tmp_path, capsys):
    for seed in range(2):
        make_run(tmp_path / "exp", "wsrl", seed, [(5000, 40.0), (10000, 50.0)], switch=5000)
    curves = tmp_path / "curves"
    assert main(["evidence", "export", str(tmp_path / "exp"), str(curves)]) == 0
    assert "[evidence] 2 curve files" in capsys.readouterr().out
    assert sorted(p.name for p in (curves / "wsrl").iterdir()) == ["seed0.tsv", "seed1.tsv"]
    assert main(["evidence", "analyze", str(curves), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "claims.json").is_file()
    argv = ["evidence", "analyze", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_curve_file_round_trip_and_normalized_scores(tmp_path):
    make_run(
        tmp_path / "exp",
        "wsrl",
        0,
        [(5000, 40.0), (10000, 30.0), (15000, 55.0)],
        switch=5000,
        offline_td=[0.0, 2.0, 3.0],
    )
    written = evidence_curves.export_curves(tmp_path / "exp", tmp_path / "curves", commit="abc123")
    assert [p.relative_to(tmp_path / "curves").as_posix() for p in written] == ["wsrl/seed0.tsv"]
    header, curve = evidence_curves.read_curve(written[0])
    assert header == {
        "env": ENV,
        "run": "wsrl/seed0",
        "seed": "0",
        "commit": "abc123",
        "method": "wsrl",
        "switch_env_steps": "5000",
    }
    np.testing.assert_allclose(curve["normalized"], [40.0, 30.0, 55.0], rtol=1e-5)
    np.testing.assert_allclose(curve["eval_return"], [ret(40), ret(30), ret(55)], rtol=1e-5)
    # The held-out TD logged last before each evaluation; none before the switch's.
    assert math.isnan(curve["offline_td"][0])
    np.testing.assert_allclose(curve["offline_td"][1:], [2.0, 3.0])


def test_normalized_score_uses_d4rl_references():
    assert scores.normalized_score(ENV, REFS.random) == pytest.approx(0.0)
    assert scores.normalized_score(ENV, REFS.expert) == pytest.approx(100.0)
    assert scores.normalized_score("HalfCheetah-v5", 12135.0) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="no reference returns"):
        scores.normalized_score("PointMass", 1.0)


def _run(scores_, switch=5000, td=None):
    steps = np.arange(len(scores_)) * 5000.0 + 5000.0
    return evidence_curves.Run(
        "m",
        0,
        switch,
        steps,
        np.asarray(scores_, float),
        np.asarray(td if td is not None else [np.nan] * len(scores_), float),
    )


def test_back_at_counts_only_after_a_dip():
    no_dip = _run([40, 45, 50, 60])
    assert no_dip.dip == 0 and math.isnan(no_dip.back_at)
    # Above the switch score first, then a dip, then back: measured from the dip, not before.
    late_dip = _run([40, 42, 30, 35, 41])
    assert late_dip.dip == pytest.approx(10.0)
    assert late_dip.back_at == 20000  # at env step 25000, 20000 after the switch
    never = _run([40, 20, 25, 30])
    assert never.back_at == math.inf and never.final < never.at_switch


def test_mean_std_is_the_sample_std():
    m, sd = evidence_claims.mean_std(np.array([1.0, 2.0, 3.0, 4.0]))
    assert m == 2.5 and sd == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert math.isnan(evidence_claims.mean_std(np.array([1.0]))[1])


def test_signed_rank_win_rate_and_iqm_directions():
    assert evidence_claims.signed_rank_p(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(1 / 32)
    assert evidence_claims.signed_rank_p(np.array([-1.0, -2, -3, -4, -5])) > 0.9
    better = np.array([[10.0], [11], [12], [13], [14]])
    assert V.win_rate(better - (better - 5.0)) == (1.0, 1.0, 1.0)
    assert V.win_rate(np.array([-1.0, -2, 0])) == pytest.approx((1 / 6, 0.0, 0.5))
    iqm, lo, hi = evidence_claims.iqm_ci(better)
    assert iqm == pytest.approx(12.0) and lo <= iqm <= hi


def _task(tmp_path, runs_by_method):
    root = tmp_path / "exp"
    for method, per_seed in runs_by_method.items():
        for seed, (evals, td) in enumerate(per_seed):
            switch = 5000 if method == "wsrl" else 0
            make_run(root, method, seed, evals, switch=switch, offline_td=td)
    evidence_curves.export_curves(root, tmp_path / "curves")
    return evidence_curves.load_task(tmp_path / "curves")


def test_claims_from_paired_seeds(tmp_path):
    wsrl = [([(5000, 40 + s), (10000, 35 + s), (15000, 60 + s)], [0, 1.0, 1.0]) for s in range(5)]
    # Without warmup: TD blows up on every seed, final lower on every seed.
    no_warm = [([(0, 40 + s), (5000, 10 + s), (15000, 30 + s)], [0, 50.0, 5.0]) for s in range(5)]
    sac = [([(0, 1.0), (5000, 5.0), (15000, 20 + s)], None) for s in range(5)]
    env_name, runs = _task(tmp_path, {"wsrl": wsrl, "wsrl-no-warmup": no_warm, "sac": sac})
    assert env_name == ENV
    items = {c["claim"][:4]: c for c in evidence_claims.claims({env_name: runs})}
    assert items["(1) "]["verdict"] == "holds"
    assert items["(3) "]["verdict"] == "holds"
    assert "50.00" in items["(3) "]["evidence"][0]  # the per-seed TD ratio 50 / 1
    assert items["(4a)"]["verdict"] == "holds"
    assert items["(4b)"]["verdict"] == "cannot tell"  # JSRL did not run
    table = evidence_claims.score_table({env_name: runs}, [10000])
    assert "5/5" in table  # WSRL higher than each baseline on every paired seed


def test_claim_3_fails_when_no_warmup_is_better_on_the_same_seed(tmp_path):
    wsrl = [([(5000, 40), (15000, 50)], [0, 10.0]) for _ in range(5)]
    no_warm = [([(0, 40), (15000, 70)], [0, 1.0]) for _ in range(5)]
    env_name, runs = _task(tmp_path, {"wsrl": wsrl, "wsrl-no-warmup": no_warm})
    items = {c["claim"][:4]: c for c in evidence_claims.claims({env_name: runs})}
    assert items["(3) "]["verdict"] == "does not hold"


def test_analyze_writes_tables_claims_and_figure(tmp_path):
    wsrl = [([(5000, 40 + s), (10000, 35), (15000, 60)], [0, 1.0, 1.0]) for s in range(3)]
    _task(tmp_path, {"wsrl": wsrl, "rlpd": wsrl})
    out = tmp_path / "out"
    assert main(["evidence", "analyze", str(tmp_path / "curves"), "--out", str(out)]) == 0
    assert (out / "curves.png").stat().st_size > 0
    assert "IQM" in (out / "claims.md").read_text()
    for budgets in ([], ["5000", "10000"]):  # every table row has as many cells as its header
        argv = ["evidence", "analyze", str(tmp_path / "curves"), "--out", str(out)]
        argv += ["--budgets", *budgets]
        assert main(argv if budgets else argv[:-1]) == 0
        for table in (out / "claims.md").read_text().split("\n\n"):
            rows = [r for r in table.splitlines() if r.startswith("|")]
            assert len({r.count("|") for r in rows}) <= 1, table
    assert main(["evidence", "analyze", str(tmp_path / "nothing"), "--out", str(out)]) == 2


# --- the verdict rules on hand-made numbers ------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "total", "verdict"),
    [
        (5, 5, V.HOLDS),
        (4, 5, V.HOLDS),
        (3, 5, V.CANNOT),
        (2, 5, V.CANNOT),
        (1, 5, V.FAILS),
        (0, 5, V.FAILS),
        (0, 0, V.CANNOT),
    ],
)
def test_per_seed_rule(count, total, verdict):
    assert V.per_seed(count, total) == verdict


def test_combining_tasks_and_the_budget():
    assert V.combine([V.HOLDS, V.HOLDS]) == V.HOLDS
    assert V.combine([V.HOLDS, V.FAILS, V.CANNOT_AT_BUDGET]) == V.FAILS
    assert V.combine([V.HOLDS, V.CANNOT_AT_BUDGET]) == V.CANNOT_AT_BUDGET
    assert V.combine([V.HOLDS, V.CANNOT]) == V.CANNOT
    assert V.within_budget(V.FAILS, 20_000) == V.CANNOT_AT_BUDGET
    assert V.within_budget(V.FAILS, V.RECOVERY_HORIZON) == V.FAILS
    assert V.within_budget(V.HOLDS, 20_000) == V.HOLDS  # a recovery seen early still counts


@pytest.mark.parametrize(
    ("differences", "superior", "non_inferior", "equivalent"),
    [
        ([10.0, 11, 12, 13, 14], V.HOLDS, V.HOLDS, V.FAILS),  # clearly better
        ([-20.0, -21, -22, -19, -20], V.FAILS, V.FAILS, V.FAILS),  # clearly worse
        ([0.5, -0.5, 1.0, -1.0, 0.0], V.CANNOT, V.HOLDS, V.HOLDS),  # the same, tightly
        ([-3.0, -4, -2, -3, -3], V.FAILS, V.HOLDS, V.HOLDS),  # worse, within the margin
        ([30.0, -30, 25, -28, 2], V.CANNOT, V.CANNOT, V.CANNOT),  # too noisy to tell
    ],
)
def test_comparison_rules_can_say_each_verdict(differences, superior, non_inferior, equivalent):
    mean, lo, hi = V.paired_bootstrap(np.array(differences))
    assert lo <= mean <= hi
    assert V.superiority(lo, hi) == superior
    assert V.non_inferiority(lo, hi) == non_inferior
    assert V.equivalence(lo, hi) == equivalent


def test_the_paired_bootstrap_resamples_pairs_within_tasks():
    """Two tasks on very different scales: resampling seed pairs within each task keeps every
    task in every draw, so the CI of the mean difference stays near the two tasks' mean; a
    constant difference has a zero-width CI (the pairing removes the seeds' own spread)."""
    d = np.array([[1.0, 101], [1, 101], [1, 101], [1, 101]])
    assert V.paired_bootstrap(d) == (51.0, 51.0, 51.0)
    seeds = np.array([10.0, 50, 90, 30, 70])  # seeds that differ a lot, WSRL 2 higher on each
    mean, lo, hi = V.paired_bootstrap((seeds + 2) - seeds)
    assert (mean, lo, hi) == (2.0, 2.0, 2.0)


def test_budgets_read_the_nearest_evaluation_of_an_offset_grid():
    """A method evaluated at 256 + 5k i is read at 10,256 for the 10k budget, not 5,256."""
    offset = evidence_curves.Run(
        "jsrl",
        0,
        256,
        np.array([0, 256, 5256, 10256, 15256]),
        np.array([0.0, 1, 5, 26, 30]),
        np.full(5, np.nan),
    )
    assert offset.at(10_000) == 26 and offset.step_at(10_000) == 10_256
    assert offset.at(5_000) == 5 and offset.at(12_756) == 30  # a tie: the later evaluation
    assert offset.horizon == 15_000
    assert offset.mean_after == pytest.approx(
        np.trapezoid([1, 5, 26, 30], [256, 5256, 10256, 15256]) / 15_000
    )


def test_claims_say_cannot_tell_at_this_budget_and_no_dip_to_compare(tmp_path):
    """WSRL falls after the switch and has not recovered 10k steps later: the recovery claim is
    undecided at that budget, not failed. When neither WSRL nor CQL dips, claim (2) cannot be
    decided by dips and reports the paired final and mean score after the switch instead."""
    wsrl = [([(5000, 40 + s), (10000, 20 + s), (15000, 25 + s)], [0, 1.0, 1.0]) for s in range(5)]
    flat = [([(5000, 40 + s), (10000, 41 + s), (15000, 42 + s)], [0, 1.0, 1.0]) for s in range(5)]
    env_name, runs = _task(tmp_path, {"wsrl": wsrl})
    items = {c["claim"][:4]: c for c in evidence_claims.claims({env_name: runs})}
    assert items["(1) "]["verdict"] == V.CANNOT_AT_BUDGET
    assert "10,000 env steps after the switch" in items["(1) "]["evidence"][0]
    env_name, runs = _task(tmp_path / "b", {"wsrl": flat, "cql": flat})
    items = {c["claim"][:4]: c for c in evidence_claims.claims({env_name: runs})}
    cql = next(c for c in evidence_claims.claims({env_name: runs}) if "CQL" in c["claim"])
    assert cql["verdict"] == V.CANNOT and "no dip to compare" in cql["evidence"][0]
    assert "final +0.0 [+0.0, +0.0]" in cql["evidence"][0]
    assert items["(1) "]["verdict"] == V.HOLDS
