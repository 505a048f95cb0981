"""Learning curves and downward-spiral diagnostics to PNG, several runs overlaid."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wsrl_mjx.config import ConfigError  # noqa: E402
from wsrl_mjx.runtime.logger import read_metrics  # noqa: E402

PANELS = (
    ("eval", "eval_return", "evaluation return"),
    ("online", "q_pred", "online batch: mean Q"),
    ("online", "q_target", "online batch: mean target Q"),
    ("online", "td_loss", "online batch: TD error"),
    ("online", "offline_q", "held-out offline batch: mean Q"),
    ("online", "offline_td", "held-out offline batch: TD error"),
)
LOG_SCALE = {"td_loss", "offline_td"}


def _series(records: list[dict], phase: str, key: str) -> tuple[list, list]:
    """Phase "online" matches any update phase (online, finetune-*, behaviour)."""
    rows = [
        r
        for r in records
        if key in r
        and (
            r["phase"] == phase
            or (phase == "online" and r["phase"] not in ("eval", "warmup", "q_trace", "pretrain"))
        )
    ]
    return [r["env_steps"] for r in rows], [r[key] for r in rows]


def label_of(run_dir: Path) -> str:
    return run_dir.name if run_dir.name not in PIPELINE_PHASES else str(run_dir)


def _q_trace(records: list[dict]) -> tuple[list, list]:
    steps, q = [], []
    for r in records:
        if r["phase"] == "q_trace":
            steps += r["steps"]
            q += r["q_pred"]
    return steps, q


def _draw(ax, curves: list[tuple[list, list]], label: str, marker: str | None, color: str) -> None:
    """One line per group: the mean over runs (on their common x prefix), min-max shaded."""
    curves = [(x, y) for x, y in curves if x]
    if not curves:
        return
    n = min(len(x) for x, _ in curves)
    x = np.asarray(curves[0][0][:n], float)
    y = np.asarray([c[1][:n] for c in curves], float)
    ax.plot(x, y.mean(0), label=label, marker=marker, linewidth=1.0, color=color)
    if len(curves) > 1:
        ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.2)


PIPELINE_PHASES = ("behaviour", "pretrain", "finetune")


def expand_run_dirs(run_dirs: list[str | Path]) -> list[Path]:
    """Run directories as given; a pipeline's directory stands for its phases' runs."""
    out = []
    for d in map(Path, run_dirs):
        if (d / "metrics.jsonl").is_file():
            out.append(d)
            continue
        phases = [d / p for p in PIPELINE_PHASES if (d / p / "metrics.jsonl").is_file()]
        if not phases:
            raise ConfigError(
                f"{d}: no metrics.jsonl there, nor in a pipeline phase folder "
                f"({', '.join(PIPELINE_PHASES)}); pass a run directory"
            )
        out += phases
    return out


def plot_runs(run_dirs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """Each run its own line; a pipeline directory draws its behaviour, pretrain and
    finetune runs."""
    dirs = expand_run_dirs(run_dirs)
    labels = labels or [label_of(d) for d in dirs]
    if len(labels) != len(dirs):
        raise ConfigError(f"--labels: {len(labels)} labels for {len(dirs)} runs")
    return plot_groups({label: [d] for label, d in zip(labels, dirs, strict=True)}, out)


def plot_groups(groups: dict[str, list[str | Path]], out: str | Path) -> Path:
    """One figure: eval return, online Q / target / TD, offline Q / TD, dense Q trace; each
    group (e.g. a method over seeds) is drawn as its mean with the min-max range shaded."""
    fig = draw_groups(groups)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw_groups(groups: dict[str, list[str | Path]]) -> plt.Figure:
    runs = {label: [read_metrics(d) for d in dirs] for label, dirs in groups.items()}
    # One colour per group in every panel, even where a group logged nothing (one legend).
    colors = {label: f"C{i % 10}" for i, label in enumerate(runs)}
    pretraining = any(r["phase"] == "pretrain" for recs in runs.values() for rs in recs for r in rs)
    xlabel = "env steps (pre-training: gradient steps)" if pretraining else "env steps"
    fig, axes = plt.subplots(2, 4, figsize=(20, 8.5))
    axes = axes.ravel()
    for ax, (phase, key, title) in zip(axes, PANELS, strict=False):
        for label, records in runs.items():
            marker = "." if phase == "eval" else None
            _draw(ax, [_series(r, phase, key) for r in records], label, marker, colors[label])
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if key in LOG_SCALE:
            ax.set_yscale("log")
    trace_ax = axes[len(PANELS)]
    for label, records in runs.items():
        _draw(trace_ax, [_q_trace(r) for r in records], label, None, colors[label])
    trace_ax.set_title("dense Q trace (every vector step)")
    trace_ax.set_xlabel(xlabel)
    for ax in axes[: len(PANELS) + 1]:
        if not ax.lines:  # e.g. the held-out panels of runs that did not log one
            ax.set_yscale("linear")
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", transform=ax.transAxes)
    for ax in axes[len(PANELS) + 1 :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colors[label], label=label) for label in runs]
    fig.legend(handles=handles, loc="lower right", fontsize=9)
    fig.tight_layout()
    return fig
