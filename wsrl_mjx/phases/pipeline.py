"""`pipeline`: collect -> pretrain -> WSRL fine-tune end to end, with a summary."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from wsrl_mjx.config import Config, ConfigError
from wsrl_mjx.datasets import readers
from wsrl_mjx.datasets.scores import normalized_of, references
from wsrl_mjx.phases.collect import run_collect
from wsrl_mjx.phases.finetune import run_finetune
from wsrl_mjx.phases.pretrain import run_pretrain
from wsrl_mjx.phases.setup import resolve_env
from wsrl_mjx.runtime.checkpoint import Checkpointer, has_checkpoint
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.policy import check_single_seed, expand_run_dir
from wsrl_mjx.runtime.rundir import atomic_write, exclusive


def _with(cfg: Config, section: str, **changes) -> Config:
    return dataclasses.replace(
        cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)}
    )


def collect(cfg: Config, root: Path, resume: bool) -> dict:
    """Behaviour SAC + the requested collections; returns the one pre-training uses. A resumed
    pipeline keeps finished datasets; a behaviour run cut short continues from its last
    checkpoint (its actor snapshots, among which medium is picked, are kept on disk)."""
    kinds = cfg.collect.kinds
    if cfg.collect.pretrain_on not in kinds:
        kinds = (*kinds, cfg.collect.pretrain_on)
    out_dir = root / "data"
    done = {k: out_dir / f"{cfg.env.name}-{k}.npz" for k in kinds}
    if resume and all(path.is_file() for path in done.values()):
        print(f"[pipeline] collect: finished before, keeping {out_dir}", flush=True)
        path = done[cfg.collect.pretrain_on]
        meta = readers.load_any(path).metadata
        return {"path": str(path), **meta}
    behaviour = root / "behaviour"
    collect_cfg = _with(cfg, "run", run_dir=str(behaviour))
    collect_cfg = _with(collect_cfg, "collect", out_dir=str(out_dir), kinds=kinds)
    written = run_collect(collect_cfg, resume=resume and has_checkpoint(behaviour))
    return {**written[cfg.collect.pretrain_on], "all": written}


def _pretrain(cfg: Config, run_dir: Path, resume: bool) -> dict:
    """Pre-train, or with `resume` continue (or keep) the phase's own run; its summary."""
    cfg = _with(cfg, "run", run_dir=str(run_dir))
    if resume and has_checkpoint(run_dir):
        meta = Checkpointer(run_dir / "checkpoints").meta()
        if meta.get("gradient_steps", 0) >= meta.get("total_gradient_steps", 0):
            print(f"[pipeline] pretrain: finished before, keeping {run_dir}", flush=True)
            return {"run_dir": str(run_dir)}
        return run_pretrain(cfg, resume=True)
    return run_pretrain(cfg)


def _evals(run_dir: Path) -> list[dict]:
    """Every evaluation the phase's run logged, resumed or not."""
    return [r for r in read_metrics(run_dir) if r["phase"] == "eval"]


def run_pipeline(cfg: Config, *, resume: bool = False) -> dict:
    """collect -> pretrain -> finetune in sub-folders of run.run_dir; returns the summary.

    `resume` continues a pipeline cut short in run.run_dir (which must then name it, not hold
    `{time}`): finished phases are kept and the unfinished one continues from its checkpoint.
    """
    check_single_seed(cfg, "pipeline")
    cfg = expand_run_dir(cfg, resume)  # done by the command line already; here for callers
    root = Path(cfg.run.run_dir)
    cfg = resolve_env(cfg)  # an empty env.name: the dataset's env_spec
    if resume and not root.is_dir():
        raise ConfigError(f"pipeline --resume: {root} does not exist")
    if cfg.run.distributed:
        return _run_phases(cfg, root, resume)
    # The whole pipeline holds its root before it touches anything there: a second
    # `pipeline --resume` is refused instead of moving a live behaviour run aside.
    with exclusive(root):
        return _run_phases(cfg, root, resume)


def _run_phases(cfg: Config, root: Path, resume: bool) -> dict:
    """collect -> pretrain -> finetune under `root`, which the caller holds."""
    times: dict[str, float] = {}
    print(
        f"[pipeline] {cfg.env.name}: collect -> pretrain ({cfg.offline.algorithm}) -> "
        f"finetune ({cfg.finetune.method}) in {root}" + (" (resumed)" if resume else ""),
        flush=True,
    )

    t = time.perf_counter()
    if cfg.offline.dataset:  # a dataset the user (or wsrl_mjx.phases.maze_datasets) already made
        meta = readers.load_any(cfg.offline.dataset).metadata
        dataset = {"path": cfg.offline.dataset, "behaviour_return": meta.get("behaviour_return")}
        print(f"[pipeline] offline.dataset is set: skipping collect, using {dataset['path']}")
    else:
        dataset = collect(cfg, root, resume)
    times["collect_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pre = _pretrain(_with(cfg, "offline", dataset=dataset["path"]), root / "pretrain", resume)
    times["pretrain_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ft_cfg = _with(cfg, "finetune", checkpoint=str(root / "pretrain"))
    ft_cfg = _with(ft_cfg, "run", run_dir=str(root / "finetune"))
    ft = run_finetune(ft_cfg, resume=resume and has_checkpoint(root / "finetune"))
    times["finetune_s"] = time.perf_counter() - t

    pre_evals, ft_evals = _evals(root / "pretrain"), _evals(root / "finetune")
    by_label = {e["label"]: e for e in ft_evals}
    summary = {
        "env": cfg.env.name,
        "dataset": dataset,
        "behaviour_return": dataset.get("behaviour_return"),
        "offline_score": pre_evals[-1]["eval_return"],
        "after_warmup_score": by_label.get("after_warmup", {}).get("eval_return"),
        "after_warmup_success": by_label.get("after_warmup", {}).get("eval_success"),
        "final_score": ft_evals[-1]["eval_return"],
        "offline_success": pre_evals[-1].get("eval_success"),  # None: no success signal
        "final_success": ft_evals[-1].get("eval_success"),
        "finetune_env_steps": ft_evals[-1]["env_steps"],
        "episode_length": ft["episode_length"],
        "seconds": {**times, "finetune_online_s": ft["times"]["online_s"]},
        "run_dir": str(root),
    }
    summary |= normalized_scores(summary)
    text = json.dumps(summary, indent=2, default=str).encode()
    atomic_write(root / "summary.json", lambda f: f.write(text))
    print_summary(summary)
    # In-memory results of each phase (states included when it ran) for callers such as tests.
    return {**summary, "phases": {"collect": dataset, "pretrain": pre, "finetune": ft}}


# Summary keys of each evaluation: (return, success rate; None where the summary has none).
SUMMARY_EVALUATIONS = (
    ("behaviour_return", None),  # the dataset records the behaviour's return only
    ("offline_score", "offline_success"),
    ("after_warmup_score", "after_warmup_success"),
    ("final_score", "final_success"),
)
SUMMARY_LABELS = {
    "behaviour_return": "behaviour policy return (dataset)",
    "offline_score": "offline score (after pre-training)",
    "offline_success": "offline success rate",
    "after_warmup_score": "score after warmup",
    "after_warmup_success": "success rate after warmup",
    "final_score": "final score ({finetune_env_steps} online env steps)",
    "final_success": "final success rate",
}


def normalized_scores(summary: dict) -> dict:
    """`<return key>_normalized` per evaluation (wsrl_mjx.datasets.scores: from the success rate for
    AntMaze, the return for locomotion, None without references) and `normalized_from`."""
    env, out = summary["env"], {}
    for ret, success in SUMMARY_EVALUATIONS:
        record = {"return": summary[ret], "success": summary.get(success)}
        out[f"{ret}_normalized"] = normalized_of(env, record)
    refs = references(env)
    out["normalized_from"] = None if refs is None else refs.metric
    return out


def _evaluation_rows(s: dict) -> list[tuple[str, str]]:
    """(label, value) per return and success rate, the normalized score beside the number it
    was computed from."""
    from_success = s.get("normalized_from") == "success"
    rows = []
    for ret, success in SUMMARY_EVALUATIONS:
        normalized = s.get(f"{ret}_normalized")
        for key in (k for k in (ret, success) if k is not None):
            value = s.get(key)
            text = "n/a" if value is None else f"{value:.2f}"
            if normalized is not None and (key == success) == from_success:
                text += f" (normalized {normalized:.1f})"
            rows.append((SUMMARY_LABELS[key].format(**s), text))
    return rows


def print_summary(s: dict) -> None:
    rows = [
        *_evaluation_rows(s),
        ("episode length (evaluation and fine-tuning)", str(s["episode_length"])),
    ] + [(f"wall-clock {k[:-2]}", f"{v:.0f} s") for k, v in s["seconds"].items()]
    width = max(len(r[0]) for r in rows)
    print(f"\n[pipeline] summary ({s['env']}), details in {s['run_dir']}/summary.json")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
