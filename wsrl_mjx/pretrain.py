"""Offline pre-training: CQL, CalQL or IQL on a dataset held on device; resumable."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import envs
from wsrl_mjx import data
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.config import (
    Config,
    check_budget,
    check_single_seed,
    save_config,
    to_dict,
)
from wsrl_mjx.environment import env_meta, make_env
from wsrl_mjx.evaluate import make_evaluator
from wsrl_mjx.hostloop import Cadence, HostLoop
from wsrl_mjx.logger import Logger, Progress, read_metrics
from wsrl_mjx.loops import make_offline_chunk
from wsrl_mjx.memory import check_fits, evaluation_bytes, shape_bytes
from wsrl_mjx.methods import make_agent
from wsrl_mjx.rundir import atomic_write, holds_run_dir
from wsrl_mjx.setup import HOLDOUT_FILE, load_offline_data, resolve_env


@holds_run_dir  # one writer per run dir, for the run's whole life
def run_pretrain(cfg: Config, *, resume: bool = False) -> dict:
    """Train CQL/CalQL/IQL on a dataset held in device memory; checkpoint the whole agent every
    offline.checkpoint_every_steps. `resume` continues the latest checkpoint bit-exactly: it
    holds the agent state and (in its metadata) the rng; the data split follows the seed."""
    check_single_seed(cfg, "pretrain")
    jax.config.update("jax_default_matmul_precision", cfg.run.matmul_precision)
    run_dir = Path(cfg.run.run_dir)
    chunks = math.ceil(cfg.offline.steps / cfg.offline.chunk_length)
    total = chunks * cfg.offline.chunk_length
    granule = f"whole chunks of offline.chunk_length = {cfg.offline.chunk_length}"
    check_budget("offline.steps", cfg.offline.steps, total, granule)
    cfg = resolve_env(cfg)
    env = make_env(cfg.env)
    raw_fingerprint, loaded, returns = load_offline_data(cfg, env)
    arrays = {**loaded.arrays, "mc_returns": returns}
    train, holdout = data.split_holdout(arrays, cfg.offline.holdout_fraction, cfg.run.seed)
    if len(train["rewards"]) < 2:
        raise data.DatasetError(
            f"{cfg.offline.dataset}: {loaded.size} transitions leave {len(train['rewards'])} to "
            f"train on after holding out offline.holdout_fraction={cfg.offline.holdout_fraction}"
            "; pre-training needs at least 2"
        )
    algorithm = cfg.offline.algorithm
    agent = make_agent(algorithm, cfg.agent, cfg.offline, env.observation_size, env.action_size)
    check_memory(agent, env, train, cfg.eval.num_episodes)  # before anything is allocated
    dataset = data.to_device(train, train["mc_returns"])
    checkpointer = Checkpointer(run_dir / "checkpoints", keep=cfg.run.keep_checkpoints)
    if resume and checkpointer.latest_step() is None:
        raise CheckpointError(f"--resume: no checkpoint in {checkpointer.directory}")
    if not resume and checkpointer.latest_step() is not None:
        raise CheckpointError(
            f"{run_dir} already holds a pre-training checkpoint; pass --resume to continue it "
            "or choose another run.run_dir (nothing was overwritten)"
        )
    chunk = make_offline_chunk(
        agent, length=cfg.offline.chunk_length, batch_size=cfg.agent.batch_size
    )
    evaluate = make_evaluator(env, agent, cfg.eval.num_episodes, cfg.eval.episode_length)
    key = jax.random.PRNGKey(cfg.run.seed)
    init_key, rng = jax.random.split(key)
    state = agent.init(init_key)
    meta = {
        **env_meta(env),
        "algorithm": algorithm,
        "config": to_dict(cfg),
        "total_gradient_steps": total,
        "dataset": {
            "path": str(cfg.offline.dataset),
            "fingerprint": raw_fingerprint,  # of the file, before the reward transform
            "size": loaded.size,
            "train_size": int(dataset.reward.shape[0]),
            "metadata": loaded.metadata,
        },
    }
    start = 0
    if resume:  # checked before anything in the run dir is written: a refusal changes nothing
        check_resumable(checkpointer.meta(), meta)
        state, saved = checkpointer.restore(state)
        check_resumable(saved, meta)  # the step restored (a damaged newest one falls back)
        start = saved["gradient_steps"]
        rng = jnp.asarray(saved["rng"], dtype=rng.dtype)
    save_config(cfg, run_dir / "config.yaml")
    # The held-out slice travels with the agent so fine-tuning can track offline Q/TD error
    # (diagnostics only: no update ever samples it).
    atomic_write(run_dir / HOLDOUT_FILE, lambda f: np.savez(f, **holdout))
    logger = Logger(run_dir, tensorboard=cfg.run.tensorboard, resume_step=start if resume else None)
    evals = [_eval_record(r) for r in read_metrics(run_dir) if r["phase"] == "eval"]
    print(
        f"[pretrain] {algorithm} on {env.name}: {loaded.size} transitions "
        f"({dataset.reward.shape[0]} train), {total} gradient steps"
        + (f", resumed at {start}" if resume else ""),
        flush=True,
    )
    loop = HostLoop(
        logger=logger,
        checkpointer=checkpointer,
        progress=Progress(total, start, cfg.run.progress, f"pretrain-{algorithm}"),
        evaluation=Cadence.after(start, cfg.offline.eval_every_steps),
        checkpoints=Cadence.after(start, cfg.offline.checkpoint_every_steps),
        unit="gradient step",
    )
    eval_key = jax.random.PRNGKey(cfg.run.seed + 10_000)
    gradient_rate = lambda rates: {"gradient_steps_per_s": rates["updates_per_s"]}  # noqa: E731
    t0 = time.perf_counter()
    try:
        for i in range(start // cfg.offline.chunk_length, chunks):
            state, rng, metrics = chunk(state, rng, dataset)
            steps = (i + 1) * cfg.offline.chunk_length
            summary = {k: float(np.mean(v)) for k, v in jax.device_get(metrics).items()}
            loop.record(steps, steps, "pretrain", summary, gradient_rate)
            last = i == chunks - 1
            if loop.eval_due(steps, force=last):
                result = evaluate(state.actor.params, eval_key)
                record = {
                    "gradient_steps": steps,
                    **{f"eval_{k}": float(v) for k, v in result.items()},
                }
                evals.append(record)
                loop.log(steps, "eval", record)
            if loop.checkpoint_due(steps, force=last):
                rng_list = np.asarray(jax.device_get(rng)).tolist()
                checkpointer.save(steps, state, {**meta, "gradient_steps": steps, "rng": rng_list})
            if not last:
                loop.stop_if_requested(steps)
    finally:
        loop.close()
    checkpointer.close()
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(run_dir / "checkpoints"),
        "gradient_steps": total,
        "evals": evals,
        "final_eval_return": evals[-1]["eval_return"] if evals else float("nan"),
        "target_entropy": agent.target_entropy,
        "seconds": time.perf_counter() - t0,
        "state": state,
    }


def check_memory(agent: Agent, env: envs.Env, train: dict, num_episodes: int) -> None:
    """Refuse a pre-training whose data and state cannot fit, before either is allocated."""
    key = jax.random.PRNGKey(0)
    check_fits(
        {
            "dataset": data.device_bytes(train),
            "agent": shape_bytes(lambda: agent.init(key)),
            "evaluation envs": evaluation_bytes(env, num_episodes),
        },
        "use fewer transitions, lower the network widths or eval.num_episodes",
    )


def _eval_record(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("env_steps", "phase", "time")}


# Settings a resumed pre-training may change: budgets and cadences, not what is learnt.
RESUME_MAY_CHANGE = {
    "offline.steps",
    "offline.eval_every_steps",
    "offline.checkpoint_every_steps",
    "offline.dataset",  # a moved file: the fingerprint above still names the data
}


_RESUME_KEYS = {"env": None, "agent": None, "offline": None, "run": ("seed", "matmul_precision")}


def check_resumable(saved: dict, meta: dict) -> None:
    """Refuse to continue a checkpoint made on other data or with other settings."""
    if saved.get("dataset", {}).get("fingerprint") != meta["dataset"]["fingerprint"]:
        raise CheckpointError(
            f"--resume: the checkpoint was pre-trained on other data ({saved['dataset']['path']}, "
            f"fingerprint {saved['dataset'].get('fingerprint')}); this run has "
            f"{meta['dataset']['path']} ({meta['dataset']['fingerprint']})"
        )
    now = json.loads(json.dumps(meta["config"]))  # tuples -> lists, as saved
    for section, keys in _RESUME_KEYS.items():
        for key in keys or now[section]:
            name, value = f"{section}.{key}", now[section][key]
            was = saved["config"][section].get(key)
            if name not in RESUME_MAY_CHANGE and was != value:
                raise CheckpointError(
                    f"--resume: {name}={value!r} but the checkpoint was made with {was!r}; "
                    "use the same value or start a new run.run_dir"
                )
    if "rng" not in saved:
        raise CheckpointError("--resume: the checkpoint records no rng (an older version)")
