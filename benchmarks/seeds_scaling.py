"""Seeds in one program: seed-throughput of the vmapped online chunk against one seed at a time.

For each experiment config (its `base` settings: env, networks, envs per seed, UTD, chunk
length), each seed count S and each device count D dividing S, in one process, interleaved round
by round (benchmarks/common.py): the online chunk exactly as `run.num_seeds=S
run.num_devices=D` builds it (`wsrl_mjx.core.online_system.build_online` with S seed configs: the
whole training state vmapped over seeds, the seeds split over D devices). Reported: env steps and
update rounds per second summed over seeds, and the ratio to one seed on one device. Running S
seeds one after another (what an experiment does without it) has the seed-throughput of one
seed, so the ratio is the speed-up over sequential runs.

On a CPU the D devices are CPU devices of this process (`request_cpu_devices`): one XLA
program keeps about one core busy with these small networks, so splitting seeds over devices is
how one process uses the other cores.

    python -m benchmarks.seeds_scaling
    python -m benchmarks.seeds_scaling --seeds 1 4 16 64 --devices 1 \
        --configs configs/experiments/cheetah_wsrl.yaml   # one GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    fmt,
    hardware_markdown,
    markdown_table,
    measure_interleaved,
    memory_info,
    results_payload,
    start_run,
    write_results,
)
from wsrl_mjx.config import Config, parse_overrides  # noqa: E402
from wsrl_mjx.core.online_system import OnlinePlan, build_online  # noqa: E402
from wsrl_mjx.runtime.policy import from_dict, seed_configs  # noqa: E402
from wsrl_mjx.runtime.sharding import request_cpu_devices  # noqa: E402
from wsrl_mjx.studies.experiment_spec import load_experiment  # noqa: E402

DEFAULT_CONFIGS = (
    "configs/experiments/pointmaze_wsrl.yaml",
    "configs/experiments/cheetah_wsrl.yaml",
)


def seeds_variant(cfg: Config, seeds: int, run_dir: str, devices: int = 1):
    """A callable running one online chunk of `seeds` vmapped seeds split over `devices`
    (state kept across calls), and the (env steps, update rounds) one call makes over all
    seeds."""
    run = dataclasses.replace(
        cfg.run, num_seeds=seeds, num_devices=devices, run_dir=run_dir, progress=False
    )
    cfgs = seed_configs(dataclasses.replace(cfg, run=run))
    system = build_online(cfgs, [OnlinePlan()] * len(cfgs))
    # No warmup chunk (one compile less): the first, untimed call samples a still empty buffer;
    # an update costs the same whatever the values.
    holder = {"state": system.init_state()}

    def call():
        holder["state"], metrics = system.online_chunk(holder["state"], system.aux)
        return metrics

    o = cfg.online
    return call, (seeds * o.chunk_length * o.num_envs, seeds * o.chunk_length * o.update_rounds)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument(
        "--devices",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help="device counts to split the seeds over (those dividing the seed count; on a CPU, "
        "CPU devices of this process)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant")
    parser.add_argument(
        "--chunk-length", type=int, default=None, help="override online.chunk_length"
    )
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides of every config"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output stem (default benchmarks/results/seeds_scaling_<backend>)",
    )
    args = parser.parse_args(argv)
    if 1 not in args.seeds or 1 not in args.devices:
        parser.error("--seeds and --devices must include 1 (the sequential baseline)")
    args.seeds, args.devices = sorted(set(args.seeds)), sorted(set(args.devices))
    request_cpu_devices(max(args.devices))  # before any JAX work
    header = start_run("highest")
    # (seeds, devices): every device holds the same number of seeds; one seed is not split.
    layouts = [(s, d) for s in args.seeds for d in args.devices if s % d == 0 and d <= s]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.configs:
            exp = load_experiment(path, parse_overrides(args.set))
            cfg = from_dict(exp.base)
            if args.chunk_length:
                cfg = dataclasses.replace(
                    cfg, online=dataclasses.replace(cfg.online, chunk_length=args.chunk_length)
                )
            print(
                f"[seeds] {path}: {cfg.env.name}, {cfg.online.num_envs} envs per seed", flush=True
            )
            variants, work = {}, {}
            for s, d in layouts:
                name = f"{s} seeds / {d} dev"
                run_dir = f"{tmp}/{Path(path).stem}-{s}-{d}"
                variants[name], work[name] = seeds_variant(cfg, s, run_dir, d)
            timing = measure_interleaved(variants, args.repeats)
            base = None
            for s, d in layouts:
                name = f"{s} seeds / {d} dev"
                t = timing[name]["median_s"]
                env_rate, update_rate = work[name][0] / t, work[name][1] / t
                base = base or env_rate  # the first layout: 1 seed on 1 device
                results.append(
                    {
                        "config": path,
                        "env": cfg.env.name,
                        "num_envs_per_seed": cfg.online.num_envs,
                        "seeds": s,
                        "devices": d,
                        "chunk_s": round(t, 4),
                        "env_steps_per_s": round(env_rate, 1),
                        "update_rounds_per_s": round(update_rate, 1),
                        "ratio_vs_sequential": round(env_rate / base, 3),
                        "warmup_s": timing[name]["warmup_s"],
                    }
                )
    payload = results_payload("seeds_scaling", header, args, results, memory=memory_info())
    rows = [
        [
            Path(r["config"]).stem,
            str(r["seeds"]),
            str(r["devices"]),
            fmt(r["chunk_s"], 3),
            fmt(r["env_steps_per_s"]),
            fmt(r["update_rounds_per_s"]),
            f"{r['ratio_vs_sequential']:.2f}x",
        ]
        for r in results
    ]
    markdown = (
        "# Seeds in one program (`run.num_seeds`)\n\n"
        "Seed-throughput summed over seeds of the vmapped online chunk (`run.num_seeds`), the "
        "seeds split over `devices` devices (`run.num_devices`); ratio against one seed on one "
        "device (= sequential runs).\n\n"
        + markdown_table(
            [
                "config",
                "seeds",
                "devices",
                "chunk s",
                "env steps/s",
                "update rounds/s",
                "vs sequential",
            ],
            rows,
        )
        + "\n\n"
        + hardware_markdown(payload)
        + "\n"
    )
    stem = Path(args.out) if args.out else RESULTS_DIR / f"seeds_scaling_{jax.default_backend()}"
    write_results(stem, payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
