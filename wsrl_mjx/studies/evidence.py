"""The evidence of an experiment: per-seed curve files, paired statistics, the claims, a figure.

Two steps, so every number can be recomputed from files committed with the results:

1. `export_curves` turns each finished run of an experiment's run dir into a small text file
   (`curves/<method>/seed<k>.tsv`, `curves/pretrain-<group>/seed<k>.tsv`): one row per
   evaluation with the return, the success rate (NaN for tasks without one), the normalized
   score (`wsrl_mjx.datasets.scores`: of the success rate for AntMaze), and the training diagnostics
   logged last before it (online Q and TD on training batches, Q and TD on the held-out
   offline rows).
2. `analyze` reads only those files (one folder per task) and writes the tables, the claims
   and the figure. Statistics: `rliable`'s IQM with stratified bootstrap confidence intervals;
   paired comparisons per seed (the difference to WSRL on the same seed, its bootstrap CI over
   resampled seed pairs, the paired share of seeds where WSRL is higher:
   `wsrl_mjx.studies.verdicts`, which also holds the verdict rules) and `scipy.stats`' Wilcoxon
   signed-rank test; means come with the sample standard deviation (ddof = 1). Budgets read each
   run's evaluation nearest them, and say so where a method's evaluation grid is offset.

Run: `python -m wsrl_mjx.run evidence export RUN_DIR OUT_DIR` and
`python -m wsrl_mjx.run evidence analyze OUT_DIR/<task> [OUT_DIR/<task> ...] --out OUT_DIR`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsrl_mjx.datasets import scores
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.rundir import git_commit
from wsrl_mjx.studies import verdicts as V

COLUMNS = (
    "env_steps",
    "eval_return",
    "eval_success",
    "normalized",
    "eval_length",
    "online_q",
    "online_td",
    "offline_q",
    "offline_td",
)
PRETRAIN_COLUMNS = (
    "gradient_steps",
    "eval_return",
    "eval_success",
    "normalized",
    "eval_length",
    "q_pred",
    "alpha",
)
TRAINING_PHASES_EXCLUDED = ("eval", "warmup", "q_trace")
BOOTSTRAP_REPS = 10_000  # rliable's stratified bootstrap; fixed seed below
CONFIDENCE = 0.95
REFERENCE = "wsrl"


# --- 1. curve files ------------------------------------------------------------------------------


def _evaluation(env_name: str, record: dict) -> list[float]:
    """eval_return, eval_success, normalized of a logged evaluation (NaN where there is none)."""
    score = scores.normalized_of(env_name, record, prefix="eval_")
    return [
        record["eval_return"],
        record.get("eval_success", math.nan),
        math.nan if score is None else score,
    ]


def _last_before(records: list[dict], step: int, key: str) -> float:
    values = [r[key] for r in records if r["env_steps"] <= step and key in r]
    return float(values[-1]) if values else math.nan


def finetune_curve(run_dir: Path, env_name: str) -> tuple[int, np.ndarray]:
    """(switch env step, rows of COLUMNS): one row per evaluation of a fine-tuning run. The
    switch is the env step of the first update (0 for methods that update from the start)."""
    records = read_metrics(run_dir)
    warmup = [r for r in records if r["phase"] == "warmup"]
    train = [r for r in records if r["phase"] not in TRAINING_PHASES_EXCLUDED]
    rows = []
    for e in (r for r in records if r["phase"] == "eval"):
        step = e["env_steps"]
        rows.append(
            [
                step,
                *_evaluation(env_name, e),
                e.get("eval_length", math.nan),
                _last_before(train, step, "q_pred"),
                _last_before(train, step, "td_loss"),
                _last_before(train, step, "offline_q"),
                _last_before(train, step, "offline_td"),
            ]
        )
    return (warmup[-1]["env_steps"] if warmup else 0), np.asarray(rows, dtype=np.float64)


def pretrain_curve(run_dir: Path, env_name: str) -> np.ndarray:
    records = read_metrics(run_dir)
    train = [r for r in records if r["phase"] == "pretrain"]
    rows = [
        [
            e["env_steps"],
            *_evaluation(env_name, e),
            e.get("eval_length", math.nan),
            _last_before(train, e["env_steps"], "q_pred"),
            _last_before(train, e["env_steps"], "alpha"),
        ]
        for e in records
        if e["phase"] == "eval"
    ]
    return np.asarray(rows, dtype=np.float64)


def write_curve(path: Path, header: dict, columns: tuple[str, ...], rows: np.ndarray) -> None:
    """A tab-separated file: `# key=value` lines, the column names, one row per evaluation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {k}={v}" for k, v in header.items()] + ["\t".join(columns)]
    lines += ["\t".join(f"{x:.6g}" for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def read_curve(path: Path) -> tuple[dict, np.ndarray]:
    """(header, {column: values}) of a file `write_curve` wrote."""
    header, names, rows = {}, None, []
    for line in Path(path).read_text().splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition("=")
            header[key] = value
        elif names is None:
            names = line.split("\t")
        elif line.strip():
            rows.append([float(x) for x in line.split("\t")])
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(names))
    return header, {name: table[:, i] for i, name in enumerate(names)}


def export_curves(run_dir: Path, out_dir: Path, commit: str = "") -> list[Path]:
    """Curve files of every finished run (a `done.json`) under an experiment's run dir."""
    written = []
    for done in sorted(Path(run_dir).glob("*/seed*/done.json")):
        run = done.parent
        config = _read_yaml(run / "config.yaml")
        env_name = config["env"]["name"]
        group, seed = run.parent.name, int(run.name.removeprefix("seed"))
        # The commit the run finished at (the experiment records it), else the one given.
        made_at = _read_done(done).get("commit") or commit
        header = {"env": env_name, "run": f"{group}/{run.name}", "seed": seed, "commit": made_at}
        target = out_dir / group / f"seed{seed}.tsv"
        if group.startswith("pretrain"):
            rows = pretrain_curve(run, env_name)
            header["algorithm"] = config["offline"]["algorithm"]
            write_curve(target, header, PRETRAIN_COLUMNS, rows)
        else:
            switch, rows = finetune_curve(run, env_name)
            header.update(method=group, switch_env_steps=switch)
            write_curve(target, header, COLUMNS, rows)
        written.append(target)
    return written


def _read_done(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _read_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


# --- 2. per-seed quantities ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One fine-tuning run read back from its curve file."""

    method: str
    seed: int
    switch: int
    steps: np.ndarray
    score: np.ndarray  # normalized where the env has references, else the return
    offline_td: np.ndarray

    def at(self, budget: float) -> float:
        """The evaluation nearest `budget` env steps (the later one on a tie): methods whose
        grids are offset (256 + 5k i, 1,024 + 5k i) are read at the same budget, not one
        evaluation behind; `step_at` says which evaluation was used."""
        return float(self.score[self._nearest(budget)]) if self.steps.size else math.nan

    def step_at(self, budget: float) -> float:
        return float(self.steps[self._nearest(budget)]) if self.steps.size else math.nan

    def _nearest(self, budget: float) -> int:
        distance = np.abs(self.steps - budget)
        return int(np.flatnonzero(distance == distance.min())[-1])

    @property
    def horizon(self) -> float:
        """Env steps the run went on after its switch."""
        return float(self.steps[-1] - self.switch)

    @property
    def mean_after(self) -> float:
        """The area under the score curve after the switch over its length: the mean score
        after the switch (trapezoids, so uneven grids weigh right)."""
        keep = self.steps >= self.switch
        steps, score = self.steps[keep], self.score[keep]
        if steps.size < 2:
            return float(score[-1]) if score.size else math.nan
        return float(np.trapezoid(score, steps) / (steps[-1] - steps[0]))

    @property
    def final(self) -> float:
        return float(self.score[-1])

    @property
    def at_switch(self) -> float:
        """The last evaluation at or before the switch (the offline policy's score)."""
        before = self.score[self.steps <= self.switch]
        return float(before[-1]) if before.size else math.nan

    @property
    def after(self) -> np.ndarray:
        return self.score[self.steps > self.switch]

    @property
    def dip(self) -> float:
        """How far below its switch score the run fell afterwards (0: never below)."""
        after = self.after
        return max(self.at_switch - float(after.min()), 0.0) if after.size else math.nan

    @property
    def back_at(self) -> float:
        """Env steps after the switch until the first evaluation at or above the switch score
        that follows the lowest point after the switch; only after a dip (NaN: no dip, or
        never back)."""
        after_steps, after = self.steps[self.steps > self.switch], self.after
        if not after.size or self.dip <= 0:
            return math.nan
        lowest = int(np.argmin(after))
        back = np.nonzero(after[lowest:] >= self.at_switch)[0]
        return float(after_steps[lowest + back[0]] - self.switch) if back.size else math.inf

    @property
    def max_offline_td(self) -> float:
        td = self.offline_td[(self.steps > self.switch) & np.isfinite(self.offline_td)]
        return float(td.max()) if td.size else math.nan


def load_task(task_dir: Path) -> tuple[str, dict[str, dict[int, Run]]]:
    """(env name, {method: {seed: Run}}) from a task's curve folder."""
    runs: dict[str, dict[int, Run]] = {}
    env_name = ""
    for path in sorted(Path(task_dir).glob("*/seed*.tsv")):
        header, curve = read_curve(path)
        if "method" not in header:  # a pre-training curve
            continue
        env_name = header["env"]
        run = Run(
            method=header["method"],
            seed=int(header["seed"]),
            switch=int(float(header["switch_env_steps"])),
            steps=curve["env_steps"],
            score=task_score(env_name, curve, path),
            offline_td=curve["offline_td"],
        )
        runs.setdefault(run.method, {})[run.seed] = run
    if not runs:
        raise FileNotFoundError(f"{task_dir}: no fine-tuning curve files (*/seed*.tsv)")
    return env_name, runs


def task_score(env_name: str, curve: dict, path: Path) -> np.ndarray:
    """The normalized score of each evaluation of a curve, recomputed from its metric column
    (wsrl_mjx.datasets.scores), or the return for envs without references."""
    refs = scores.references(env_name)
    if refs is None:
        return curve["eval_return"]
    column = f"eval_{refs.metric}"
    if column not in curve:
        raise ValueError(f"{path}: {env_name} is normalized from {column}, which the file lacks")
    return np.asarray([scores.normalize(refs, x) for x in curve[column]])


def paired(runs: dict[str, dict[int, Run]], a: str, b: str) -> list[int]:
    """The seeds both methods finished."""
    return sorted(set(runs.get(a, {})) & set(runs.get(b, {})))


# --- 3. statistics -------------------------------------------------------------------------------


def _rliable():
    from rliable import library as rly
    from rliable import metrics

    return rly, metrics


def iqm_ci(matrix: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """IQM of a [seeds, tasks] score matrix with its stratified bootstrap CI (rliable)."""
    rly, metrics = _rliable()
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


# --- 5. figure -----------------------------------------------------------------------------------


def figure(tasks: dict[str, dict], path: Path) -> Path:
    """Normalized score vs online env steps, one line per method with its 95 % bootstrap CI
    band of the mean over seeds (rliable), one panel per task plus the aggregate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rly, metrics = _rliable()
    panels = [*tasks.items(), ("aggregate (mean over tasks)", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    methods = list(next(iter(tasks.values())))
    for ax, (title, runs) in zip(axes[0], panels, strict=True):
        for method in methods:
            grid, matrix = _curve_matrix(tasks if runs is None else {title: runs}, method)
            if matrix is None:
                continue
            np.random.seed(0)
            point, ci = rly.get_interval_estimates(
                {"m": matrix},
                lambda x: np.array([metrics.aggregate_mean(x[:, :, t]) for t in range(x.shape[2])]),
                reps=2000,
            )
            (line,) = ax.plot(grid, point["m"], label=method)
            ax.fill_between(grid, ci["m"][0], ci["m"][1], color=line.get_color(), alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("online env steps")
        ax.set_ylabel("normalized score")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _curve_matrix(tasks: dict[str, dict], method: str):
    """(steps, [seeds, tasks, steps] scores at each evaluation step of the first run)."""
    if not all(method in runs for runs in tasks.values()):
        return None, None
    first = next(iter(next(iter(tasks.values()))[method].values()))
    grid = first.steps
    n = min(len(runs[method]) for runs in tasks.values())
    matrix = np.array(
        [
            [[run.at(step) for step in grid] for run in list(runs[method].values())[:n]]
            for runs in tasks.values()
        ]
    ).transpose(1, 0, 2)
    return grid, matrix


# --- command line --------------------------------------------------------------------------------


def analyze(task_dirs: list[Path], out_dir: Path, budgets: list[int]) -> dict:
    tasks = {}
    for d in task_dirs:
        env_name, runs = load_task(d)
        tasks[env_name] = runs
    items = claims(tasks)
    text = [
        "## Normalized score per task",
        "",
        score_table(tasks, budgets),
        "## Aggregate over tasks (final normalized score)",
        "",
        aggregate_table(tasks),
        "## The claims",
        "",
        claims_markdown(items),
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "claims.md").write_text("\n".join(text))
    (out_dir / "claims.json").write_text(json.dumps(items, indent=2))
    figure(tasks, out_dir / "curves.png")
    print("\n".join(text))
    return {"claims": items}


def run_evidence(args: argparse.Namespace) -> int:
    """`python -m wsrl_mjx.run evidence export|analyze ...` (its arguments: wsrl_mjx/run.py)."""
    try:
        if args.evidence_command == "export":
            written = export_curves(args.run_dir, args.out_dir, git_commit(args.run_dir))
            print(f"[evidence] {len(written)} curve files in {args.out_dir}")
        else:
            analyze(args.task_dirs, args.out, args.budgets)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
