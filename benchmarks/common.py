"""Shared benchmark plumbing: hardware facts, interleaved timing, agent settings, result files.

Both throughput scripts time every variant in the same process, interleaved round by round
(variant A, B, C, ... then again), so a load spike from another process hits all variants alike;
each reported rate is the median over rounds. The first call of every variant (compilation plus
one run) is excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax

import wsrl_mjx  # noqa: F401  (sets the persistent compilation cache before anything compiles)
from wsrl_mjx.config import AgentConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --- hardware -----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the machine was; other processes included)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def hardware_info() -> dict:
    import jaxlib
    import mujoco

    device = jax.devices()[0]
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "mujoco": mujoco.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def memory_info() -> dict:
    """Peak device memory where the backend reports it (GPU/TPU), and the process's peak RSS."""
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "peak_device_bytes": stats.get("peak_bytes_in_use"),
        "process_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def start_run(matmul_precision: str) -> dict:
    """Apply the matmul precision, print the machine, and return the results-file header."""
    jax.config.update("jax_default_matmul_precision", matmul_precision)
    hardware, load = hardware_info(), load_average()
    print(f"{hardware['cpu_model']} x{hardware['cpu_count']}, {hardware['backend']}")
    print(f"load average {load}", flush=True)
    return {"hardware": hardware, "load_average_before": load}


def results_payload(name: str, header: dict, args: argparse.Namespace, results, **extra) -> dict:
    """A results file: `start_run`'s header, the load now, every flag, the results."""
    return {
        "benchmark": name,
        **header,
        "load_average_after": load_average(),
        "settings": vars(args),
        "results": results,
        **extra,
    }


# --- settings -----------------------------------------------------------------------------------


def add_common_args(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    parser.add_argument(
        "--hidden", type=int, nargs="+", default=[256, 256], help="actor and critic MLP widths"
    )
    parser.add_argument("--num-critics", type=int, default=2, help="critic ensemble size E")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per critic minibatch")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--matmul-precision",
        default="highest",
        choices=["highest", "high", "default"],
        help="jax_default_matmul_precision, as run.matmul_precision in the training runs",
    )
    parser.add_argument(
        "--out",
        default=None,
        help=f"output path stem, .json and .md are written (default "
        f"benchmarks/results/{default_out}_<backend>)",
    )


def agent_config(args: argparse.Namespace, **overrides) -> AgentConfig:
    hidden = tuple(args.hidden)
    return AgentConfig(
        actor_hidden=hidden,
        critic_hidden=hidden,
        num_critics=args.num_critics,
        batch_size=args.batch_size,
        **overrides,
    )


def out_stem(args: argparse.Namespace, default_out: str) -> Path:
    if args.out:
        return Path(args.out).with_suffix("")
    return RESULTS_DIR / f"{default_out}_{jax.default_backend()}"


# --- timing -------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    """Seconds for one call of `fn`, waiting for every array it returns."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def measure_interleaved(
    variants: dict[str, Callable[[], object]], repeats: int, log: Callable[[str], None] = print
) -> dict[str, dict]:
    """Warm each variant up once (compile + one run, excluded), then time `repeats` rounds with
    the variants interleaved. Returns {name: {"warmup_s", "seconds": [...], "median_s"}}."""
    out: dict[str, dict] = {}
    for name, fn in variants.items():
        warmup = timed(fn)
        out[name] = {"warmup_s": round(warmup, 3), "seconds": []}
        log(f"  {name}: warm-up (compile + first run) {warmup:.1f} s")
    for r in range(repeats):
        for name, fn in variants.items():
            out[name]["seconds"].append(timed(fn))
        log(
            f"  round {r + 1}/{repeats}: "
            + ", ".join(f"{n} {out[n]['seconds'][-1]:.3f} s" for n in variants)
        )
    for record in out.values():
        record["median_s"] = statistics.median(record["seconds"])
        record["seconds"] = [round(s, 4) for s in record["seconds"]]
    return out


# --- results ------------------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def hardware_markdown(payload: dict) -> str:
    hw = payload["hardware"]
    return (
        f"Hardware: {hw['cpu_model']}, {hw['cpu_count']} cores; backend {hw['backend']} "
        f"({hw['device_kind']}, {hw['device_count']} device(s)); jax {hw['jax']}, "
        f"jaxlib {hw['jaxlib']}, mujoco {hw['mujoco']}, Python {hw['python']}.\n"
        f"Load average (1/5/15 min) before: {payload['load_average_before']}, after: "
        f"{payload['load_average_after']} (other processes on the machine included)."
    )


def write_results(stem: Path, payload: dict, markdown: str) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown.rstrip() + "\n")
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
