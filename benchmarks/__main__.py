"""`python -m benchmarks`: small versions of the three throughput benchmarks, their tables printed.

online_throughput (CheetahRun, 1/16/128 envs: fused loop, host loop, brax's SAC trainer, physics
and updates alone), offline_throughput (CQL/CalQL chunk) and time_to_target (one seed). About
16 min on 2 CPU cores, mostly compilation; each script's own defaults are the full runs
(`python -m benchmarks.<name>`). Run from the repository root.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import offline_throughput, online_throughput, time_to_target

SMALL = {
    "online": ["--num-envs", "1", "16", "128", "--iterations", "20", "--repeats", "3"],
    "offline": ["--steps", "50", "--repeats", "3", "--dataset-size", "20000"],
    "time_to_target": ["--seeds", "0", "--max-seconds", "60"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench", help="results path prefix")
    parser.add_argument(
        "extra", nargs="*", metavar="FLAG", help="extra flags for the online benchmark (after --)"
    )
    args = parser.parse_args(argv)
    online_throughput.main([*SMALL["online"], "--out", f"{args.out}/online", *args.extra])
    offline_throughput.main([*SMALL["offline"], "--out", f"{args.out}/offline"])
    time_to_target.main([*SMALL["time_to_target"], "--out", f"{args.out}/time_to_target"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
