"""The evidence of an experiment: per-seed curve files, paired statistics, the claims, a figure.

Two steps, so every number can be recomputed from files committed with the results:

1. `export_curves` turns each finished run of an experiment's run dir into a small text file
   (`curves/<method>/seed<k>.tsv`, `curves/pretrain-<group>/seed<k>.tsv`): one row per
   evaluation with the return, the success rate (NaN for tasks without one), the normalized
   score (`wsrl_mjx.scores`: of the success rate for AntMaze), and the training diagnostics
   logged last before it (online Q and TD on training batches, Q and TD on the held-out
   offline rows).
2. `analyze` reads only those files (one folder per task) and writes the tables, the claims
   and the figure. Statistics come from `rliable` (IQM with stratified bootstrap confidence
   intervals, probability of improvement) and `scipy.stats` (Wilcoxon signed-rank on paired
   seeds); means come with the sample standard deviation (ddof = 1).

Run: `python -m wsrl_mjx.evidence export RUN_DIR OUT_DIR` and
`python -m wsrl_mjx.evidence analyze OUT_DIR/<task> [OUT_DIR/<task> ...] --out OUT_DIR`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsrl_mjx import scores
from wsrl_mjx.logger import read_metrics
from wsrl_mjx.rundir import git_commit

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
        """The last evaluation at or before `budget` env steps (NaN if none)."""
        before = self.score[self.steps <= budget]
        return float(before[-1]) if before.size else math.nan

    @property
    def final(self) -> float:
        return float(self.score[-1])

    @property
    def at_switch(self) -> float:
        return self.at(self.switch)

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
    (wsrl_mjx.scores), or the return for envs without references."""
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


def improvement(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """P(X > Y) over [seeds, tasks] score matrices with its bootstrap CI (rliable)."""
    rly, metrics = _rliable()
    np.random.seed(seed)
    point, ci = rly.get_interval_estimates(
        {"p": (x, y)},
        metrics.probability_of_improvement,
        reps=BOOTSTRAP_REPS,
        confidence_interval_size=CONFIDENCE,
    )
    lo, hi = np.ravel(ci["p"])
    return float(point["p"]), float(lo), float(hi)


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
    """Per task: mean ± sample std at each budget and at the end, the paired difference to WSRL
    (mean, sign count, Wilcoxon p), the IQM with its 95 % CI and P(WSRL > method)."""
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
                    "P(WSRL > method) [95 % CI]",
                ]
            )
            + " |",
            "|---|---|" + "---|" * len(budgets) + "---|---|---|---|---|---|",
        ]
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
                p, plo, phi = improvement(
                    np.array([[runs[REFERENCE][s].final] for s in common]),
                    np.array([[by_seed[s].final] for s in common]),
                )
                row += (
                    f" | {d.mean():+.1f} | {int((d > 0).sum())}/{len(d)} | "
                    f"{_fmt(signed_rank_p(d), 3)} | {iqm:.1f} [{lo:.1f}, {hi:.1f}] | "
                    f"{p:.2f} [{plo:.2f}, {phi:.2f}] |"
                )
            else:
                row += f" | – | – | – | {iqm:.1f} [{lo:.1f}, {hi:.1f}] | – |"
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def aggregate_table(tasks: dict[str, dict]) -> str:
    """IQM over tasks x seeds of the final normalized score, and P(WSRL > method) over all."""
    methods = [m for m in next(iter(tasks.values())) if all(m in r for r in tasks.values())]
    lines = [
        "| method | IQM end [95 % CI] | P(WSRL > method) [95 % CI] |",
        "|---|---|---|",
    ]
    for method in methods:
        matrix = _matrix(tasks, method, method)
        iqm, lo, hi = iqm_ci(matrix)
        cell = "–"
        if method != REFERENCE:
            x, y = _matrix(tasks, REFERENCE, method), _matrix(tasks, method, REFERENCE)
            p, plo, phi = improvement(x, y)
            cell = f"{p:.2f} [{plo:.2f}, {phi:.2f}]"
        lines.append(f"| {method} | {iqm:.1f} [{lo:.1f}, {hi:.1f}] | {cell} |")
    return "\n".join(lines) + "\n"


def _matrix(tasks: dict[str, dict], method: str, partner: str) -> np.ndarray:
    """[seeds, tasks] final scores of `method` on the seeds it shares with `partner` per task
    (the seed count must be the same on every task for rliable's stratified bootstrap)."""
    columns = []
    for runs in tasks.values():
        seeds = paired(runs, method, partner) if method != partner else sorted(runs[method])
        columns.append([runs[method][s].final for s in seeds])
    n = min(len(c) for c in columns)
    return np.array([c[:n] for c in columns]).T


def _verdict(count: int, total: int) -> str:
    """Per-seed claims: holds in at least 4 of 5 seeds (80 %) on every task; does not hold
    when at most 1 of 5 (20 %) on some task; cannot tell otherwise."""
    if total == 0:
        return "cannot tell"
    share = count / total
    return "holds" if share >= 0.8 else "does not hold" if share <= 0.2 else "cannot tell"


def _combine(verdicts: list[str]) -> str:
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if verdicts and all(v == "holds" for v in verdicts) else "cannot tell"


def _poi_verdict(lo: float, hi: float, at_least: bool = False) -> str:
    """Comparisons: holds when the 95 % CI of P(WSRL > other) lies above 0.5 (for "at least as
    good": or contains it), does not hold when it lies below 0.5, cannot tell otherwise."""
    if lo > 0.5:
        return "holds"
    if hi < 0.5:
        return "does not hold"
    return "holds (no difference found)" if at_least else "cannot tell"


def claims(tasks: dict[str, dict]) -> list[dict]:
    """Each claim with its verdict and the per-task numbers that decide it."""
    out = []

    # (1) WSRL dips after the switch, recovers, and ends above its offline score.
    verdicts, evidence = [], []
    for env_name, runs in tasks.items():
        w = list(runs.get(REFERENCE, {}).values())
        dipped = sum(r.dip > 0 for r in w)
        back = sum(math.isfinite(r.back_at) for r in w)
        above = sum(r.final > r.at_switch for r in w)
        verdicts.append(_combine([_verdict(above, len(w))]))
        evidence.append(
            f"{env_name}: dipped in {dipped}/{len(w)} seeds (mean dip "
            f"{_fmt(np.mean([r.dip for r in w]) if w else math.nan)}), back after the dip in "
            f"{back}/{dipped}, final above the switch score in {above}/{len(w)} (switch "
            f"{_fmt(np.mean([r.at_switch for r in w]) if w else math.nan)} -> final "
            f"{_fmt(np.mean([r.final for r in w]) if w else math.nan)})"
        )
    out.append(
        {
            "claim": "(1) WSRL dips after the switch, recovers, and ends above its offline score",
            "verdict": _combine(verdicts),
            "rule": "ends above its switch score in >= 4/5 seeds on every task (dip and "
            "recovery reported, not required: a run that never dips has nothing to recover)",
            "evidence": evidence,
        }
    )

    # (2) No-retention CQL / CalQL / IQL dip and recover more slowly or not at all.
    for baseline in ("cql", "calql", "iql"):
        verdicts, evidence = [], []
        for env_name, runs in tasks.items():
            seeds = paired(runs, REFERENCE, baseline)
            slower = 0
            for s in seeds:
                w, b = runs[REFERENCE][s], runs[baseline][s]
                w_time = w.back_at if w.dip > 0 else 0.0  # no dip: nothing to recover
                b_time = b.back_at if b.dip > 0 else 0.0
                slower += (b.dip > w.dip) or (b_time > w_time)
            verdicts.append(_verdict(slower, len(seeds)))
            b_runs = [runs[baseline][s] for s in seeds]
            mean_dip = np.mean([r.dip for r in b_runs]) if b_runs else math.nan
            evidence.append(
                f"{env_name}: deeper dip or slower recovery than WSRL on the same seed in "
                f"{slower}/{len(seeds)}; {baseline} mean dip {_fmt(mean_dip)}, back after "
                f"{', '.join(_fmt(r.back_at, 0) for r in b_runs)} env steps"
            )
        out.append(
            {
                "claim": f"(2) no-retention {baseline.upper()} dips deeper or recovers more "
                "slowly than WSRL",
                "verdict": _combine(verdicts),
                "rule": "per seed against WSRL on the same seed; >= 4/5 seeds on every task",
                "evidence": evidence,
            }
        )

    # (3) Without warmup the held-out TD error blows up relative to WSRL and the final is lower.
    verdicts, evidence = [], []
    for env_name, runs in tasks.items():
        seeds = paired(runs, REFERENCE, "wsrl-no-warmup")
        ratios, lower = [], 0
        for s in seeds:
            w, n = runs[REFERENCE][s], runs["wsrl-no-warmup"][s]
            ratios.append(n.max_offline_td / w.max_offline_td)
            lower += n.final < w.final
        both = sum(r > 1 for r in ratios)
        verdicts += [_verdict(both, len(seeds)), _verdict(lower, len(seeds))]
        evidence.append(
            f"{env_name}: max held-out TD after the switch, no warmup / WSRL per seed: "
            f"{', '.join(_fmt(r, 2) for r in ratios)} (> 1 in {both}/{len(seeds)}); final "
            f"lower without warmup in {lower}/{len(seeds)}"
        )
    out.append(
        {
            "claim": "(3) without warmup the held-out offline TD error blows up relative to "
            "WSRL on the same seed, and the final score is lower",
            "verdict": _combine(verdicts),
            "rule": "TD ratio > 1 and final lower, each in >= 4/5 paired seeds on every task",
            "evidence": evidence,
        }
    )

    # (4) WSRL >= SAC from scratch and >= JSRL; (5) WSRL ~ RLPD without keeping the data.
    for other, label, at_least in (
        ("sac", "(4a) WSRL >= SAC from scratch", True),
        ("jsrl", "(4b) WSRL >= JSRL", True),
        ("rlpd", "(5) WSRL ~ RLPD without keeping the data", True),
    ):
        if not all(paired(r, REFERENCE, other) for r in tasks.values()):
            out.append(
                {
                    "claim": label,
                    "verdict": "cannot tell",
                    "rule": "",
                    "evidence": [f"{other} has not finished on every task"],
                }
            )
            continue
        p, lo, hi = improvement(_matrix(tasks, REFERENCE, other), _matrix(tasks, other, REFERENCE))
        out.append(
            {
                "claim": label,
                "verdict": _poi_verdict(lo, hi, at_least),
                "rule": "P(WSRL > other) at the end over tasks x paired seeds (rliable): holds "
                "when its 95 % CI lies above 0.5, or contains it for 'at least as good' / '~'",
                "evidence": [f"P(WSRL > {other}) = {p:.2f} [{lo:.2f}, {hi:.2f}]"],
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsrl_mjx.evidence", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="curve files of an experiment's finished runs")
    ex.add_argument("run_dir", type=Path)
    ex.add_argument("out_dir", type=Path)
    an = sub.add_parser("analyze", help="tables, claims and the figure from curve folders")
    an.add_argument("task_dirs", type=Path, nargs="+")
    an.add_argument("--out", type=Path, required=True)
    an.add_argument("--budgets", type=int, nargs="*", default=[])
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            written = export_curves(args.run_dir, args.out_dir, git_commit(args.run_dir))
            print(f"[evidence] {len(written)} curve files in {args.out_dir}")
        else:
            analyze(args.task_dirs, args.out, args.budgets)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
