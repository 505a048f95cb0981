"""What an experiment writes from its finished runs: results.json/.md (scores at the env-step
budgets), report.md (each pre-training's state at the switch and each method's run around it)
and curves.png."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from wsrl_mjx.config import ConfigError, read_yaml
from wsrl_mjx.datasets.scores import normalized_of, references
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.policy import from_dict
from wsrl_mjx.studies.experiment_spec import (
    DONE_FILE,
    Experiment,
    pretrain_dir,
    pretrain_groups,
    read_record,
)
from wsrl_mjx.studies.plots import plot_groups


def finished_runs(exp: Experiment) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(fine-tuning runs, pre-trainings) of `exp` that hold a done file."""
    groups = pretrain_groups(exp)
    done = lambda d: (d / DONE_FILE).is_file()  # noqa: E731
    runs = {
        name: [d for s in exp.seeds if done(d := exp.run_dir / name / f"seed{s}")]
        for name in exp.methods
    }
    pretrained: dict[str, list[Path]] = {}
    for group, _ in groups.values():
        dirs = [d for s in exp.seeds if done(d := pretrain_dir(exp, group, s))]
        pretrained[group] = dirs
    runs = {name: dirs for name, dirs in runs.items() if dirs}
    if not runs:
        raise ConfigError(f"{exp.run_dir}: no finished run to report yet")
    return runs, pretrained


def write_outputs(exp: Experiment, runs: dict, pretrained: dict) -> dict:
    """results.json/.md (scores at budgets), report.md (the switch) and curves.png."""
    dataset = exp.dataset or str(exp.run_dir / "behaviour")
    seeds = sorted({int(d.name.removeprefix("seed")) for dirs in runs.values() for d in dirs})
    table = results_table(runs, exp.budgets)
    record = {"title": exp.title, "dataset": dataset, "seeds": seeds, "table": table}
    out = exp.run_dir / exp.outputs
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(record, indent=2))
    markdown = results_markdown(exp, table, runs)
    (out / "results.md").write_text(markdown)
    report = switch_report(exp, runs, pretrained)
    (out / "report.md").write_text(report)
    plot = plot_groups(runs, out / "curves.png")
    print(markdown)
    print(report)
    print(f"[experiment] tables: {out / 'results.md'}, {out / 'report.md'}; plots: {plot}")
    return {"table": table, "runs": {k: [str(p) for p in v] for k, v in runs.items()}}


def eval_at(records: list[dict], budget: int, key: str = "eval_return") -> float:
    """`key` of the last evaluation at or before `budget` env steps (NaN if none, or if it
    lacks `key`: a task without a success rate)."""
    evals = [r for r in records if r["phase"] == "eval" and r["env_steps"] <= budget]
    return evals[-1].get(key, math.nan) if evals else math.nan


def results_table(runs: dict[str, list[Path]], budgets: tuple[int, ...]) -> dict:
    """{method: {budget or "final": {mean, std, min, max, seeds, success_seeds}}}: statistics of
    the returns (`seeds`: per seed) and each seed's success rate (NaN for tasks without one);
    "final" is each run's last evaluation (methods with a warmup may end a few steps past the
    others)."""
    table = {}
    for name, dirs in runs.items():
        records = [read_metrics(d) for d in dirs]
        ends = [
            max((r["env_steps"] for r in rec if r["phase"] == "eval"), default=None)
            for rec in records
        ]
        if None in ends:
            raise ConfigError(
                f"{dirs[ends.index(None)]} logged no evaluation: is the run complete?"
            )
        row = {}
        for budget, column in [*((b, str(b)) for b in budgets), (max(ends), "final")]:
            values = np.array([eval_at(r, budget) for r in records])
            row[column] = {
                "mean": float(np.mean(values)),
                # Sample standard deviation over seeds (NaN for one seed).
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                "min": float(np.min(values)),
                "max": float(np.max(values)),
                "seeds": values.tolist(),
                "success_seeds": [eval_at(r, budget, "eval_success") for r in records],
            }
        row["final"]["env_steps"] = ends
        table[name] = row
    return table


def results_markdown(exp: Experiment, table: dict, runs: dict | None = None) -> str:
    columns = list(next(iter(table.values())))
    seeds = {name: len(row["final"]["seeds"]) for name, row in table.items()}
    partial = [f"{n} ({k} of {len(exp.seeds)})" for n, k in seeds.items() if k < len(exp.seeds)]
    lines = [
        f"# {exp.title}",
        "",
        f"Evaluation return (mean ± sample std over seeds {list(exp.seeds)}, deterministic policy) "
        "at env-step budgets and at the end of each run."
        + (f" Partial: fewer seeds finished for {', '.join(partial)}." if partial else ""),
        "",
        "| method | "
        + " | ".join("end of run" if c == "final" else f"{c} steps" for c in columns)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, row in table.items():
        cells = [f"{row[c]['mean']:.1f} ± {row[c]['std']:.1f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    env = exp.base.get("env", {}).get("name", "")
    refs = references(env)
    if refs is not None:
        lines += [
            "",
            f"Normalized score ({NORMALIZED_FROM[refs.metric]}, wsrl_mjx.datasets.scores):",
            "",
        ]
        lines += lines[4:6]
        for name, row in table.items():
            cells = [_normalized_cell(env, row[c]) for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


NORMALIZED_FROM = {"return": "D4RL's reference returns", "success": "100 x success rate"}


def _normalized_cell(env: str, cell: dict) -> str:
    """Mean ± sample std over seeds of the normalized score ("n/a" if a seed has none)."""
    records = zip(cell["seeds"], cell["success_seeds"], strict=True)
    scores = [normalized_of(env, {"return": r, "success": s}) for r, s in records]
    if None in scores:
        return "n/a"
    spread = np.std(scores, ddof=1) if len(scores) > 1 else math.nan
    return f"{np.mean(scores):.1f} ± {spread:.1f}"


# --- the switch report -------------------------------------------------------------------------

SETTLE_TOLERANCE = 0.1  # relative change between the last two fifths of pre-training


def _fifths(values: list[float]) -> tuple[float, float]:
    """Means of the second-to-last and the last fifth of a series."""
    k = max(len(values) // 5, 1)
    return float(np.mean(values[-2 * k : -k] or values[:1])), float(np.mean(values[-k:]))


def pretrain_state(run_dir: Path) -> dict:
    """The agent at the switch: last eval, alpha, entropy vs its target, Q on training batches,
    and whether alpha, entropy and Q settled (changed by < 10 % between the last two fifths of
    the logged chunks; entropy relative to |target| + 1)."""
    records = read_metrics(run_dir)
    train = [r for r in records if r["phase"] == "pretrain"]
    evals = [r for r in records if r["phase"] == "eval"]
    cfg = from_dict(_config_of(run_dir))
    done = read_record(run_dir / DONE_FILE)
    out = {
        "algorithm": cfg.offline.algorithm,
        "steps": train[-1]["env_steps"] if train else 0,
        "eval_return": evals[-1]["eval_return"] if evals else math.nan,
        "eval_success": evals[-1].get("eval_success", math.nan) if evals else math.nan,
        "target_entropy": done.get("target_entropy", math.nan),
    }
    settled = True
    for key in ("alpha", "entropy", "q_pred"):
        series = [r[key] for r in train if key in r]
        if not series:
            out[key] = math.nan
            continue
        before, last = _fifths(series)
        out[key] = series[-1]
        scale = abs(out["target_entropy"]) + 1.0 if key == "entropy" else abs(before) + 1e-8
        settled &= abs(last - before) / scale < SETTLE_TOLERANCE
    out["settled"] = settled
    return out


def _config_of(run_dir: Path) -> dict:
    return read_yaml(run_dir / "config.yaml")


def run_diagnostics(run_dir: Path) -> dict:
    """Per fine-tuning run: scores around the switch, warmup episodes, held-out offline Q/TD."""
    records = read_metrics(run_dir)
    evals = [r for r in records if r["phase"] == "eval"]
    warmup = [r for r in records if r["phase"] == "warmup"]
    online = [r for r in records if r["phase"] not in ("eval", "warmup", "q_trace")]
    switch = warmup[-1]["env_steps"] if warmup else 0
    at_switch = [e for e in evals if e["env_steps"] <= switch][-1]
    after = [e for e in evals if e["env_steps"] > switch]
    episodes = sum(r.get("episodes", 0) for r in warmup)
    has_success = any("train_success" in r for r in warmup)  # tasks with a success signal
    success = sum(r.get("train_success", 0) * r.get("episodes", 0) for r in warmup)
    returns = sum(r.get("train_return", 0) * r.get("episodes", 0) for r in warmup)
    q = [r["offline_q"] for r in online if "offline_q" in r]
    td = [r["offline_td"] for r in online if "offline_td" in r]
    return {
        "switch_step": switch,
        "at_switch": at_switch["eval_return"],
        "first_after": after[0]["eval_return"] if after else math.nan,
        "min_after": min((e["eval_return"] for e in after), default=math.nan),
        "recovered_at": recovered_at(after, at_switch["eval_return"]),
        "final": evals[-1]["eval_return"],
        # Mean evaluation episode length: in goal tasks that end on success, shorter is better
        # (it still moves when the success rate sits at 1).
        "length_at_switch": at_switch.get("eval_length", math.nan),
        "final_length": evals[-1].get("eval_length", math.nan),
        "warmup_episodes": episodes,
        "warmup_return": returns / episodes if episodes else math.nan,
        "warmup_success": success / episodes if episodes and has_success else math.nan,
        "offline_q": (q[0], min(q), q[-1]) if q else (math.nan,) * 3,
        "offline_td": (td[0], max(td), td[-1]) if td else (math.nan,) * 3,
    }


def recovered_at(after: list[dict], switch_score: float) -> float:
    """The first evaluation at or above the switch's score that follows the lowest evaluation
    after the switch, counted only when that lowest one is below the switch's score (a dip).
    NaN: no dip, or never back."""
    if not after:
        return math.nan
    lowest = min(range(len(after)), key=lambda i: after[i]["eval_return"])
    if after[lowest]["eval_return"] >= switch_score:
        return math.nan
    back = (e["env_steps"] for e in after[lowest:] if e["eval_return"] >= switch_score)
    return next(back, math.nan)


def _mean(values) -> float:
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else math.nan


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.{digits}f}"


def _back_at(steps: list[float]) -> str:
    back = [s for s in steps if not math.isnan(s)]
    return f"{np.mean(back):.0f} ({len(back)}/{len(steps)})" if back else f"never (0/{len(steps)})"


def switch_report(exp: Experiment, runs: dict[str, list[Path]], pretrained: dict) -> str:
    lines = [
        f"# {exp.title}: the switch in detail",
        "",
        "## Pre-training at the switch",
        "",
        "Last logged chunk of each pre-training (alpha, policy entropy against its target, mean Q "
        "on training batches) and its last evaluation. *Settled*: alpha, entropy and Q changed "
        f"by less than {SETTLE_TOLERANCE:.0%} between the last two fifths of the logged chunks "
        "(entropy relative to |target| + 1).",
        "",
        "| run | algorithm | gradient steps | eval return | alpha | entropy / target | Q "
        "| settled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dirs in pretrained.values():
        for d in dirs:
            p = pretrain_state(d)
            lines.append(
                f"| {d.parent.name}/{d.name} | {p['algorithm']} | {p['steps']} | "
                f"{_fmt(p['eval_return'])} | {_fmt(p['alpha'], 3)} | "
                f"{_fmt(p['entropy'])} / {_fmt(p['target_entropy'], 1)} | {_fmt(p['q_pred'], 1)} | "
                f"{'yes' if p['settled'] else 'no'} |"
            )
    lines += [
        "",
        "## Fine-tuning around the switch (means over seeds)",
        "",
        "*at switch*: the last evaluation before the first update (for WSRL the pre-trained "
        "policy after its warmup); *first after*: the first evaluation after updates start; "
        "*min after*: the lowest evaluation after that (the dip); *length*: mean evaluation "
        "episode length at the switch -> at the end (goal tasks end on success); *back at*: "
        "after a dip only, the first evaluation after the lowest one that is at or above the "
        "switch's score again (env steps, mean over the seeds that dipped and got back); "
        "warmup: the episodes that ended before the first update; held-out offline Q and TD: "
        "first / extreme / last.",
        "",
        "| method | first update at | at switch | first after | min after | back at | final "
        "| length | warmup episodes | warmup return | warmup success "
        "| offline Q first / min / last | offline TD first / max / last |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, dirs in runs.items():
        d = [run_diagnostics(x) for x in dirs]
        avg = {k: _mean([x[k] for x in d]) for k in d[0] if not isinstance(d[0][k], tuple)}
        q = [_mean([x["offline_q"][i] for x in d]) for i in range(3)]
        td = [_mean([x["offline_td"][i] for x in d]) for i in range(3)]
        lines.append(
            f"| {name} | {avg['switch_step']:.0f} | {_fmt(avg['at_switch'])} | "
            f"{_fmt(avg['first_after'])} | {_fmt(avg['min_after'])} | "
            f"{_back_at([x['recovered_at'] for x in d])} | {_fmt(avg['final'])} | "
            f"{_fmt(avg['length_at_switch'], 0)} -> {_fmt(avg['final_length'], 0)} | "
            f"{avg['warmup_episodes']:.0f} | {_fmt(avg['warmup_return'])} | "
            f"{_fmt(avg['warmup_success'])} | {' / '.join(_fmt(v, 1) for v in q)} | "
            f"{' / '.join(_fmt(v, 3) for v in td)} |"
        )
    return "\n".join(lines) + "\n"
