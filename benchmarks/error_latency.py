"""How long the command line takes to name bad input: each case runs as a whole process, this
checkout beside a baseline checkout (`--baseline DIR`, e.g. a `git worktree` of an older commit),
interleaved round by round so a load spike hits both alike; median and min over rounds.

    git worktree add /tmp/wsrl-before 19efdc3
    python -m benchmarks.error_latency --baseline /tmp/wsrl-before --rounds 5

Each case must exit 2 (or 0 for --help) on both sides; a case that does otherwise is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, cpu_model, load_average

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "typo in a key": ["online", "--set", "online.num_env=4"],
    "--help": ["--help"],
    "seed beyond 32 bits": ["online", "--set", "run.seed=1180591620717411303424"],
    "missing dataset": ["pretrain", "--set", "offline.dataset=missing.npz"],
    "missing checkpoint": ["finetune", "--checkpoint", "no/such/run"],
    "value outside its choices": ["online", "--set", "online.warmup_policy=greedy"],
}


def time_case(source: Path, argv: list[str]) -> tuple[float, int, str]:
    """(seconds, exit code, last stderr line) of one process running `argv` from `source`."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "wsrl_mjx.run", *argv],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return time.perf_counter() - t, proc.returncode, lines[-1][:160] if lines else ""


def which_package(source: Path) -> str:
    """Where `wsrl_mjx` is imported from with `source` first on the path (the check that the
    baseline really runs the baseline's code, not the editable install's)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    code = "import wsrl_mjx, pathlib; print(pathlib.Path(wsrl_mjx.__file__).parent.parent)"
    out = subprocess.run([sys.executable, "-c", code], cwd=source, env=env, capture_output=True)
    return out.stdout.decode().strip()


def commit(source: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--short", "HEAD"], text=True, capture_output=True
    )
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS_DIR / "error_latency_cpu"))
    args = parser.parse_args(argv)
    sides = {"this checkout": REPO}
    if args.baseline:
        sides = {"baseline": args.baseline.resolve(), **sides}
    for name, source in sides.items():
        if Path(which_package(source)) != source:
            raise SystemExit(f"{name}: wsrl_mjx does not import from {source}")
    times: dict[str, dict[str, list[float]]] = {s: {c: [] for c in CASES} for s in sides}
    codes: dict[str, dict[str, tuple[int, str]]] = {s: {} for s in sides}
    load_before = load_average()
    for r in range(args.rounds):
        for case, case_argv in CASES.items():
            for side, source in sides.items():
                seconds, code, line = time_case(source, case_argv)
                times[side][case].append(seconds)
                codes[side][case] = (code, line)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    result = {
        "hardware": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count()},
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "rounds": args.rounds,
        "commits": {s: commit(src) for s, src in sides.items()},
        "cases": {
            case: {
                side: {
                    "median_s": round(statistics.median(times[side][case]), 3),
                    "min_s": round(min(times[side][case]), 3),
                    "exit": codes[side][case][0],
                    "message": codes[side][case][1],
                }
                for side in sides
            }
            for case in CASES
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(report(result, list(sides)))
    print(report(result, list(sides)))
    return 0


def report(result: dict, sides: list[str]) -> str:
    head = " | ".join(f"{s} median [min] s" for s in sides)
    lines = [
        "# Time to name bad input (whole process, `python -m wsrl_mjx.run ...`)",
        "",
        f"{result['hardware']['cpu_model']}, {result['hardware']['cpu_count']} cores; load "
        f"average {result['load_average_before']} before, {result['load_average_after']} after "
        f"(other processes running); {result['rounds']} rounds, interleaved; commits "
        + ", ".join(f"{s}: `{c}`" for s, c in result["commits"].items()),
        "",
        f"| case | {head} | {'ratio | ' if len(sides) == 2 else ''}exit |",
        f"|---|{'---|' * len(sides)}{'---|' if len(sides) == 2 else ''}---|",
    ]
    for case, by_side in result["cases"].items():
        cells = " | ".join(
            f"{by_side[s]['median_s']:.2f} [{by_side[s]['min_s']:.2f}]" for s in sides
        )
        ratio = ""
        if len(sides) == 2:
            ratio = f"{by_side[sides[0]]['median_s'] / by_side[sides[1]]['median_s']:.0f}x | "
        exits = " / ".join(str(by_side[s]["exit"]) for s in sides)
        lines.append(f"| {case} | {cells} | {ratio}{exits} |")
    lines += ["", "Messages (this checkout):", ""]
    lines += [
        f"- {case}: `{by_side[sides[-1]]['message']}`" for case, by_side in result["cases"].items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
