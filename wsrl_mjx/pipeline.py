"""`pipeline`: collect -> pretrain -> WSRL fine-tune end to end, with a summary."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from wsrl_mjx import data
from wsrl_mjx.collect import run_collect
from wsrl_mjx.config import Config
from wsrl_mjx.finetune import run_finetune
from wsrl_mjx.pretrain import resolve_env, run_pretrain

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "pipeline.yaml"


def _with(cfg: Config, section: str, **changes) -> Config:
    return dataclasses.replace(
        cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)}
    )


def resolve_run_dir(run_dir: str) -> Path:
    """`{time}` in run.run_dir becomes a timestamp, so re-running never collides."""
    return Path(run_dir.replace("{time}", time.strftime("%Y%m%d-%H%M%S")))


def collect(cfg: Config, root: Path) -> dict:
    """Behaviour SAC + the requested collections; returns the one pre-training uses."""
    kinds = cfg.collect.kinds
    if cfg.collect.pretrain_on not in kinds:
        kinds = (*kinds, cfg.collect.pretrain_on)
    collect_cfg = _with(cfg, "run", run_dir=str(root / "behaviour"))
    collect_cfg = _with(collect_cfg, "collect", out_dir=str(root / "data"), kinds=kinds)
    written = run_collect(collect_cfg)
    return {**written[cfg.collect.pretrain_on], "all": written}


def run_pipeline(cfg: Config) -> dict:
    """collect -> pretrain -> finetune in sub-folders of run.run_dir; returns the summary."""
    root = resolve_run_dir(cfg.run.run_dir)
    cfg = resolve_env(cfg)  # an empty env.name: the dataset's env_spec
    times: dict[str, float] = {}
    print(
        f"[pipeline] {cfg.env.name}: collect -> pretrain ({cfg.offline.algorithm}) -> "
        f"finetune ({cfg.finetune.method}) in {root}",
        flush=True,
    )

    t = time.perf_counter()
    if cfg.offline.dataset:  # a dataset the user (or envs.maze_data) already made
        meta = data.load_any(
            cfg.offline.dataset, terminals_from_reward=cfg.offline.terminals_from_reward
        ).metadata
        dataset = {"path": cfg.offline.dataset, "behaviour_return": meta.get("behaviour_return")}
        print(f"[pipeline] offline.dataset is set: skipping collect, using {dataset['path']}")
    else:
        dataset = collect(cfg, root)
    times["collect_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pre_cfg = _with(cfg, "offline", dataset=dataset["path"])
    pre = run_pretrain(_with(pre_cfg, "run", run_dir=str(root / "pretrain")))
    times["pretrain_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ft_cfg = _with(cfg, "finetune", checkpoint=str(root / "pretrain"))
    ft = run_finetune(_with(ft_cfg, "run", run_dir=str(root / "finetune")))
    times["finetune_s"] = time.perf_counter() - t

    by_label = {e["label"]: e for e in ft["evals"]}
    summary = {
        "env": cfg.env.name,
        "dataset": dataset,
        "behaviour_return": dataset["behaviour_return"],
        "offline_score": pre["final_eval_return"],
        "after_warmup_score": by_label.get("after_warmup", {}).get("eval_return"),
        "final_score": ft["final_eval_return"],
        "offline_success": pre["evals"][-1].get("eval_success"),  # None: no success signal
        "final_success": ft["evals"][-1].get("eval_success"),
        "finetune_env_steps": ft["env_steps"],
        "seconds": {**times, "finetune_online_s": ft["times"]["online_s"]},
        "run_dir": str(root),
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_summary(summary)
    # In-memory results of each phase (states included) for callers such as the tests.
    return {**summary, "phases": {"collect": dataset, "pretrain": pre, "finetune": ft}}


def print_summary(s: dict) -> None:
    fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    rows = [
        ("behaviour policy return (dataset)", fmt(s["behaviour_return"])),
        ("offline score (after pre-training)", fmt(s["offline_score"])),
        ("offline success rate", fmt(s["offline_success"])),
        ("score after warmup", fmt(s["after_warmup_score"])),
        (f"final score ({s['finetune_env_steps']} online env steps)", fmt(s["final_score"])),
        ("final success rate", fmt(s["final_success"])),
    ] + [(f"wall-clock {k[:-2]}", f"{v:.0f} s") for k, v in s["seconds"].items()]
    width = max(len(r[0]) for r in rows)
    print(f"\n[pipeline] summary ({s['env']}), details in {s['run_dir']}/summary.json")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
