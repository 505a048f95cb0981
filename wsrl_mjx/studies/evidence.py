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
import sys
from pathlib import Path

import numpy as np

from wsrl_mjx.runtime.rundir import git_commit
from wsrl_mjx.studies.evidence_claims import (
    aggregate_table,
    claims,
    claims_markdown,
    load_rliable,
    score_table,
)
from wsrl_mjx.studies.evidence_curves import export_curves, load_task

# --- 5. figure -----------------------------------------------------------------------------------


def figure(tasks: dict[str, dict], path: Path) -> Path:
    """Normalized score vs online env steps, one line per method with its 95 % bootstrap CI
    band of the mean over seeds (rliable), one panel per task plus the aggregate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rly, metrics = load_rliable()
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
    """`python -m wsrl_mjx.run evidence export|analyze ...` (arguments: wsrl_mjx/run/)."""
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
