"""wsrl_mjx/evidence.py on hand-made run directories: curve files, per-seed quantities, claims."""

import json
import math

import numpy as np
import pytest
import yaml

from wsrl_mjx import evidence, scores

ENV = "Hopper-v5"
REFS = scores.references(ENV)


@pytest.fixture(autouse=True)
def fewer_bootstrap_draws(monkeypatch):
    monkeypatch.setattr(evidence, "BOOTSTRAP_REPS", 1000)


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
    written = evidence.export_curves(tmp_path / "exp", tmp_path / "curves", commit="later")
    commits = [evidence.read_curve(p)[0]["commit"] for p in written]
    assert commits == ["later", "c0ffee"]


def test_curve_file_round_trip_and_normalized_scores(tmp_path):
    make_run(
        tmp_path / "exp",
        "wsrl",
        0,
        [(5000, 40.0), (10000, 30.0), (15000, 55.0)],
        switch=5000,
        offline_td=[0.0, 2.0, 3.0],
    )
    written = evidence.export_curves(tmp_path / "exp", tmp_path / "curves", commit="abc123")
    assert [p.relative_to(tmp_path / "curves").as_posix() for p in written] == ["wsrl/seed0.tsv"]
    header, curve = evidence.read_curve(written[0])
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
    return evidence.Run(
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
    m, sd = evidence.mean_std(np.array([1.0, 2.0, 3.0, 4.0]))
    assert m == 2.5 and sd == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert math.isnan(evidence.mean_std(np.array([1.0]))[1])


def test_signed_rank_and_improvement_directions():
    assert evidence.signed_rank_p(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(1 / 32)
    assert evidence.signed_rank_p(np.array([-1.0, -2, -3, -4, -5])) > 0.9
    better = np.array([[10.0], [11], [12], [13], [14]])
    worse = better - 5.0
    p, lo, hi = evidence.improvement(better, worse)
    assert p == 1.0 and lo == 1.0
    p, lo, hi = evidence.improvement(worse, better)
    assert p == 0.0 and hi == 0.0
    iqm, lo, hi = evidence.iqm_ci(better)
    assert iqm == pytest.approx(12.0) and lo <= iqm <= hi


def _task(tmp_path, runs_by_method):
    root = tmp_path / "exp"
    for method, per_seed in runs_by_method.items():
        for seed, (evals, td) in enumerate(per_seed):
            switch = 5000 if method == "wsrl" else 0
            make_run(root, method, seed, evals, switch=switch, offline_td=td)
    evidence.export_curves(root, tmp_path / "curves")
    return evidence.load_task(tmp_path / "curves")


def test_claims_from_paired_seeds(tmp_path):
    wsrl = [([(5000, 40 + s), (10000, 35 + s), (15000, 60 + s)], [0, 1.0, 1.0]) for s in range(5)]
    # Without warmup: TD blows up on every seed, final lower on every seed.
    no_warm = [([(0, 40 + s), (5000, 10 + s), (15000, 30 + s)], [0, 50.0, 5.0]) for s in range(5)]
    sac = [([(0, 1.0), (5000, 5.0), (15000, 20 + s)], None) for s in range(5)]
    env_name, runs = _task(tmp_path, {"wsrl": wsrl, "wsrl-no-warmup": no_warm, "sac": sac})
    assert env_name == ENV
    items = {c["claim"][:4]: c for c in evidence.claims({env_name: runs})}
    assert items["(1) "]["verdict"] == "holds"
    assert items["(3) "]["verdict"] == "holds"
    assert "50.00" in items["(3) "]["evidence"][0]  # the per-seed TD ratio 50 / 1
    assert items["(4a)"]["verdict"] == "holds"
    assert items["(4b)"]["verdict"] == "cannot tell"  # JSRL did not run
    table = evidence.score_table({env_name: runs}, [10000])
    assert "5/5" in table  # WSRL higher than each baseline on every paired seed


def test_claim_3_fails_when_no_warmup_is_better_on_the_same_seed(tmp_path):
    wsrl = [([(5000, 40), (15000, 50)], [0, 10.0]) for _ in range(5)]
    no_warm = [([(0, 40), (15000, 70)], [0, 1.0]) for _ in range(5)]
    env_name, runs = _task(tmp_path, {"wsrl": wsrl, "wsrl-no-warmup": no_warm})
    items = {c["claim"][:4]: c for c in evidence.claims({env_name: runs})}
    assert items["(3) "]["verdict"] == "does not hold"


def test_analyze_writes_tables_claims_and_figure(tmp_path):
    wsrl = [([(5000, 40 + s), (10000, 35), (15000, 60)], [0, 1.0, 1.0]) for s in range(3)]
    _task(tmp_path, {"wsrl": wsrl, "rlpd": wsrl})
    out = tmp_path / "out"
    assert evidence.main(["analyze", str(tmp_path / "curves"), "--out", str(out)]) == 0
    assert (out / "curves.png").stat().st_size > 0
    assert "IQM" in (out / "claims.md").read_text()
    for budgets in ([], ["5000", "10000"]):  # every table row has as many cells as its header
        argv = ["analyze", str(tmp_path / "curves"), "--out", str(out), "--budgets", *budgets]
        assert evidence.main(argv if budgets else argv[:-1]) == 0
        for table in (out / "claims.md").read_text().split("\n\n"):
            rows = [r for r in table.splitlines() if r.startswith("|")]
            assert len({r.count("|") for r in rows}) <= 1, table
    assert evidence.main(["analyze", str(tmp_path / "nothing"), "--out", str(out)]) == 2
