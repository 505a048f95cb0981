"""One prepared call for a scarce GPU window: smoke checks, every benchmark, a short WSRL run.

`scripts/gpu_window.sh` installs the carried wheels and runs this. Each section runs in its own
process with a time budget (a crash, a hang or running out of memory costs that section only),
the whole stays under `--deadline` seconds, and every table lands in `benchmarks/results/` as
`*_<backend>.{json,md}` (`*_gpu.*` on a GPU) plus `gpu_window_<backend>.{json,md}` (each
section's status, time and output). `--out DIR` also copies them to DIR as one archive.

Sections (`--sections` picks some):

  smoke         losses against NumPy, the fused loop with a bit-exact kill + resume and the
                int32-overflow counters (their tests, via pytest), and the sharded chunk on a
                1-device mesh against the plain one
  online        benchmarks.online_throughput at 1k / 4k / 16k envs: fused, host loop, brax's
                SAC trainer, physics alone, updates alone; buffer and peak device memory
  offline       benchmarks.offline_throughput (CQL, CalQL)
  time_to_target  benchmarks.time_to_target (one seed, both variants)
  seeds         the SAC update vmapped over 1..S seeds (the whole chunk: benchmarks.seeds_scaling)
  wsrl          antmaze-medium: a dataset from the bundled ant policy, CalQL pre-training, WSRL
                warmup + fine-tuning, through the command line
  scale         WSRL and SAC from scratch fine-tuned from that pre-training at several env counts
                and replay settings (one FastTD3-like: large batch, few updates per vector step):
                score against env steps and wall-clock, the online chunk's compile apart

`--dry-run` runs the same sections at tiny sizes (on CPU in CI): every code path, no numbers.

    bash scripts/gpu_window.sh --out "$OUT"           # on the GPU machine
    python -m benchmarks.gpu_window --dry-run --results /tmp/gpu_dry
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("smoke", "online", "offline", "time_to_target", "seeds", "wsrl", "scale")

GPU_SMOKE_TESTS = [
    "tests/test_sac.py",
    "tests/test_offline_losses.py",
    "tests/test_loop.py::test_killed_run_resumes_to_the_same_state",
    "tests/test_counters.py",
]
# Sizes per profile; "gpu" is the real run, "dry" the same code at sizes a 2-core CPU compiles
# and runs in about a minute. Budgets are seconds per section (the GPU total stays under 9 min of
# a 15-minute window: the machine's start and the transfers take the rest).
PROFILES: dict[str, dict] = {
    "gpu": {
        "deadline": 530,
        "budget": {
            "smoke": 75,
            "online": 120,
            "offline": 35,
            "time_to_target": 45,
            "seeds": 35,
            "wsrl": 100,
            "scale": 110,
        },
        "smoke_tests": GPU_SMOKE_TESTS,
        "online": [
            "--num-envs",
            "1024",
            "4096",
            "16384",
            "--iterations",
            "20",
            "--repeats",
            "3",
            "--num-critics",
            "10",
            "--critic-minibatches",
            "4",
            "--buffer-capacity",
            "1000000",
        ],  # fmt: skip
        "offline": ["--num-critics", "10", "--steps", "200", "--repeats", "3"],
        "time_to_target": ["--seeds", "0", "--max-seconds", "20", "--num-envs", "256"],
        "seeds": {
            "seeds": [1, 2, 4, 8, 16],
            "hidden": [256, 256],
            "critics": 10,
            "batch": 256,
            "updates": 50,
        },
        "wsrl": {
            "agent": "ant",
            "layout": "medium",
            "transitions": 200_000,
            "collect_envs": 1000,
            "config": "configs/antmaze_wsrl.yaml",
            "set": [
                "offline.steps=4000",
                "offline.chunk_length=1000",
                "offline.eval_every_steps=2000",
                "offline.checkpoint_every_steps=4000",
                "online.num_envs=256",
                "online.warmup_steps=5120",
                "online.total_env_steps=30720",
                "online.update_rounds=64",
                "online.chunk_length=20",
                "online.buffer_capacity=200000",
                "eval.num_episodes=64",
                "eval.every_env_steps=5120",
                "run.checkpoint_every_env_steps=30720",
                "run.progress=false",
                "run.tensorboard=false",
            ],
        },
        # Fine-tuned from the wsrl section's pre-training (kept for this section), the same
        # env-step budget for every configuration; updates per vector step = rounds / chunk.
        "scale": {
            # SAC from scratch as the experiments run it: uniform actions before its updates.
            "methods": {"wsrl": [], "sac": ["online.warmup_policy=random"]},
            "configs": {
                "256 envs, 64 x 256 per 20 steps": [
                    "online.num_envs=256",
                    "online.chunk_length=20",
                    "online.update_rounds=64",
                    "agent.batch_size=256",
                ],
                "1024 envs, 2 x 4096 per step": [
                    "online.num_envs=1024",
                    "online.chunk_length=5",
                    "online.update_rounds=10",
                    "agent.batch_size=4096",
                ],
                "4096 envs, 2 x 4096 per step": [
                    "online.num_envs=4096",
                    "online.chunk_length=5",
                    "online.update_rounds=10",
                    "agent.batch_size=4096",
                ],
            },
            "set": [
                "online.warmup_steps=5120",
                "online.total_env_steps=81920",
                "online.buffer_capacity=200000",
                "eval.num_episodes=64",
                "eval.every_env_steps=20480",
                "run.checkpoint_every_env_steps=81920",
                "run.progress=false",
                "run.tensorboard=false",
            ],
        },
    },
    "dry": {
        "deadline": 1800,
        "budget": dict.fromkeys(SECTIONS, 600),
        # CI runs these tests anyway: the dry run only checks that they are there.
        "smoke_tests": ["--collect-only", *GPU_SMOKE_TESTS],
        "online": [
            "--env",
            "PointMass",
            "--num-envs",
            "2",
            "--iterations",
            "2",
            "--repeats",
            "1",
            "--hidden",
            "8",
            "8",
            "--batch-size",
            "8",
            "--buffer-capacity",
            "64",
            "--no-brax",
        ],  # fmt: skip
        "offline": [
            "--env",
            "PointMass",
            "--algorithms",
            "calql",
            "--steps",
            "2",
            "--repeats",
            "1",
            "--hidden",
            "8",
            "8",
            "--batch-size",
            "8",
            "--dataset-size",
            "2000",
        ],  # fmt: skip
        "time_to_target": [
            "--env",
            "PointMass",
            "--seeds",
            "0",
            "--max-env-steps",
            "64",
            "--num-envs",
            "2",
            "--warmup-steps",
            "16",
            "--eval-every",
            "32",
            "--eval-episodes",
            "1",
            "--hidden",
            "8",
            "8",
            "--batch-size",
            "8",
            "--update-rounds",
            "1",
            "--episode-length",
            "10",
            "--buffer-capacity",
            "256",
            "--variants",
            "fused",
        ],  # fmt: skip
        "seeds": {"seeds": [1, 2], "hidden": [8, 8], "critics": 2, "batch": 8, "updates": 2},
        "wsrl": {
            "agent": "point",
            "layout": "umaze",
            "transitions": 400,
            "collect_envs": 4,
            "config": None,
            "set": [
                "env.episode_length=20",
                "agent.actor_hidden=[8,8]",
                "agent.critic_hidden=[8,8]",
                "agent.num_critics=2",
                "agent.batch_size=8",
                "agent.critic_minibatches=1",
                "offline.algorithm=calql",
                "offline.steps=4",
                "offline.chunk_length=2",
                "offline.eval_every_steps=4",
                "offline.checkpoint_every_steps=4",
                "online.num_envs=2",
                "online.warmup_steps=8",
                "online.total_env_steps=24",
                "online.chunk_length=4",
                "online.buffer_capacity=64",
                "eval.num_episodes=1",
                "eval.every_env_steps=24",
                "run.checkpoint_every_env_steps=24",
                "run.progress=false",
                "run.tensorboard=false",
            ],
        },
        "scale": {
            "methods": {"wsrl": [], "sac": ["online.warmup_policy=random"]},
            "configs": {
                "2 envs, 1 x 8 per 4 steps": [
                    "online.num_envs=2",
                    "online.chunk_length=4",
                    "online.update_rounds=1",
                ],
                "4 envs, 2 x 16 per 2 steps": [
                    "online.num_envs=4",
                    "online.chunk_length=2",
                    "online.update_rounds=2",
                    "agent.batch_size=16",
                ],
            },
            "set": [
                "online.warmup_steps=8",
                "online.total_env_steps=32",
                "online.buffer_capacity=64",
                "eval.num_episodes=1",
                "eval.every_env_steps=16",
                "run.checkpoint_every_env_steps=32",
                "run.progress=false",
                "run.tensorboard=false",
            ],
        },
    },
}


# --- sections (each runs in its own process: `--section NAME`) ---------------------------------


def _module_main(module: str, argv: list[str]) -> None:
    import importlib

    importlib.import_module(f"benchmarks.{module}").main(argv)


def section_smoke(p: dict, results: Path) -> dict:
    # This process already holds most of the GPU (XLA preallocates 75 %): the tests allocate
    # on demand from the rest.
    env = {
        **os.environ,
        "JAX_DEFAULT_MATMUL_PRECISION": "highest",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    }
    # In this process, without pyproject's `-n 2` (pytest-xdist is not on the GPU machine).
    plain = ["-o", "addopts=-ra", "-p", "no:cacheprovider"]
    cmd = [sys.executable, "-m", "pytest", "-q", *plain, *p["smoke_tests"]]
    tests = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    print(tests.stdout[-3000:], tests.stderr[-2000:], flush=True)
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else ""
    record = {"pytest": summary, "pytest_ok": tests.returncode == 0}
    record.update(sharded_chunk_check())
    (results / f"smoke_{_backend()}.json").write_text(json.dumps(record, indent=2))
    if not (record["pytest_ok"] and record["sharded_matches"]):
        raise SystemExit(f"smoke failed: {record}")
    return record


def sharded_chunk_check() -> dict:
    """The sharded chunk (NamedSharding constraints, a mesh over the local devices) against
    the plain one: same losses."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import envs
    from wsrl_mjx.agents.sac import make_sac
    from wsrl_mjx.core.environment import make_env
    from wsrl_mjx.core.loops import make_chunk, policy_actions
    from wsrl_mjx.core.online_system import init_training_state
    from wsrl_mjx.core.replay import make_replay
    from wsrl_mjx.runtime.policy import load_config
    from wsrl_mjx.runtime.sharding import DataSharding, make_mesh

    small = ["agent.actor_hidden=[32,32]", "agent.critic_hidden=[32,32]", "agent.num_critics=2"]
    cfg = load_config(None, [*small, "env.name=PointMass", "agent.batch_size=16"])
    jax.config.update("jax_default_matmul_precision", "highest")
    env = make_env(cfg.env)
    agent = make_sac(cfg.agent, env.observation_size, env.action_size)
    rows = cfg.agent.critic_minibatches * cfg.agent.batch_size
    buffer, batch_env = make_replay(1000, rows), envs.BatchEnv(env, 8)
    n = jax.local_device_count() if 8 % jax.local_device_count() == 0 else 1
    initial = jax.jit(lambda: init_training_state(cfg, agent, batch_env, buffer))()
    losses = []
    for sharding in (None, DataSharding(make_mesh(n), 8, rows)):
        state = jax.tree.map(jnp.copy, initial)  # each chunk donates its own copy
        if sharding is not None:
            state = sharding.place_state(state)
        chunk = make_chunk(
            batch_env,
            agent,
            buffer,
            length=4,
            update_rounds=1,
            action_fn=policy_actions(agent),
            sharding=sharding,
        )
        state, metrics = chunk(state, None)
        state, metrics = chunk(state, None)
        losses.append(np.asarray(metrics["critic_loss"]))
    return {
        "sharded_devices": n,
        "sharded_max_abs_diff": float(np.max(np.abs(losses[0] - losses[1]))),
        "sharded_matches": bool(np.allclose(losses[0], losses[1], rtol=1e-4, atol=1e-6)),
    }


def section_online(p: dict, results: Path) -> None:
    _module_main(
        "online_throughput", [*p["online"], "--out", str(_stem(results, "online_throughput"))]
    )


def section_offline(p: dict, results: Path) -> None:
    _module_main(
        "offline_throughput", [*p["offline"], "--out", str(_stem(results, "offline_throughput"))]
    )


def section_time_to_target(p: dict, results: Path) -> None:
    argv = [*p["time_to_target"], "--out", str(_stem(results, "time_to_target"))]
    _module_main("time_to_target", argv)


def section_seeds(p: dict, results: Path) -> dict:
    """Seed-updates/s of the SAC update vmapped over S seeds, against one seed: the part of
    `run.num_seeds` that fits the window's budget (the whole vmapped online chunk, envs
    included, is `python -m benchmarks.seeds_scaling`)."""
    s = p["seeds"]
    record = vmapped_update_scaling(s["seeds"], s["hidden"], s["critics"], s["batch"], s["updates"])
    stem = _stem(results, "seeds_update_scaling")
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    rows = [
        f"| {r['seeds']} | {r['seed_updates_per_s']:,.0f} | {r['speedup']:.2f}x |"
        for r in record["rows"]
    ]
    stem.with_suffix(".md").write_text(
        f"# SAC update vmapped over seeds ({record['backend']}, {record['device']})\n\n"
        f"MLP {s['hidden']}, {record['num_critics']} critics, batch {s['batch']}; "
        f"{s['updates']} updates per timed call, median of 3.\n\n"
        "| seeds | seed-updates/s | vs 1 seed |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    return record


def _vmapped_updates(agent, batches, n: int, updates: int):
    """Jitted (states, rng) -> (states, losses): `updates` vmapped updates of n seeds."""
    import jax

    def body(states, key):
        states, metrics = jax.vmap(agent.update)(states, batches, jax.random.split(key, n))
        return states, metrics["critic_loss"]

    return jax.jit(lambda states, rng: jax.lax.scan(body, states, jax.random.split(rng, updates)))


def vmapped_update_scaling(
    seeds: list[int], hidden: list[int], critics: int, batch: int, updates: int
) -> dict:
    import statistics

    import jax
    import jax.numpy as jnp

    from benchmarks.common import timed
    from wsrl_mjx.agents.sac import make_sac
    from wsrl_mjx.config import AgentConfig
    from wsrl_mjx.types import Transition

    jax.config.update("jax_default_matmul_precision", "highest")
    obs, act = 17, 6  # CheetahRun's sizes
    cfg = AgentConfig(
        actor_hidden=tuple(hidden),
        critic_hidden=tuple(hidden),
        num_critics=critics,
        batch_size=batch,
    )
    agent = make_sac(cfg, obs, act)
    rows = cfg.critic_minibatches * batch
    rows_out = []
    for n in seeds:
        keys = jax.random.split(jax.random.PRNGKey(0), n)
        states = jax.vmap(agent.init)(keys)
        k = jax.random.split(jax.random.PRNGKey(1), 4)
        one = Transition(
            obs=jax.random.normal(k[0], (rows, obs)),
            action=jax.random.uniform(k[1], (rows, act), minval=-1, maxval=1),
            reward=jax.random.normal(k[2], (rows,)),
            next_obs=jax.random.normal(k[3], (rows, obs)),
            terminated=jnp.zeros(rows),
            truncated=jnp.zeros(rows),
        )
        batches = jax.tree.map(lambda x, n=n: jnp.broadcast_to(x, (n, *x.shape)), one)

        run = _vmapped_updates(agent, batches, n, updates)
        box = {"states": states, "i": 0}

        def call(box=box, run=run):
            box["i"] += 1
            box["states"], loss = run(box["states"], jax.random.PRNGKey(box["i"]))
            return loss

        timed(call)  # compile
        seconds = statistics.median(timed(call) for _ in range(3))
        rows_out.append({"seeds": n, "seed_updates_per_s": n * updates / seconds})
    base = rows_out[0]["seed_updates_per_s"] / rows_out[0]["seeds"]
    for r in rows_out:  # seed-updates/s relative to one seed's updates/s
        r["speedup"] = r["seed_updates_per_s"] / base
    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": device.device_kind,
        "num_critics": cfg.num_critics,
        "rows": rows_out,
        "via": "jax.vmap(agent.update)",
    }


def _pretrained(w: dict, work: Path) -> tuple[list[str], dict]:
    """A dataset from the bundled maze policy and a CalQL pre-training in `work`, through the
    command line (reused when `work/pretrain` already holds a finished one): the settings every
    fine-tuning from it shares, and the seconds each step took."""
    from wsrl_mjx import run as cli

    times = {}
    if not (work / "pretrain" / "checkpoints").is_dir():
        shutil.rmtree(work, ignore_errors=True)
        t = time.perf_counter()
        argv = ["maze-datasets", "--agent", w["agent"], "--layouts", w["layout"], "--out", ""]
        argv += ["--save", str(work), "--num-transitions", str(w["transitions"])]
        if code := cli.main([*argv, "--num-envs", str(w["collect_envs"])]):
            raise SystemExit(f"maze-datasets exited with {code}")
        times["dataset_s"] = time.perf_counter() - t
    (dataset,) = work.glob("*.npz")
    common = ["--set", f"env.name={w['agent']}maze-{w['layout']}"]
    common += ["--set", f"offline.dataset={dataset}"]
    common += [a for s in w["set"] for a in ("--set", s)]
    common += ["--config", w["config"]] if w["config"] else []
    if "dataset_s" in times:
        t = time.perf_counter()
        code = cli.main(["pretrain", *common, "--set", f"run.run_dir={work / 'pretrain'}"])
        times["pretrain_s"] = time.perf_counter() - t
        if code:
            raise SystemExit(f"pretrain exited with {code}")
    return common, times


def _finetune(common: list[str], work: Path, run_dir: Path, method: str, extra=()) -> float:
    """One fine-tuning from `work`'s pre-training through the command line; its seconds."""
    from wsrl_mjx import run as cli

    argv = ["finetune", *common, *extra, "--set", f"run.run_dir={run_dir}"]
    argv += ["--checkpoint", str(work / "pretrain"), "--method", method]
    t = time.perf_counter()
    if code := cli.main(argv):
        raise SystemExit(f"finetune {method} exited with {code}")
    return time.perf_counter() - t


def _evals(run_dir: Path) -> list[dict]:
    from wsrl_mjx.runtime.logger import read_metrics

    keys = ("env_steps", "eval_return", "eval_success")
    return [{k: r.get(k) for k in keys} for r in read_metrics(run_dir) if r["phase"] == "eval"]


def section_wsrl(p: dict, results: Path) -> dict:
    """Dataset (maze collector) -> CalQL pre-training -> WSRL fine-tuning, via the CLIs. The
    pre-training stays in `wsrl_<backend>_runs/` for the scale section."""
    w = p["wsrl"]
    work = results / f"wsrl_{_backend()}_runs"
    shutil.rmtree(work, ignore_errors=True)
    common, times = _pretrained(w, work)
    times["finetune_s"] = _finetune(common, work, work / "finetune", "wsrl")
    summaries = {phase: _evals(work / phase) for phase in ("pretrain", "finetune")}
    env_name = f"{w['agent']}maze-{w['layout']}"
    record = {"env": env_name, "dataset": next(work.glob("*.npz")).name, "times": times}
    record["evals"] = summaries
    stem = _stem(results, "wsrl_antmaze")
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# WSRL on {env_name} ({_backend()})", "", "| phase | env/gradient steps | eval "
             "return | success |", "|---|---|---|---|"]  # fmt: skip
    for phase, evals in summaries.items():
        for e in evals:
            lines.append(
                f"| {phase} | {e['env_steps']} | {e['eval_return']:.2f} | {e['eval_success']} |"
            )
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items())]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(work / "finetune", ignore_errors=True)  # the tables stay; the runs do not
    return record


def chunk_seconds(records: list[dict], phase: str) -> list[float]:
    """Each `phase` chunk's seconds: from the record logged before its own (the previous chunk,
    its Q trace or an evaluation) to its record. The first one holds the chunk's compile."""
    return [
        r["time"] - records[i - 1]["time"]
        for i, r in enumerate(records)
        if r["phase"] == phase and i > 0
    ]


def section_scale(p: dict, results: Path) -> dict:
    """WSRL and SAC from scratch fine-tuned from the wsrl section's pre-training (made here when
    that section did not run) at each env count and replay setting: every evaluation against
    env steps, vector steps and wall-clock since the initial evaluation, and the online chunk's
    compile (its first chunk's excess over the median chunk)."""
    import numpy as np

    from wsrl_mjx.runtime.logger import read_metrics

    s = p["scale"]
    work = results / f"wsrl_{_backend()}_runs"
    common, times = _pretrained(p["wsrl"], work)
    common += [a for x in s["set"] for a in ("--set", x)]
    rows = []
    for name, settings in s["configs"].items():
        extra = [a for x in settings for a in ("--set", x)]
        num_envs = int(next(x for x in settings if x.startswith("online.num_envs=")).split("=")[1])
        for method, own in s["methods"].items():
            run_dir = work / "scale" / f"{method}-{num_envs}"
            own_args = [a for x in own for a in ("--set", x)]
            seconds = _finetune(common, work, run_dir, method, [*extra, *own_args])
            records = read_metrics(run_dir)
            start = next(r["time"] for r in records if r["phase"] == "eval")
            evals = [
                {
                    "env_steps": r["env_steps"],
                    "vector_steps": r["env_steps"] // num_envs,
                    "wall_s": r["time"] - start,
                    "eval_return": r.get("eval_return"),
                    "eval_success": r.get("eval_success"),
                }
                for r in records
                if r["phase"] == "eval"
            ]
            online = next(r["phase"] for r in records if r["phase"].startswith("finetune"))
            chunks = chunk_seconds(records, online)
            steady = float(np.median(chunks[1:])) if len(chunks) > 1 else 0.0
            compile_s = max(chunks[0] - steady, 0.0) if chunks else float("nan")
            rows.append(
                {"config": name, "method": method, "num_envs": num_envs, "seconds": seconds,
                 "online_compile_s": compile_s, "chunk_s": steady, "evals": evals}
            )  # fmt: skip
    record = {"backend": _backend(), "settings": s, "pretraining_times": times, "runs": rows}
    stem = _stem(results, "wsrl_at_scale")
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [f"# WSRL and SAC at scale ({_backend()})", "",
             "Final evaluation of each fine-tuning from one pre-training, the same env-step "
             "budget for all; wall-clock from the initial evaluation (warmup and chunk compiles "
             "included), the online chunk's compile apart.", "",
             "| config | method | env steps | vector steps | return | success | wall s | "
             "online compile s | command s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        e = r["evals"][-1]
        lines.append(
            f"| {r['config']} | {r['method']} | {e['env_steps']} | {e['vector_steps']} | "
            f"{e['eval_return']:.2f} | {e['eval_success']} | {e['wall_s']:.1f} | "
            f"{r['online_compile_s']:.1f} | {r['seconds']:.0f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(work, ignore_errors=True)  # the tables stay; datasets and checkpoints do not
    return record


def _backend() -> str:
    import jax

    return jax.default_backend()


def _stem(results: Path, name: str) -> Path:
    return results / f"{name}_{_backend()}"


# --- the driver --------------------------------------------------------------------------------


def run_section(name: str, profile: str, results: Path) -> None:
    import jax

    print(f"[{name}] backend {jax.default_backend()}: {jax.devices()}", flush=True)
    globals()[f"section_{name}"](PROFILES[profile], results)


def drive(args: argparse.Namespace) -> int:
    """Every section in its own process within its budget and the overall deadline."""
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    profile = PROFILES[args.profile]
    start = time.perf_counter()
    records = []
    for name in args.sections:
        left = args.deadline - (time.perf_counter() - start)
        budget = min(profile["budget"][name], left)
        if budget < 10:
            records.append({"section": name, "status": "skipped (deadline)", "seconds": 0.0})
            continue
        cmd = [sys.executable, "-m", "benchmarks.gpu_window", "--section", name]
        cmd += ["--profile", args.profile, "--results", str(results)]
        t = time.perf_counter()
        print(f"== {name} (budget {budget:.0f} s)", flush=True)
        try:
            proc = subprocess.run(cmd, cwd=ROOT, timeout=budget)
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {budget:.0f} s"
        records.append(
            {"section": name, "status": status, "seconds": round(time.perf_counter() - t, 1)}
        )
        print(f"== {name}: {status} in {records[-1]['seconds']} s", flush=True)
    backend = _backend_of_subprocess()
    total = round(time.perf_counter() - start, 1)
    payload = {"profile": args.profile, "backend": backend, "total_s": total, "sections": records}
    stem = results / f"gpu_window_{backend}"
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    table = ["| section | status | seconds |", "|---|---|---|"]
    table += [f"| {r['section']} | {r['status']} | {r['seconds']} |" for r in records]
    summary = (
        f"# GPU window ({args.profile} profile, backend {backend}): {total} s in all\n\n"
        + "\n".join(table)
        + "\n"
    )
    stem.with_suffix(".md").write_text(summary)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out / f"gpu_window_{backend}.tar.gz", "w:gz") as tar:
            for f in sorted(results.glob(f"*_{backend}.*")):
                tar.add(f, arcname=f.name)
        shutil.copy(stem.with_suffix(".md"), out)
    print(summary, flush=True)
    return 0 if all(r["status"] == "ok" for r in records) else 1


def _backend_of_subprocess() -> str:
    """The backend the sections saw, without initialising one in the driver."""
    code = "import jax; print(jax.default_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes (CPU, CI)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help=argparse.SUPPRESS)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)  # one, in-process
    parser.add_argument(
        "--results",
        default=str(ROOT / "benchmarks" / "results"),
        help="where the tables go (default benchmarks/results)",
    )
    parser.add_argument("--out", help="also copy the tables here, as one archive")
    parser.add_argument(
        "--deadline", type=float, help="seconds for all sections together (GPU: 470)"
    )
    args = parser.parse_args(argv)
    args.profile = args.profile or ("dry" if args.dry_run else "gpu")
    args.deadline = args.deadline or PROFILES[args.profile]["deadline"]
    if args.section:
        run_section(args.section, args.profile, Path(args.results))
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
