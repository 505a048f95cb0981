"""Command line: `python -m wsrl_mjx.run <command> [--config FILE] [--set key=value ...]`."""

from __future__ import annotations

import argparse
import sys

from wsrl_mjx.checkpoint import CheckpointError
from wsrl_mjx.config import ConfigError, load_config
from wsrl_mjx.data import DatasetError


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (keys as in configs/*.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set online.num_envs=64 (repeatable)",
    )


def cmd_online(args: argparse.Namespace) -> int:
    from wsrl_mjx.train import run_online

    cfg = load_config(args.config, args.overrides)
    summary = run_online(cfg, resume=args.resume)
    print(
        f"done: {summary['env_steps']} env steps, {summary['updates']} update rounds, "
        f"final eval return {summary['final_eval_return']:.2f}; logs in {summary['run_dir']}"
    )
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from wsrl_mjx.pretrain import run_pretrain

    cfg = load_config(args.config, args.overrides)
    summary = run_pretrain(cfg)
    print(
        f"done: {summary['gradient_steps']} gradient steps in {summary['seconds']:.0f} s, "
        f"eval return {summary['final_eval_return']:.2f}; checkpoint in {summary['checkpoint']}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsrl_mjx.run",
        description="WSRL on MuJoCo MJX: offline pre-training, warmup, online fine-tuning.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    online = commands.add_parser(
        "online", help="train SAC from scratch with the fused on-device loop",
        description="Train SAC from scratch: warmup of the random-init policy, then online SAC.",
    )
    _add_config_args(online)
    online.add_argument("--resume", action="store_true",
                        help="continue the run in run.run_dir from its last checkpoint")
    online.set_defaults(func=cmd_online)

    pretrain = commands.add_parser(
        "pretrain", help="offline pre-training (CQL / CalQL / IQL) on a dataset",
        description="Pre-train offline on offline.dataset with offline.algorithm and save the "
        "whole agent (Orbax) plus its config, env and dataset fingerprint.",
    )
    _add_config_args(pretrain)
    pretrain.set_defaults(func=cmd_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, DatasetError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
