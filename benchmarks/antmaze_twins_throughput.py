"""Env steps/s of the AntMaze twins (`AntMaze_<Maze>-v4`) beside the project's own `antmaze-*`.

    python -m benchmarks.antmaze_twins_throughput [--num-envs 64] [--steps 20] [--repeats 3]

Each variant is `jit(scan(vmap(step)))` over `--steps` vector steps of `num_envs` envs with
uniform random actions from their reset states (no resets, no learning), all variants
interleaved in one process (benchmarks/common.py), so the ratios are side by side under the same
load. The twin's ant is Gymnasium's (13 colliding geoms, RK4, Newton with 100 iterations), the
project's is a lighter one (5 colliding spheres, Euler, 4 iterations): the ratio is the price of
simulating the env Minari's antmaze data was recorded in.
"""

from __future__ import annotations

import argparse

import envs
from benchmarks import common
from benchmarks.gym_twins_throughput import rollout_fn

PAIRS: dict[str, str] = {
    "AntMaze_UMaze-v4": "antmaze-umaze",
    "AntMaze_Medium-v4": "antmaze-medium",
    "AntMaze_Large-v4": "antmaze-large",
}


def variants(num_envs: int, steps: int, names: list[str]) -> dict:
    """{variant: timed callable}: each twin and the project's maze of its size."""
    out = {}
    for twin in names:
        for name in (twin, PAIRS[twin]):
            env = envs.make(name)
            out[name] = rollout_fn(env.reset, env.step, env.action_size, num_envs, steps)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64])
    parser.add_argument("--steps", type=int, default=20, help="vector steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--twins", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    header = common.start_run("highest")
    results = []
    for n in args.num_envs:
        print(f"num_envs={n}", flush=True)
        timings = common.measure_interleaved(variants(n, args.steps, args.twins), args.repeats)
        for name, t in timings.items():
            results.append({"num_envs": n, "variant": name, **t})
            results[-1]["env_steps_per_s"] = n * args.steps / t["median_s"]
    payload = common.results_payload("antmaze_twins_throughput", header, args, results)
    common.write_results(
        common.out_stem(args, "antmaze_twins_throughput"), payload, markdown(payload, args)
    )


def markdown(payload: dict, args: argparse.Namespace) -> str:
    rate = {(r["num_envs"], r["variant"]): r["env_steps_per_s"] for r in payload["results"]}
    rows = [
        [
            str(n),
            twin,
            common.fmt(rate[(n, twin)]),
            f"{own}: {common.fmt(rate[(n, own)])}",
            common.fmt(rate[(n, twin)] / rate[(n, own)], 3) + "x",
        ]
        for n in args.num_envs
        for twin, own in PAIRS.items()
        if twin in args.twins
    ]
    headers = ["num_envs", "twin", "twin env steps/s", "project maze: env steps/s", "ratio"]
    return (
        "# AntMaze twins: env steps/s beside the project's antmaze (CPU)\n\n"
        + common.hardware_markdown(payload)
        + f"\n\nSettings: {args.steps} vector steps of uniform random actions per timed run, "
        f"median of {args.repeats} interleaved rounds, compile excluded; no resets. Both "
        "step 0.05 simulated seconds per env step (5 x 0.01). The twin keeps Gymnasium's ant "
        "(RK4, Newton 100 iterations, 13 colliding geoms) and collides it with the 3 wall cells "
        "next to it (envs/gym_antmaze.py), keeping the 32 deepest contacts.\n\n"
        + common.markdown_table(headers, rows)
        + "\n"
    )


if __name__ == "__main__":
    main()
