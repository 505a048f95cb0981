"""The bodies of the commands that run phases (`online`, `pretrain`, `collect`, `finetune`,
`pipeline`, `evaluate`, `render`, `export`, `maze-datasets`), each a `cmd_<name>(args) -> int`;
their arguments and the entry point are `wsrl_mjx/run/command_line.py`'s. `_load` checks the config,
paths and run dir (`wsrl_mjx.runtime.preflight`) before a command imports JAX, MuJoCo and
Orbax."""

from __future__ import annotations

import argparse

from wsrl_mjx.config import DEFAULT_CONFIG, ConfigError, parse_overrides
from wsrl_mjx.runtime.policy import expand_run_dir, load_config
from wsrl_mjx.runtime.preflight import check_resume, inherit_pretraining, preflight


def _load(path, overrides: list[str], resume: bool = False, command: str = ""):
    """The validated config, `{time}` in run.run_dir expanded, its run dir and inputs checked
    (`preflight`; a fine-tuning's unset network settings taken from its pre-training); then,
    before any JAX work, joins the cluster (run.distributed) and asks for run.num_devices CPU
    devices (used when the backend is a CPU)."""
    from wsrl_mjx.methods import check_registered

    cfg = expand_run_dir(check_registered(load_config(path, overrides)), resume)
    preflight(cfg, command, resume)
    if command == "finetune" and cfg.finetune.checkpoint:
        cfg, _ = inherit_pretraining(cfg, path, overrides)
    if resume:
        check_resume(cfg, command)
    from wsrl_mjx.runtime.runner import begin  # JAX from here

    begin(cfg)  # the process settings, before any JAX work
    return cfg


def cmd_online(args: argparse.Namespace) -> int:
    cfg = _load(args.config, args.overrides, args.resume, "online")
    from wsrl_mjx.phases.online import run_online  # the heavy imports, once the input is checked

    result = run_online(cfg, resume=args.resume)
    for summary in result if isinstance(result, list) else [result]:
        print(
            f"done: {summary['env_steps']} env steps, {summary['updates']} update rounds, "
            f"final eval return {summary['final_eval_return']:.2f}; logs in {summary['run_dir']}"
        )
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    cfg = _load(args.config, args.overrides, args.resume, "pretrain")
    from wsrl_mjx.phases.pretrain import run_pretrain

    result = run_pretrain(cfg, resume=args.resume)
    for summary in result if isinstance(result, list) else [result]:  # one per seed
        print(
            f"done: {summary['gradient_steps']} gradient steps in {summary['seconds']:.0f} s, "
            f"eval return {summary['final_eval_return']:.2f}; checkpoint in "
            f"{summary['checkpoint']}"
        )
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    cfg = _load(args.config, args.overrides, args.resume, "collect")
    from wsrl_mjx.phases.collect import run_collect

    run_collect(cfg, resume=args.resume)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.checkpoint:
        overrides.append(f"finetune.checkpoint={args.checkpoint}")
    if args.method:
        overrides.append(f"finetune.method={args.method}")
    cfg = _load(args.config, overrides, args.resume, "finetune")
    from wsrl_mjx.phases.finetune import run_finetune

    result = run_finetune(cfg, resume=args.resume)
    for summary in result if isinstance(result, list) else [result]:
        evals = summary["evals"]
        if not evals:  # --resume of a run killed after its last checkpoint: nothing left to do
            print(f"done: the run was already complete; logs in {summary['run_dir']}")
            continue
        print(
            f"done: {summary['env_steps']} env steps; eval return {evals[0]['eval_return']:.2f} "
            f"(start) -> {summary['final_eval_return']:.2f} (final); logs in {summary['run_dir']}"
        )
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    cfg = _load(args.config or DEFAULT_CONFIG, args.overrides, args.resume)
    from wsrl_mjx.phases.pipeline import run_pipeline

    run_pipeline(cfg, resume=args.resume)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wsrl_mjx.phases.native_eval import evaluate_native, print_report, write_report

    summary = evaluate_native(
        args.run_dir,
        episodes=args.episodes,
        seed=args.seed,
        allow_unverified=args.allow_unverified_checkpoint,
    )
    print_report(summary)
    if args.out:
        print(f"wrote {write_report(summary, args.out)}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from wsrl_mjx.phases.render import render_run

    written = render_run(
        args.run_dir,
        args.out,
        native=args.native,
        fps=args.fps,
        size=(args.height, args.width),
        camera=args.camera,
        seed=args.seed,
        allow_unverified=args.allow_unverified_checkpoint,
    )
    for side, video in written.items():
        print(
            f"wrote {video['path']} ({side}: {video['frames']} frames, episode return "
            f"{video['episode_return']:.2f})"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from wsrl_mjx.phases.minari_export import export_minari

    overrides = parse_overrides(args.env_override)  # KEY=VALUE, values parsed as YAML
    path = export_minari(args.dataset, args.id, args.root, overrides)
    print(f"wrote Minari dataset {args.id} -> {path}")
    return 0


def cmd_maze_datasets(args: argparse.Namespace) -> int:
    if args.twin and args.agent != "ant":
        raise ConfigError("--twin needs --agent ant")
    from wsrl_mjx.phases.maze_datasets import run_maze_datasets

    run_maze_datasets(args)
    return 0
