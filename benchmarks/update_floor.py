"""How fast is an update against what the machine can do, what does compiling cost, and what do
vmapped pre-training seeds buy?

Three measurements in one process (the variants of each interleaved round by round,
benchmarks/common.py):

1. Cost per update against its FLOP floor. One online SAC update round (`agent.update`: the
   critic steps and the actor + temperature step, as the online chunk runs it) and one CalQL
   pre-training step, each scanned `--steps` times in one jitted program; XLA's cost analysis
   of one update gives its FLOPs. The floor is the measured rate of a plain matmul on the same
   machine, at the update's own layer shape (batch x width x width) and at a large square size:
   `time per update / (FLOPs / matmul rate)` is how many times the floor an update takes.
2. Compile time of the fine-tuning program: the online chunk `build_online` makes (the twin's
   physics, the buffer, the update rounds) lowered and compiled with the persistent
   compilation cache off (cold) and again with it on after one compile has filled it (warm).
3. Pre-training seeds in one program: the offline chunk of S seeds vmapped
   (`make_offline_chunk(seeded=True)`, as `pretrain --set run.num_seeds=S` builds it) against
   one seed; gradient steps per second summed over seeds and the ratio to one seed (running the
   seeds one after another has one seed's rate).

    python -m benchmarks.update_floor
    python -m benchmarks.update_floor --env Hopper-v5 --seeds 1 2 5 --steps 200
"""

from __future__ import annotations

import argparse
import sys
import time
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
    out_stem,
    results_payload,
    start_run,
    write_results,
)
from benchmarks.offline_throughput import synthetic_dataset  # noqa: E402
from wsrl_mjx.config import OfflineConfig  # noqa: E402
from wsrl_mjx.core.loops import make_offline_chunk, stack_seeds, strong_copy  # noqa: E402
from wsrl_mjx.datasets import data  # noqa: E402
from wsrl_mjx.methods import make_agent  # noqa: E402
from wsrl_mjx.runtime.policy import load_config  # noqa: E402
from wsrl_mjx.types import Transition  # noqa: E402


def flops_of(compiled) -> float:
    """XLA's FLOP count of a compiled program (a dict, or a list of one, by jax version)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", float("nan")))


def matmul_rate(m: int, k: int, n: int, repeats: int) -> dict:
    """GFLOP/s of `repeats` chained [m, k] x [k, n] matmuls in one jitted scan (k == n)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (m, k))
    w = jax.random.normal(jax.random.PRNGKey(1), (k, n)) / np.sqrt(k)

    @jax.jit
    def chain(a):
        return jax.lax.scan(lambda x, _: (jnp.tanh(x @ w), None), a, None, length=repeats)[0]

    timings = measure_interleaved({"matmul": lambda: chain(a)}, 5)
    seconds = timings["matmul"]["median_s"]
    return {"shape": [m, k, n], "gflops_per_s": 2 * m * k * n * repeats / seconds / 1e9}


def update_cost(name: str, update, state, batch, key, steps: int) -> dict:
    """Seconds and FLOPs per update of `update(state, batch, key)`, scanned `steps` times."""
    one = jax.jit(update).lower(state, batch, key).compile()
    flops = flops_of(one)

    @jax.jit
    def scanned(state, key):
        def step(carry, i):
            state, metrics = update(carry, batch, jax.random.fold_in(key, i))
            return state, metrics

        return jax.lax.scan(step, state, jnp.arange(steps))[0]

    held = {"state": strong_copy(state)}

    def run():
        held["state"] = scanned(held["state"], key)
        return held["state"]

    timings = measure_interleaved({name: run}, 5)
    seconds = timings[name]["median_s"] / steps
    return {
        "update": name,
        "flops": flops,
        "seconds": seconds,
        "gflops_per_s": flops / seconds / 1e9,
    }


def online_compile(env_name: str, overrides: list[str]) -> dict:
    """Cold (persistent cache off) and warm (cache on, filled) compile of the online chunk."""
    from wsrl_mjx.core.online_system import OnlinePlan, build_online

    cfg = load_config(None, [f"env.name={env_name}", *overrides, "run.run_dir=/tmp/unused"])
    system = build_online([cfg], [OnlinePlan()], None)
    state = system.init_state()

    def compile_once() -> float:
        start = time.perf_counter()
        system.online_chunk.lower(state, system.aux).compile()
        return time.perf_counter() - start

    jax.config.update("jax_enable_compilation_cache", False)
    cold = compile_once()
    jax.config.update("jax_enable_compilation_cache", True)
    compile_once()  # fills the persistent cache (or finds it filled)
    jax.clear_caches()  # else the next compile is an in-memory hit, not the persistent cache's
    warm = compile_once()
    print(f"online chunk compile: cold {cold:.1f} s, warm cache {warm:.1f} s", flush=True)
    return {"cold_s": cold, "warm_cache_s": warm, "settings": overrides}


def seeds_rate(agent, arrays, returns, seeds: list[int], steps: int, batch_size: int, key):
    """Gradient steps/s summed over seeds of the vmapped offline chunk, per seed count."""
    dataset = strong_copy(data.to_device(arrays, returns))
    variants, held = {}, {}
    for s in seeds:
        chunk = make_offline_chunk(agent, length=steps, batch_size=batch_size, seeded=s > 1)
        keys = jax.random.split(key, s)
        agents = [agent.init(k) for k in keys]
        held[s] = {
            "agent": strong_copy(stack_seeds(agents) if s > 1 else agents[0]),
            "rng": strong_copy(jax.random.split(key, s) if s > 1 else key),
            "data": stack_seeds([dataset] * s) if s > 1 else dataset,
            "size": jnp.full((s,) if s > 1 else (), dataset.reward.shape[0], jnp.int32),
        }

        def run(s=s, chunk=chunk):
            h = held[s]
            h["agent"], h["rng"], _ = chunk(h["agent"], h["rng"], h["data"], h["size"])
            return h["agent"]

        variants[f"{s} seed(s)"] = run
    timings = measure_interleaved(variants, 5)
    one = steps / timings["1 seed(s)"]["median_s"] if 1 in seeds else float("nan")
    rows = []
    for s in seeds:
        rate = s * steps / timings[f"{s} seed(s)"]["median_s"]
        rows.append(
            {
                "seeds": s,
                "gradient_steps_per_s": rate,
                "ratio_to_one_seed": rate / one,
                "warmup_s": timings[f"{s} seed(s)"]["warmup_s"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Hopper-v5", help="obs/action sizes; the online twin")
    parser.add_argument("--steps", type=int, default=200, help="updates per timed program")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--large-matmul", type=int, default=1024, help="square matmul size")
    parser.add_argument("--skip-compile", action="store_true", help="no online-chunk compile")
    add_common_args(parser, default_out="update_floor")
    args = parser.parse_args(argv)
    header = start_run(args.matmul_precision)
    env = envs.make(args.env)
    obs, act, B = env.observation_size, env.action_size, args.batch_size
    key = jax.random.PRNGKey(args.seed)
    width = args.hidden[0]

    floors = [
        matmul_rate(B, width, width, 2000),
        matmul_rate(args.large_matmul, args.large_matmul, args.large_matmul, 20),
    ]
    for f in floors:
        print(f"matmul {f['shape']}: {f['gflops_per_s']:.1f} GFLOP/s", flush=True)

    costs = []
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)  # noqa: E731
    rounds = {1: "SAC round, 1 critic step (behaviour)", 4: "SAC round, 4 critic steps (WSRL)"}
    for minibatches, name in rounds.items():
        sac = make_agent(
            "sac", agent_config(args, critic_minibatches=minibatches), OfflineConfig(), obs, act
        )
        n = minibatches * B
        batch = Transition(
            obs=zeros(n, obs), action=zeros(n, act), reward=zeros(n),
            next_obs=zeros(n, obs), terminated=zeros(n), truncated=zeros(n),
        )  # fmt: skip
        costs.append(update_cost(name, sac.update, sac.init(key), batch, key, args.steps))
    arrays, returns = synthetic_dataset(10_000, obs, act, args.seed)
    offline = OfflineConfig(algorithm="calql")
    calql = make_agent("calql", agent_config(args, critic_minibatches=1), offline, obs, act)
    rows = data.to_device(arrays, returns)
    offline_batch = jax.tree.map(lambda x: x[:B], rows)
    costs.append(
        update_cost("CalQL step", calql.update, calql.init(key), offline_batch, key, args.steps)
    )
    for c in costs:
        c["times_floor"] = {
            str(f["shape"]): c["seconds"] / (c["flops"] / (f["gflops_per_s"] * 1e9)) for f in floors
        }
        print(
            f"{c['update']}: {c['flops'] / 1e6:.1f} MFLOP, {c['seconds'] * 1e3:.2f} ms", flush=True
        )

    seeds = seeds_rate(calql, arrays, returns, args.seeds, args.steps, B, key)
    compile_ = None
    if not args.skip_compile:
        compile_ = online_compile(
            args.env,
            [f"agent.actor_hidden={list(args.hidden)}", f"agent.critic_hidden={list(args.hidden)}"]
            + [f"agent.num_critics={args.num_critics}", f"agent.batch_size={B}"]
            + ["online.num_envs=16", "online.update_rounds=8", "online.chunk_length=125"]
            + ["online.buffer_capacity=100000"],
        )
    payload = results_payload(
        "update_floor", header, args, costs, floors=floors, seeds=seeds, compile=compile_
    )
    payload["settings"].update(observation_size=obs, action_size=act)
    write_results(out_stem(args, "update_floor"), payload, to_markdown(payload))
    print(to_markdown(payload))


def to_markdown(payload: dict) -> str:
    s, floors = payload["settings"], payload["floors"]
    floor_rows = [[str(f["shape"]), fmt(f["gflops_per_s"], 1)] for f in floors]
    cost_rows = [
        [
            c["update"],
            fmt(c["flops"] / 1e6, 1),
            fmt(c["seconds"] * 1e3, 2),
            fmt(c["gflops_per_s"], 1),
            *[f"{c['times_floor'][str(f['shape'])]:.1f}x" for f in floors],
        ]
        for c in payload["results"]
    ]
    seed_rows = [
        [str(r["seeds"]), fmt(r["gradient_steps_per_s"], 1), f"{r['ratio_to_one_seed']:.2f}x"]
        + [fmt(r["warmup_s"], 1)]
        for r in payload["seeds"]
    ]
    compile_ = payload["compile"]
    compile_text = (
        "not measured (--skip-compile)"
        if compile_ is None
        else f"cold (persistent cache off) {compile_['cold_s']:.1f} s, warm cache "
        f"{compile_['warm_cache_s']:.1f} s ({compile_['cold_s'] / compile_['warm_cache_s']:.0f}x "
        f"less); settings {compile_['settings']}, 16 envs, 125 vector steps a chunk"
    )
    backend = payload["hardware"]["backend"]
    floor_headers = [f"x floor at {f['shape']}" for f in floors]
    cost_table = markdown_table(
        ["update", "MFLOP (XLA cost analysis)", "ms per update", "GFLOP/s", *floor_headers],
        cost_rows,
    )
    seed_table = markdown_table(
        ["seeds", "gradient steps/s (all seeds)", "vs one seed", "compile + first run (s)"],
        seed_rows,
    )
    return f"""# Update cost vs its FLOP floor, compile time, vmapped pre-training seeds ({backend})

{hardware_markdown(payload)}

Settings: observation/action sizes of {s["env"]} ({s["observation_size"]}/{s["action_size"]}),
MLPs {s["hidden"]}, {s["num_critics"]} critics, batch {s["batch_size"]}, {s["steps"]} updates
per timed program (median of 5 rounds, compile excluded), matmul precision
{s["matmul_precision"]}. Command: `python -m benchmarks.update_floor` with these flags.

## The floor: a plain matmul on this machine

{markdown_table(["matmul [m, k, n]", "GFLOP/s"], floor_rows)}

## Cost per update

{cost_table}

"x floor" = time per update / (its FLOPs at the matmul rate): 1x would be an update that runs
as fast as its FLOPs allow at that rate.

## Compile of the fine-tuning program (online chunk)

{compile_text}

## Pre-training seeds in one program (CalQL, vmapped offline chunk)

{seed_table}

Running S seeds one after another has one seed's rate, so "vs one seed" is the speed-up over
sequential pre-trainings.
"""


if __name__ == "__main__":
    main()
