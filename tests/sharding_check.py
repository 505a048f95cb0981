"""Run by tests/test_sharding.py in a subprocess (XLA_FLAGS must be set before jax is imported):
the tiny PointMass loop on 1 device and sharded over 4 simulated CPU devices from the same seed,
and 2 seeds in one program on 1 device and split over 2 devices. Prints one JSON line of
measurements; the test makes the assertions."""

import dataclasses
import json
import os
import re
import sys

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # tests/distributed_check.py sets its own count (2 per process) and imports `run` from here.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from tests.common import TINY  # noqa: E402
from wsrl_mjx.agents.sac import make_sac  # noqa: E402
from wsrl_mjx.config import ConfigError  # noqa: E402
from wsrl_mjx.core.environment import make_env  # noqa: E402
from wsrl_mjx.core.loops import make_chunk, policy_actions  # noqa: E402
from wsrl_mjx.core.online_system import OnlinePlan, build_online, init_training_state  # noqa: E402
from wsrl_mjx.core.replay import make_replay  # noqa: E402
from wsrl_mjx.runtime.policy import load_config, seed_configs  # noqa: E402
from wsrl_mjx.runtime.sharding import data_sharding, seed_sharding  # noqa: E402

ONLINE_CHUNKS = 2
# Cross-device communication in a compiled (partitioned) program's HLO.
COLLECTIVES = re.compile(
    r"\b(all-reduce|all-gather|collective-permute|all-to-all|reduce-scatter)\b"
)


def collectives(compiled) -> int:
    return len(COLLECTIVES.findall(compiled.as_text()))


def run(cfg, num_devices: int, before_first_call=None):
    """`before_first_call(chunks, state) -> chunks`, if given, runs once the chunks are built
    and the initial state is placed, and returns the chunks to call (tests/distributed_check.py
    compiles them there, then waits for the other process)."""
    env = make_env(cfg.env)
    agent = make_sac(cfg.agent, env.observation_size, env.action_size)
    rows = cfg.agent.critic_minibatches * cfg.agent.batch_size
    buffer = make_replay(cfg.online.buffer_capacity, rows)
    batch_env = envs.BatchEnv(env, cfg.online.num_envs)
    sharding = data_sharding(num_devices, cfg.online.num_envs, rows)
    common = dict(action_fn=policy_actions(agent), sharding=sharding)
    warmup = make_chunk(batch_env, agent, buffer, length=5, update_rounds=0, **common)
    online = make_chunk(batch_env, agent, buffer, length=5, update_rounds=1, **common)
    # Jitted: an eager vmapped MJX reset takes tens of seconds on CPU.
    state = jax.jit(lambda: init_training_state(cfg, agent, batch_env, buffer))()
    if sharding is not None:
        state = sharding.place_state(state)
    if before_first_call is not None:
        warmup, online = before_first_call((warmup, online), state)
    state, _ = warmup(state, None)
    losses = []
    for _ in range(ONLINE_CHUNKS):
        state, metrics = online(state, None)
        losses.append({k: np.asarray(metrics[k]) for k in ("critic_loss", "actor_loss")})
    compiles = online._cache_size() if hasattr(online, "_cache_size") else None
    info = {"online_chunk_compiles": compiles}
    if before_first_call is None:  # the compiled program (cached: no second compile)
        info["online_chunk_collectives"] = collectives(online.lower(state, None).compile())
    losses = {k: np.concatenate([m[k] for m in losses]) for k in losses[0]}
    return state, losses, info


def run_seeds(cfg, num_devices: int):
    """2 seeds in one program (`run.num_seeds=2`) split over `num_devices`: online chunks only
    (each iteration adds to the buffer before it samples), called through the compiled chunk."""
    run_cfg = dataclasses.replace(cfg.run, num_seeds=2, num_devices=num_devices, run_dir="unused")
    cfgs = seed_configs(dataclasses.replace(cfg, run=run_cfg))
    system = build_online(cfgs, [OnlinePlan()] * len(cfgs))
    state = system.init_state()
    online = system.online_chunk.lower(state, system.aux).compile()
    losses = []
    for _ in range(ONLINE_CHUNKS):
        state, metrics = online(state, system.aux)
        losses.append(np.asarray(metrics["critic_loss"]))
    return state, np.concatenate(losses, axis=1), collectives(online)


def seeds_over_devices(cfg) -> dict:
    one, one_losses, _ = run_seeds(cfg, 1)
    split, split_losses, communicated = run_seeds(cfg, 2)
    leaves = list(zip(jax.tree.leaves(one), jax.tree.leaves(split), strict=True))
    return {
        "seeds_losses_shape": list(split_losses.shape),
        "seeds_losses_close": bool(np.allclose(one_losses, split_losses, rtol=1e-4, atol=1e-6)),
        "seeds_losses_differ": bool(not np.allclose(split_losses[0], split_losses[1])),
        "seeds_state_close": all(
            bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)) for a, b in leaves
        ),
        # Every leaf of the 2-device state: one seed per device, nothing replicated.
        "seeds_split": all(
            len(x.sharding.device_set) == 2
            and all(shard.data.shape[0] == 1 for shard in x.addressable_shards)
            for x in jax.tree.leaves(split)
        ),
        "seeds_collectives": communicated,
        "seeds_indivisible_error": _error(lambda: seed_sharding(2, 3)),
    }


def _error(fn) -> str:
    try:
        fn()
    except ConfigError as e:
        return str(e)
    return ""


def main() -> None:
    assert jax.device_count() == 4, jax.devices()
    cfg = load_config(None, [*TINY, "agent.critic_minibatches=2"])
    single, single_losses, _ = run(cfg, 1)
    sharded, sharded_losses, info = run(cfg, 4)

    out = {"threefry_partitionable": bool(jax.config.jax_threefry_partitionable)}
    # The 4-device losses, for tests/distributed_check.py (2 processes x 2 devices).
    out["sharded_losses"] = {k: v.tolist() for k, v in sharded_losses.items()}
    out["online_chunk_compiles"] = info["online_chunk_compiles"]
    # Data parallelism communicates (gradient all-reduce): the collectives count sees it.
    out["data_parallel_collectives"] = info["online_chunk_collectives"]
    for k in single_losses:
        a, b = single_losses[k], sharded_losses[k]
        out[f"{k}_max_abs"] = float(np.max(np.abs(a - b)))
        out[f"{k}_max_rel"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-8)))
        out[f"{k}_close"] = bool(np.allclose(a, b, rtol=1e-4, atol=1e-6))
        out[f"{k}_n"] = int(a.size)
    leaves = list(zip(jax.tree.leaves(single.agent), jax.tree.leaves(sharded.agent), strict=True))
    diffs = [np.abs(np.asarray(a) - np.asarray(b)) for a, b in leaves]
    out["agent_max_abs"] = max(float(np.max(d, initial=0.0)) for d in diffs)
    out["agent_close"] = all(
        bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)) for a, b in leaves
    )
    # Parameters: replicated on all 4 devices, every copy bit-identical.
    replicated, identical = True, True
    for leaf in jax.tree.leaves(sharded.agent):
        replicated &= leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        identical &= len(shards) == 4 and all(np.array_equal(shards[0], s) for s in shards[1:])
    out["params_replicated"] = bool(replicated)
    out["params_identical_across_devices"] = bool(identical)
    # Env state: per-env leaves split over the 4 devices (1 env each).
    env_leaves = [x for x in jax.tree.leaves(sharded.env.env_state) if x.size]
    env_leaves += [sharded.env.obs, sharded.env.steps, sharded.env.episode_return]
    out["env_leaves_split"] = bool(
        all(
            len(x.sharding.device_set) == 4
            and not x.sharding.is_fully_replicated
            and all(s.data.shape[0] == x.shape[0] // 4 for s in x.addressable_shards)
            for x in env_leaves
        )
    )
    obs_buffer = sharded.buffer.experience.obs
    out["buffer_split"] = bool(
        not obs_buffer.sharding.is_fully_replicated
        and all(s.data.shape[1] == obs_buffer.shape[1] // 4 for s in obs_buffer.addressable_shards)
    )
    # The envs stepped identically (physics has no cross-env reduction).
    out["env_obs_max_abs"] = float(
        np.max(np.abs(np.asarray(single.env.obs) - np.asarray(sharded.env.obs)))
    )
    out.update(seeds_over_devices(cfg))
    out["indivisible_envs_error"] = _error(lambda: data_sharding(4, 6, 32))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
