"""Offline throughput: the on-device offline chunk against the same update fed from the host.

For each algorithm (CQL, CalQL), in one process, interleaved round by round (benchmarks/common.py):

  device   the project's offline chunk (`wsrl_mjx.core.loops.make_offline_chunk`, as
           `wsrl_mjx.phases.pretrain.run_pretrain` builds it): one jitted `lax.scan` over G gradient
           steps, each sampling a minibatch on device from the dataset held in device memory.
  host     the same `agent.update`, jitted (state donated), called once per gradient step with a
           minibatch sampled in host NumPy from the dataset held in host memory.

The dataset is synthetic (random values with the env's observation/action sizes, D4RL's array
names, through `wsrl_mjx.datasets.data.to_device`): an update's cost does not depend on the values.

    python -m benchmarks.offline_throughput
    python -m benchmarks.offline_throughput --num-critics 10 --steps 1000   # a GPU
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from benchmarks.common import (  # noqa: E402
    add_common_args,
    agent_config,
    fmt,
    hardware_markdown,
    markdown_table,
    measure_interleaved,
    memory_info,
    out_stem,
    results_payload,
    start_run,
    write_results,
)
from wsrl_mjx.config import OfflineConfig  # noqa: E402
from wsrl_mjx.core.loops import make_offline_chunk, strong_copy  # noqa: E402
from wsrl_mjx.datasets import data  # noqa: E402
from wsrl_mjx.methods import make_agent  # noqa: E402
from wsrl_mjx.types import TRANSITION_FIELDS, OfflineTransition  # noqa: E402

FIELDS = (*TRANSITION_FIELDS, "mc_return")


def synthetic_dataset(size: int, observation_size: int, action_size: int, seed: int):
    """(D4RL-named arrays, MC returns) of random values, episodes of 1000 steps."""
    rng = np.random.default_rng(seed)
    timeouts = np.zeros(size, np.float32)
    timeouts[999::1000] = 1.0
    arrays = {
        "observations": rng.standard_normal((size, observation_size), np.float32),
        "actions": rng.uniform(-1.0, 1.0, (size, action_size)).astype(np.float32),
        "rewards": rng.standard_normal(size, np.float32),
        "next_observations": rng.standard_normal((size, observation_size), np.float32),
        "terminals": np.zeros(size, np.float32),
        "timeouts": timeouts,
    }
    return arrays, rng.standard_normal(size, np.float32)


def benchmark_algorithm(args: argparse.Namespace, algorithm: str, env: envs.Env) -> dict:
    offline = OfflineConfig(algorithm=algorithm, cql_lagrange=args.cql_lagrange)
    agent = make_agent(
        algorithm, agent_config(args), offline, env.observation_size, env.action_size
    )
    G, B = args.steps, args.batch_size
    arrays, returns = synthetic_dataset(
        args.dataset_size, env.observation_size, env.action_size, args.seed
    )
    key = jax.random.PRNGKey(args.seed)

    # device: the offline chunk exactly as run_pretrain makes it.
    chunk = make_offline_chunk(agent, length=G, batch_size=B)
    dataset = strong_copy(data.to_device(arrays, returns))
    device = {
        "agent": strong_copy(agent.init(jax.random.fold_in(key, 1))),
        "rng": strong_copy(jax.random.fold_in(key, 2)),
    }

    def run_device():
        device["agent"], device["rng"], metrics = chunk(
            device["agent"], device["rng"], dataset, jnp.int32(dataset.reward.shape[0])
        )
        return device["agent"].step, metrics

    # host: NumPy minibatches, one jitted update call per gradient step.
    host_data = jax.device_get(dataset)
    update = jax.jit(
        lambda s, batch, k, i: agent.update(s, batch, jax.random.fold_in(k, i)),
        donate_argnums=0,
    )
    numpy_rng = np.random.default_rng(args.seed)
    update_key = jax.random.fold_in(key, 3)
    host = {"agent": strong_copy(agent.init(jax.random.fold_in(key, 1))), "i": 0}

    def run_host():
        state = host["agent"]
        for _ in range(G):
            rows = numpy_rng.integers(0, args.dataset_size, B)
            batch = OfflineTransition(**{f: getattr(host_data, f)[rows] for f in FIELDS})
            state, _ = update(state, batch, update_key, host["i"])
            host["i"] += 1
        host["agent"] = state
        return state.step

    print(f"{algorithm}: {G} gradient steps per timed run, batch {B}", flush=True)
    timings = measure_interleaved({"device": run_device, "host": run_host}, args.repeats)
    t = {k: v["median_s"] for k, v in timings.items()}
    record = {
        "algorithm": algorithm,
        "gradient_steps_per_run": G,
        "timings": timings,
        "device": {"gradient_steps_per_s": G / t["device"]},
        "host": {"gradient_steps_per_s": G / t["host"]},
        "speedup_device_over_host": t["host"] / t["device"],
        "dataset_bytes": sum(x.nbytes for x in jax.tree.leaves(dataset)),
        "memory": memory_info(),
    }
    print(
        f"  device {record['device']['gradient_steps_per_s']:,.1f} gradient steps/s, host "
        f"{record['host']['gradient_steps_per_s']:,.1f}; device/host "
        f"{record['speedup_device_over_host']:.2f}x",
        flush=True,
    )
    return record


def to_markdown(payload: dict) -> str:
    s = payload["settings"]
    rows = [
        [
            r["algorithm"],
            fmt(r["device"]["gradient_steps_per_s"], 1),
            fmt(r["host"]["gradient_steps_per_s"], 1),
            f"{r['speedup_device_over_host']:.2f}x",
        ]
        for r in payload["results"]
    ]
    table = markdown_table(
        [
            "algorithm",
            "on-device chunk gradient steps/s",
            "host-fed gradient steps/s",
            "device / host (speed)",
        ],
        rows,
    )
    backend = payload["hardware"]["backend"]
    return f"""# Offline throughput: on-device chunk vs host-fed updates ({backend})

{hardware_markdown(payload)}

Settings: observation/action sizes of {s["env"]}, actor/critic MLP {s["hidden"]},
{s["num_critics"]} critics, batch {s["batch_size"]}, CQL defaults of the config (10 actions per
source, max-target backup, Lagrange {s["cql_lagrange"]}); synthetic dataset of
{s["dataset_size"]:,} transitions; {s["steps"]} gradient steps per timed run, median of
{s["repeats"]} interleaved rounds, compile excluded; matmul precision {s["matmul_precision"]}.

{table}

- device / host (speed): host time / on-device time for the same number of gradient steps;
  > 1 means the on-device chunk is faster.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CheetahRun", help="gives the obs/action sizes")
    parser.add_argument("--algorithms", nargs="+", default=["cql", "calql"])
    parser.add_argument("--steps", type=int, default=100, help="gradient steps per timed run")
    parser.add_argument("--dataset-size", type=int, default=100_000)
    parser.add_argument("--cql-lagrange", action="store_true", help="learned CQL multiplier")
    add_common_args(parser, default_out="offline_throughput")
    args = parser.parse_args(argv)
    header = start_run(args.matmul_precision)
    env = envs.make(args.env)
    results = [benchmark_algorithm(args, a, env) for a in args.algorithms]
    payload = results_payload("offline_throughput", header, args, results)
    payload["settings"].update(observation_size=env.observation_size, action_size=env.action_size)
    write_results(out_stem(args, "offline_throughput"), payload, to_markdown(payload))
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
