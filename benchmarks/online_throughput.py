"""Online throughput: the fused on-device loop against the same SAC as a conventional host loop.

For each num_envs N, in one process, interleaved round by round (see benchmarks/common.py):

  fused    the project's own online chunk (`wsrl_mjx.core.loops.make_chunk` with `policy_actions`,
           built exactly as `wsrl_mjx.phases.online.run_online` builds it): one jitted `lax.scan`
           over T iterations of {policy acts in N envs -> BatchEnv step -> flashbax add -> U update
           rounds sampled from the on-device buffer}, state donated.
  host     the same algorithm as a conventional host loop: per iteration Python calls a jitted
           policy, the jitted `BatchEnv.step`, pulls the transition to host NumPy, adds it to a
           NumPy ring buffer, samples U batches there and makes one jitted (donated)
           `agent.update` call per batch. Same agent, networks, batch, UTD, env and buffer size.
  brax     brax's own SAC trainer (`brax.training.agents.sac.train`) on the same Playground task,
           with matched MLP widths, num_envs, batch, buffer capacity, update rounds per vector
           step and T vector steps per epoch; its compile-free epochs are timed, each paired
           with one fused run right after it (called from brax's `progress_fn`).
  physics  physics alone: `lax.scan` of T `BatchEnv.step`s with uniform random actions.
  updates  updates alone: `lax.scan` of T*U rounds {flashbax sample -> agent.update}.

physics + updates (same amount of work as one fused run) is the floor for fused.
Compile time is excluded (each variant is warmed up once).

    python -m benchmarks.online_throughput                # CPU defaults, ~10-15 min on 2 cores
    python -m benchmarks.online_throughput --num-envs 1 16 128 1024 4096 --num-critics 10 \
        --critic-minibatches 4                            # a GPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
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
    timed,
    write_results,
)
from benchmarks.host_loop import HostLoop  # noqa: E402
from wsrl_mjx.agents.sac import make_sac  # noqa: E402
from wsrl_mjx.config import Config, EnvConfig, OnlineConfig, RunConfig  # noqa: E402
from wsrl_mjx.core.environment import make_env  # noqa: E402
from wsrl_mjx.core.loops import make_chunk, policy_actions, strong_copy  # noqa: E402
from wsrl_mjx.core.online_system import init_training_state  # noqa: E402
from wsrl_mjx.core.replay import buffer_nbytes, make_replay  # noqa: E402


def _replicate_shim() -> None:
    """brax 0.14.2's trainer calls `jax.device_put_replicated`, which jax 0.10 removed: put
    back an equivalent (stack one copy per device; pmap shards the leading axis)."""
    if not hasattr(jax, "device_put_replicated"):
        jax.device_put_replicated = lambda x, devices: jax.tree.map(
            lambda a: np.stack([np.asarray(a)] * len(devices)), x
        )


def time_brax_sac(
    args: argparse.Namespace, cfg: Config, env: envs.Env, num_envs: int, after_epoch
) -> dict:
    """Run brax's SAC trainer for `args.repeats` + 1 epochs of T vector steps each and return
    the seconds of every epoch but the first (which compiles). `after_epoch()` runs after each
    epoch, outside brax's timing (used to time a fused run beside it)."""
    import functools

    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as sac_train
    from mujoco_playground import wrapper

    _replicate_shim()
    T, U = args.iterations, args.update_rounds
    a = cfg.agent
    min_replay = a.batch_size * U
    prefill = -(-min_replay // num_envs) * num_envs
    epochs = args.repeats + 1
    seconds: list[float] = []

    def progress(step: int, metrics: dict) -> None:
        if "training/sps" in metrics:  # not the initial evaluation
            seconds.append(T * num_envs / float(metrics["training/sps"]))
            after_epoch()

    sac_train.train(
        environment=env.task,
        num_timesteps=prefill + epochs * T * num_envs,
        episode_length=env.episode_length,
        wrap_env_fn=wrapper.wrap_for_brax_training,  # Playground's default: cached resets
        num_envs=num_envs,
        num_eval_envs=1,
        learning_rate=a.critic_lr,
        discounting=a.discount,
        tau=a.tau,
        seed=args.seed,
        batch_size=a.batch_size,
        num_evals=epochs + 1,
        min_replay_size=min_replay,
        max_replay_size=cfg.online.buffer_capacity,
        grad_updates_per_step=U,
        network_factory=functools.partial(
            sac_networks.make_sac_networks,
            hidden_layer_sizes=tuple(args.hidden),
            q_network_layer_norm=a.critic_layer_norm,  # as our critics (the paper's: LayerNorm)
            policy_network_layer_norm=a.actor_layer_norm,
        ),
        progress_fn=progress,
    )
    assert len(seconds) == epochs, (len(seconds), epochs)
    return {"warmup_s": round(seconds[0], 3), "seconds": [round(x, 4) for x in seconds[1:]]}


def benchmark_num_envs(args: argparse.Namespace, num_envs: int) -> dict:
    """Time the four variants at one num_envs; returns the record for the results file."""
    cfg = Config(
        env=EnvConfig(name=args.env),
        agent=agent_config(args, critic_minibatches=args.critic_minibatches),
        online=OnlineConfig(
            num_envs=num_envs,
            update_rounds=args.update_rounds,
            chunk_length=args.iterations,
            buffer_capacity=args.buffer_capacity,
        ),
        run=RunConfig(seed=args.seed, matmul_precision=args.matmul_precision),
    )
    T, U = args.iterations, args.update_rounds
    m, b = cfg.agent.critic_minibatches, cfg.agent.batch_size
    env = make_env(cfg.env)
    batch_env = envs.BatchEnv(env, num_envs)
    agent = make_sac(cfg.agent, env.observation_size, env.action_size)
    buffer = make_replay(cfg.online.buffer_capacity, m * b)
    key = jax.random.PRNGKey(args.seed)

    # (a) fused: the online chunk exactly as run_online makes it.
    chunk = make_chunk(
        batch_env,
        agent,
        buffer,
        length=T,
        update_rounds=U,
        action_fn=policy_actions(agent),
        reward_scale=cfg.env.reward_scale,
        reward_bias=cfg.env.reward_bias,
    )
    fused = {"state": strong_copy(init_training_state(cfg, agent, batch_env, buffer))}

    def run_fused():
        fused["state"], metrics = chunk(fused["state"], None)
        return fused["state"].updates, metrics

    # (b) host loop: jitted policy, jitted env step, NumPy buffer, one jitted update per batch.
    host = HostLoop(
        agent,
        batch_env,
        update_rounds=U,
        buffer_capacity=cfg.online.buffer_capacity,
        reward_scale=cfg.env.reward_scale,
        reward_bias=cfg.env.reward_bias,
        seed=args.seed,
    )

    def run_host():
        return host.run(T)

    # (c) physics alone: random actions in a scan over the same BatchEnv step.
    def physics_scan(env_state, rng):
        def body(s, k):
            action = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return batch_env.step(s, action)[0], None

        return jax.lax.scan(body, env_state, jax.random.split(rng, T))[0]

    physics_fn = jax.jit(physics_scan, donate_argnums=0)
    physics = {"env": strong_copy(batch_env.reset(jax.random.fold_in(key, 4))), "i": 0}

    def run_physics():
        physics["i"] += 1
        physics["env"] = physics_fn(physics["env"], jax.random.fold_in(key, physics["i"]))
        return physics["env"].obs

    # (d) updates alone: the fused loop's update rounds (sample from flashbax + update) in a scan,
    # on a copy of the buffer the fused loop's warm-up chunk filled.
    def updates_scan(agent_state, buffer_state, rng):
        def body(s, k):
            sample_key, k = jax.random.split(k)
            batch = buffer.sample(buffer_state, sample_key).experience
            return agent.update(s, batch, k)

        return jax.lax.scan(body, agent_state, jax.random.split(rng, T * U))

    updates_fn = jax.jit(updates_scan, donate_argnums=0)
    updates = {"agent": strong_copy(agent.init(jax.random.fold_in(key, 5))), "i": 0}

    def run_updates():
        if "buffer" not in updates:
            updates["buffer"] = strong_copy(fused["state"].buffer)
        updates["i"] += 1
        updates["agent"], metrics = updates_fn(
            updates["agent"], updates["buffer"], jax.random.fold_in(key, 10_000 + updates["i"])
        )
        return updates["agent"].step, metrics

    print(f"num_envs={num_envs}: T={T} vector steps, U={U} update rounds per step", flush=True)
    timings = measure_interleaved(
        {"fused": run_fused, "host": run_host, "physics": run_physics, "updates": run_updates},
        args.repeats,
    )
    if args.brax:
        beside_brax: list[float] = []
        timings["brax"] = time_brax_sac(
            args, cfg, env, num_envs, lambda: beside_brax.append(timed(run_fused))
        )
        # The fused run after brax's compile epoch is a warm-up too; pair the rest.
        timings["fused_beside_brax"] = {"seconds": [round(x, 4) for x in beside_brax[1:]]}
        for record in (timings["brax"], timings["fused_beside_brax"]):
            record["median_s"] = statistics.median(record["seconds"])
        print(
            f"  brax SAC epochs {timings['brax']['seconds']} s, fused beside them "
            f"{timings['fused_beside_brax']['seconds']} s",
            flush=True,
        )
    env_steps, rounds = T * num_envs, T * U
    t = {k: v["median_s"] for k, v in timings.items()}
    floor = t["physics"] + t["updates"]
    record = {
        "num_envs": num_envs,
        "vector_steps_per_run": T,
        "env_steps_per_run": env_steps,
        "update_rounds_per_run": rounds,
        "critic_steps_per_run": rounds * m,
        "timings": timings,
        "fused": {"env_steps_per_s": env_steps / t["fused"], "updates_per_s": rounds / t["fused"]},
        "host": {"env_steps_per_s": env_steps / t["host"], "updates_per_s": rounds / t["host"]},
        "physics": {"env_steps_per_s": env_steps / t["physics"]},
        "updates": {"updates_per_s": rounds / t["updates"]},
        "floor": {"env_steps_per_s": env_steps / floor, "updates_per_s": rounds / floor},
        "speedup_fused_over_host": t["host"] / t["fused"],
        "fused_time_over_floor": t["fused"] / floor,
        **(
            {
                "brax": {
                    "env_steps_per_s": env_steps / t["brax"],
                    "updates_per_s": rounds / t["brax"],
                },
                "speedup_fused_over_brax": t["brax"] / t["fused_beside_brax"],
            }
            if args.brax
            else {}
        ),
        "device_buffer_bytes": buffer_nbytes(fused["state"].buffer),
        "host_buffer_bytes": host.replay.nbytes,
        "memory": memory_info(),
    }
    print(
        f"  fused {record['fused']['env_steps_per_s']:,.0f} env steps/s, host "
        f"{record['host']['env_steps_per_s']:,.0f}; fused/host "
        f"{record['speedup_fused_over_host']:.2f}x, fused time / floor "
        f"{record['fused_time_over_floor']:.2f}",
        flush=True,
    )
    return record


def _mib(n: int | None) -> float | None:
    return None if n is None else n / 2**20


def to_markdown(payload: dict) -> str:
    s = payload["settings"]
    rows = []
    for r in payload["results"]:
        rows.append(
            [
                str(r["num_envs"]),
                fmt(r["fused"]["env_steps_per_s"]),
                fmt(r["fused"]["updates_per_s"]),
                fmt(r["host"]["env_steps_per_s"]),
                fmt(r["host"]["updates_per_s"]),
                fmt(r["physics"]["env_steps_per_s"]),
                fmt(r["updates"]["updates_per_s"]),
                fmt(r["floor"]["env_steps_per_s"]),
                fmt(r["brax"]["env_steps_per_s"]) if "brax" in r else "-",
                f"{r['speedup_fused_over_host']:.2f}x",
                f"{r['speedup_fused_over_brax']:.2f}x" if "brax" in r else "-",
                f"{r['fused_time_over_floor']:.2f}",
                f"{r['device_buffer_bytes'] / 2**20:,.1f}",
                fmt(_mib(r["memory"]["peak_device_bytes"]), 1),
                fmt(_mib(r["memory"]["process_max_rss_bytes"])),
            ]
        )
    table = markdown_table(
        [
            "num_envs",
            "fused env steps/s",
            "fused updates/s",
            "host env steps/s",
            "host updates/s",
            "physics alone env steps/s",
            "updates alone updates/s",
            "floor env steps/s",
            "brax SAC env steps/s",
            "fused / host (speed)",
            "fused / brax (speed)",
            "fused time / floor time",
            "buffer MiB",
            "peak device MiB",
            "process peak RSS MiB",
        ],
        rows,
    )
    backend = payload["hardware"]["backend"]
    return f"""# Online throughput: fused on-device loop vs host loop ({backend})

{hardware_markdown(payload)}

Settings: {s["env"]}, SAC with actor/critic MLP {s["hidden"]}, {s["num_critics"]} critics, batch
{s["batch_size"]} x {s["critic_minibatches"]} critic minibatch(es), {s["update_rounds"]} update
round(s) per vector step, buffer capacity {s["buffer_capacity"]:,}; {s["iterations"]} vector steps
per timed run, median of {s["repeats"]} interleaved rounds, compile excluded; matmul precision
{s["matmul_precision"]}. "updates" are update rounds (each = {s["critic_minibatches"]} critic
step(s) + 1 actor/temperature step on one sampled batch). Env steps/s count steps of all envs.

{table}

- fused / host (speed): host time / fused time for the same work; > 1 means the fused loop is
  faster.
- fused / brax (speed): brax SAC epoch time / fused time for the same work, each brax epoch
  paired with a fused run right after it. brax's trainer runs with Playground's brax wrapper
  as Playground trains with it: done envs restart from a cached first state (cheaper than
  `BatchEnv`'s fresh random resets; `full_reset=True` made brax's epochs ~8x slower on CPU);
  its critics get LayerNorm like ours (`q_network_layer_norm`); it evaluates between epochs
  (not timed).
- fused time / floor time: fused time / (physics alone + updates alone); 1.0 means no overhead
  beyond the two unavoidable parts (the issue's target is <= 1.2).
- buffer MiB: the on-device replay buffer; peak device MiB: the backend's peak bytes in use
  (GPU/TPU only, "-" on CPU); process peak RSS: host memory high-water mark so far in the
  process (cumulative over the num_envs rows).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CheetahRun")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 16, 128, 1024])
    parser.add_argument(
        "--iterations", type=int, default=100, help="vector steps per timed run (chunk length)"
    )
    parser.add_argument("--update-rounds", type=int, default=1, help="U per vector step")
    parser.add_argument(
        "--critic-minibatches", type=int, default=1, help="UTD: critic steps per sampled batch"
    )
    parser.add_argument("--buffer-capacity", type=int, default=100_000)
    parser.add_argument(
        "--brax",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time brax's SAC trainer at matched settings (--no-brax to skip)",
    )
    add_common_args(parser, default_out="online_throughput")
    args = parser.parse_args(argv)
    header = start_run(args.matmul_precision)
    results = []
    for n in args.num_envs:
        results.append(benchmark_num_envs(args, n))
        # Drop this num_envs' compiled programs: a process holding all of them (brax's
        # included) ran out of memory mappings in LLVM at 1024 envs on CPU.
        jax.clear_caches()
        # Rewritten after every num_envs, so a crash keeps the finished rows.
        payload = results_payload("online_throughput", header, args, results)
        write_results(out_stem(args, "online_throughput"), payload, to_markdown(payload))
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
