"""The evidence's statistics, tables and claims (`wsrl_mjx.studies.evidence`, step 2): IQM with
stratified bootstrap CIs (rliable), the Wilcoxon signed-rank test, mean and sample std; the
per-task and aggregate tables; each claim with its verdict (its rules:
`wsrl_mjx.studies.verdicts`)."""

from __future__ import annotations

import math

import numpy as np

from wsrl_mjx.studies import verdicts as V
from wsrl_mjx.studies.evidence_curves import paired

BOOTSTRAP_REPS = 10_000  # rliable's stratified bootstrap; fixed seed below
CONFIDENCE = 0.95
REFERENCE = "wsrl"

# --- 3. statistics -------------------------------------------------------------------------------


def load_rliable():
    from rliable import library as rly
    from rliable import metrics

    return rly, metrics


def iqm_ci(matrix: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """IQM of a [seeds, tasks] score matrix with its stratified bootstrap CI (rliable)."""
    rly, metrics = load_rliable()
    np.random.seed(seed)  # rliable draws from numpy's global generator
    point, ci = rly.get_interval_estimates(
        {"m": matrix},
        lambda x: np.array([metrics.aggregate_iqm(x)]),
        reps=BOOTSTRAP_REPS,
        confidence_interval_size=CONFIDENCE,
    )
    return float(point["m"][0]), float(ci["m"][0, 0]), float(ci["m"][1, 0])


def signed_rank_p(differences: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value that the paired differences are > 0 (NaN with
    fewer than 2 non-zero differences)."""
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=np.float64)
    if np.count_nonzero(d) < 2:
        return math.nan
    return float(wilcoxon(d, alternative="greater").pvalue)


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


# --- 4. tables and claims ------------------------------------------------------------------------


def _fmt(x: float, digits: int = 1) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return "never" if x == math.inf else f"{x:.{digits}f}"


def score_table(tasks: dict[str, dict], budgets: list[int]) -> str:
    """Per task: mean ± sample std at each budget (the nearest evaluation, said where a grid is
    offset) and at the end, the paired difference to WSRL (mean, sign count, Wilcoxon p), the
    IQM with its 95 % CI and the paired share of seeds where WSRL is higher, with its CI."""
    lines = []
    for env_name, runs in tasks.items():
        lines += [
            f"### {env_name}",
            "",
            "| "
            + " | ".join(
                [
                    "method",
                    "seeds",
                    *(f"{b:,} steps" for b in budgets),
                    "end",
                    "WSRL − method at the end (paired)",
                    "WSRL higher in",
                    "one-sided p",
                    "IQM end [95 % CI]",
                    "WSRL higher, paired [95 % CI]",
                ]
            )
            + " |",
            "|---|---|" + "---|" * len(budgets) + "---|---|---|---|---|---|",
        ]
        notes: list[str] = []
        for method, by_seed in runs.items():
            seeds = sorted(by_seed)
            cells = []
            for b in [*budgets, None]:
                values = np.array(
                    [by_seed[s].final if b is None else by_seed[s].at(b) for s in seeds]
                )
                m, sd = mean_std(values)
                cells.append(f"{_fmt(m)} ± {_fmt(sd)}")
            final = np.array([[by_seed[s].final] for s in seeds])
            iqm, lo, hi = iqm_ci(final)
            row = f"| {method} | {len(seeds)} | " + " | ".join(cells)
            common = paired(runs, REFERENCE, method)
            if method != REFERENCE and len(common) >= 2:
                d = np.array([runs[REFERENCE][s].final - by_seed[s].final for s in common])
                p, plo, phi = V.win_rate(d)
                row += (
                    f" | {d.mean():+.1f} | {int((d > 0).sum())}/{len(d)} | "
                    f"{_fmt(signed_rank_p(d), 3)} | {iqm:.1f} [{lo:.1f}, {hi:.1f}] | "
                    f"{p:.2f} [{plo:.2f}, {phi:.2f}] |"
                )
            else:
                row += f" | – | – | – | {iqm:.1f} [{lo:.1f}, {hi:.1f}] | – |"
            lines.append(row)
            offsets = [abs(by_seed[s].step_at(b) - b) for s in seeds for b in budgets]
            if offsets and max(offsets) > 0:
                notes.append(
                    f"{method}: no evaluation on the grid; its nearest one is used, at most "
                    f"{max(offsets):,.0f} env steps from the budget"
                )
        lines += ["", *(f"- {n}" for n in notes)] if notes else []
        lines.append("")
    return "\n".join(lines)


def aggregate_table(tasks: dict[str, dict]) -> str:
    """IQM over tasks x seeds of the final normalized score (rliable), and against WSRL the
    paired final difference and the paired share of seeds where WSRL is higher (`verdicts`)."""
    methods = [m for m in next(iter(tasks.values())) if all(m in r for r in tasks.values())]
    lines = [
        "| method | IQM end [95 % CI] | WSRL − method, paired [95 % CI] | WSRL higher, paired "
        "[95 % CI] |",
        "|---|---|---|---|",
    ]
    for method in methods:
        columns = [[r.final for r in runs[method].values()] for runs in tasks.values()]
        n = min(len(c) for c in columns)
        iqm, lo, hi = iqm_ci(np.array([c[:n] for c in columns]).T)
        cells = "– | –"
        d = paired_differences(tasks, method) if method != REFERENCE else None
        if d is not None:
            mean, dlo, dhi = V.paired_bootstrap(d)
            p, plo, phi = V.win_rate(d)
            cells = f"{mean:+.1f} [{dlo:+.1f}, {dhi:+.1f}] | {p:.2f} [{plo:.2f}, {phi:.2f}]"
        lines.append(f"| {method} | {iqm:.1f} [{lo:.1f}, {hi:.1f}] | {cells} |")
    return "\n".join(lines) + "\n"


def paired_differences(tasks: dict[str, dict], other: str, value=lambda r: r.final):
    """[seeds, tasks] of value(WSRL) - value(other) on the seeds both finished (the same count
    on every task, for the stratified resampling), or None when `other` misses a task."""
    columns = []
    for runs in tasks.values():
        seeds = paired(runs, REFERENCE, other)
        if not seeds:
            return None
        columns.append([value(runs[REFERENCE][s]) - value(runs[other][s]) for s in seeds])
    n = min(len(c) for c in columns)
    return np.array([c[:n] for c in columns]).T


def _ci(label: str, mean: float, lo: float, hi: float) -> str:
    return f"{label} {mean:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def claims(tasks: dict[str, dict]) -> list[dict]:
    """Each claim with its verdict (`wsrl_mjx.studies.verdicts`) and the per-task numbers behind
    it."""
    out = []

    # (1) WSRL dips after the switch, recovers, and ends above its offline score.
    parts, evidence = [], []
    for env_name, runs in tasks.items():
        w = list(runs.get(REFERENCE, {}).values())
        dipped = sum(r.dip > 0 for r in w)
        back = sum(math.isfinite(r.back_at) for r in w)
        above = sum(r.final > r.at_switch for r in w)
        horizon = min((r.horizon for r in w), default=0.0)
        parts.append(V.within_budget(V.per_seed(above, len(w)), horizon))
        evidence.append(
            f"{env_name}: dipped in {dipped}/{len(w)} seeds (mean dip "
            f"{_fmt(np.mean([r.dip for r in w]) if w else math.nan)}), back after the dip in "
            f"{back}/{dipped}, final above the switch score in {above}/{len(w)} (switch "
            f"{_fmt(np.mean([r.at_switch for r in w]) if w else math.nan)} -> final "
            f"{_fmt(np.mean([r.final for r in w]) if w else math.nan)}); "
            f"{horizon:,.0f} env steps after the switch (recovery window: "
            f"{V.RECOVERY_HORIZON:,})"
        )
    out.append(
        {
            "claim": "(1) WSRL dips after the switch, recovers, and ends above its offline score",
            "verdict": V.combine(parts),
            "rule": "ends above its switch score in >= 4/5 seeds on every task (dip and "
            "recovery reported, not required: a run that never dips has nothing to recover); "
            f"it can fail only on runs of >= {V.RECOVERY_HORIZON:,} env steps after the switch",
            "evidence": evidence,
        }
    )

    # (2) No-retention CQL / CalQL / IQL dip deeper or recover more slowly than WSRL.
    for baseline in ("cql", "calql", "iql"):
        parts, evidence = [], []
        for env_name, runs in tasks.items():
            seeds = paired(runs, REFERENCE, baseline)
            slower = dips = 0
            for s in seeds:
                w, b = runs[REFERENCE][s], runs[baseline][s]
                dips += w.dip > 0 or b.dip > 0
                w_time = w.back_at if w.dip > 0 else 0.0  # no dip: nothing to recover
                b_time = b.back_at if b.dip > 0 else 0.0
                slower += (b.dip > w.dip) or (b_time > w_time)
            horizon = min((runs[REFERENCE][s].horizon for s in seeds), default=0.0)
            if seeds and V.per_seed(dips, len(seeds)) == V.FAILS:
                parts.append(V.CANNOT)  # neither dips: no dip or recovery to compare
                dip_note = f"no dip to compare (either dips on {dips}/{len(seeds)} seeds)"
            else:
                parts.append(V.within_budget(V.per_seed(slower, len(seeds)), horizon))
                dip_note = f"deeper dip or slower recovery on {slower}/{len(seeds)} seeds"
            one = {env_name: runs}
            final = paired_differences(one, baseline)
            area = paired_differences(one, baseline, lambda r: r.mean_after)
            numbers = ""
            if final is not None:
                numbers = (
                    "; WSRL - baseline, paired: "
                    + _ci("final", *V.paired_bootstrap(final))
                    + ", "
                    + _ci("mean score after the switch", *V.paired_bootstrap(area))
                )
            evidence.append(f"{env_name}: {dip_note}{numbers}")
        out.append(
            {
                "claim": f"(2) no-retention {baseline.upper()} dips deeper or recovers more "
                "slowly than WSRL",
                "verdict": V.combine(parts),
                "rule": "per seed against WSRL on the same seed; >= 4/5 seeds on every task; "
                "a task where neither dips (<= 1/5 seeds) cannot decide it (the paired final "
                "and mean score after the switch are reported instead); it can fail only on "
                f"runs of >= {V.RECOVERY_HORIZON:,} env steps after the switch",
                "evidence": evidence,
            }
        )

    # (3) Without warmup the held-out TD error blows up relative to WSRL and the final is lower.
    parts, evidence = [], []
    for env_name, runs in tasks.items():
        seeds = paired(runs, REFERENCE, "wsrl-no-warmup")
        ratios, lower = [], 0
        for s in seeds:
            w, n = runs[REFERENCE][s], runs["wsrl-no-warmup"][s]
            ratios.append(n.max_offline_td / w.max_offline_td)
            lower += n.final < w.final
        both = sum(r > 1 for r in ratios)
        parts += [V.per_seed(both, len(seeds)), V.per_seed(lower, len(seeds))]
        evidence.append(
            f"{env_name}: max held-out TD after the switch, no warmup / WSRL per seed: "
            f"{', '.join(_fmt(r, 2) for r in ratios)} (> 1 in {both}/{len(seeds)}); final "
            f"lower without warmup in {lower}/{len(seeds)}"
        )
    out.append(
        {
            "claim": "(3) without warmup the held-out offline TD error blows up relative to "
            "WSRL on the same seed, and the final score is lower",
            "verdict": V.combine(parts),
            "rule": "TD ratio > 1 and final lower, each in >= 4/5 paired seeds on every task",
            "evidence": evidence,
        }
    )

    # (4) WSRL >= SAC from scratch and >= JSRL; (5) WSRL ~ RLPD without keeping the data.
    for other, label, rule in (
        ("sac", "(4a) WSRL >= SAC from scratch", V.non_inferiority),
        ("jsrl", "(4b) WSRL >= JSRL", V.non_inferiority),
        ("rlpd", "(5) WSRL ~ RLPD without keeping the data", V.equivalence),
    ):
        d = paired_differences(tasks, other)
        if d is None:
            out.append(
                {
                    "claim": label,
                    "verdict": V.CANNOT,
                    "rule": "",
                    "evidence": [f"{other} has not finished on every task"],
                }
            )
            continue
        mean, lo, hi = V.paired_bootstrap(d)
        wins, wlo, whi = V.win_rate(d)
        kind = "non-inferiority" if rule is V.non_inferiority else "equivalence"
        out.append(
            {
                "claim": label,
                "verdict": rule(lo, hi),
                "rule": f"{kind} of the paired final difference WSRL - {other} (mean over "
                f"tasks x seeds, percentile bootstrap over seed pairs within each task) with a "
                f"margin of {V.MARGIN:g} normalized points",
                "evidence": [
                    _ci(f"WSRL - {other}", mean, lo, hi)
                    + f" over {d.size} paired runs; WSRL higher in {wins:.0%} of the pairs "
                    f"[{wlo:.0%}, {whi:.0%}]"
                ],
            }
        )
    return out


def claims_markdown(items: list[dict]) -> str:
    lines = ["| claim | verdict | what decides it |", "|---|---|---|"]
    for c in items:
        lines.append(f"| {c['claim']} | **{c['verdict']}** | {'<br>'.join(c['evidence'])} |")
    lines += ["", "Rules:", ""] + [f"- {c['claim']}: {c['rule']}" for c in items if c["rule"]]
    return "\n".join(lines) + "\n"
