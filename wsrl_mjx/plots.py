"""Learning curves and downward-spiral diagnostics to PNG, several runs overlaid."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wsrl_mjx.logger import read_metrics  # noqa: E402

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
    return run_dir.name if run_dir.name not in ("finetune", "pretrain") else str(run_dir)


def plot_runs(run_dirs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """One figure: eval return, online Q / target / TD, offline Q / TD, dense Q trace."""
    runs = [(Path(d), read_metrics(d)) for d in run_dirs]
    labels = labels or [label_of(d) for d, _ in runs]
    fig, axes = plt.subplots(2, 4, figsize=(20, 8.5))
    axes = axes.ravel()
    for ax, (phase, key, title) in zip(axes, PANELS, strict=False):
        for (_, records), label in zip(runs, labels, strict=True):
            x, y = _series(records, phase, key)
            if x:
                ax.plot(x, y, label=label, marker="." if phase == "eval" else None)
        ax.set_title(title)
        ax.set_xlabel("env steps")
        if key in LOG_SCALE:
            ax.set_yscale("log")
    trace_ax = axes[len(PANELS)]
    for (_, records), label in zip(runs, labels, strict=True):
        steps, q = [], []
        for r in records:
            if r["phase"] == "q_trace":
                steps += r["steps"]
                q += r["q_pred"]
        if steps:
            trace_ax.plot(steps, q, label=label, linewidth=0.8)
    trace_ax.set_title("dense Q trace (every vector step)")
    trace_ax.set_xlabel("env steps")
    for ax in axes[len(PANELS) + 1 :]:
        ax.axis("off")
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="lower right", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
