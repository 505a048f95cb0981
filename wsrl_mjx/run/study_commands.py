"""The bodies of the commands made from many runs (`experiment`, `gates`, `plot`, `evidence`),
each a `cmd_<name>(args) -> int`; their arguments and the entry point are
`wsrl_mjx/run/command_line.py`'s. Each imports its heavy module only when it runs."""

from __future__ import annotations

import argparse
import sys

from wsrl_mjx.config import ConfigError, parse_overrides
from wsrl_mjx.runtime.errors import DatasetError


def cmd_experiment(args: argparse.Namespace) -> int:
    from wsrl_mjx.runtime.sharding import request_cpu_devices
    from wsrl_mjx.studies.experiment import RunsFailed, run_experiment
    from wsrl_mjx.studies.experiment_spec import load_experiment

    if not args.config:
        raise ConfigError("experiment needs --config configs/experiments/<name>.yaml")
    request_cpu_devices(args.seed_devices)  # before any JAX work
    exp = load_experiment(args.config, parse_overrides(args.overrides), dataset=args.dataset)
    try:
        run_experiment(
            exp,
            report_only=args.report_only,
            workers=args.workers,
            vmap_seeds=args.vmap_seeds,
            seed_devices=args.seed_devices,
            backend=args.backend,
            address=args.address,
            cpus_per_run=args.cpus_per_run,
            gpus_per_run=args.gpus_per_run,
        )
    except RunsFailed as e:  # --workers / ray: the other runs finished; each failed one named
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_gates(args: argparse.Namespace) -> int:
    recorded = {}
    if args.levels_from is not None:
        from wsrl_mjx.studies.gates import recorded_levels

        recorded = recorded_levels(args.levels_from, args.env)
    missing = [
        str(p)
        for kind in ("random", "medium", "expert")
        if not (p := args.data / f"{args.env}-{kind}.npz").is_file() and kind not in recorded
    ]
    missing += [str(p) for p in args.pretrain if not p.is_dir()]
    if missing:
        hint = "" if recorded else " (a level recorded by an earlier gate run: --levels-from)"
        raise DatasetError(f"gates: not found: {', '.join(missing)}{hint}")
    from wsrl_mjx.studies.gates import run_gates

    passed = run_gates(args.env, args.data, args.pretrain, args.out, args.seed, recorded)
    print(args.out.with_suffix(".md").read_text(), end="")
    return 0 if passed else 1


def cmd_plot(args: argparse.Namespace) -> int:
    from wsrl_mjx.studies.plots import plot_runs

    out = args.out or f"{args.run_dirs[0]}/curves.png"
    print(f"wrote {plot_runs(args.run_dirs, out, args.labels)}")
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    from wsrl_mjx.studies.evidence import run_evidence

    return run_evidence(args)
