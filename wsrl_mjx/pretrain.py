"""Offline pre-training: CQL, CalQL or IQL on a dataset held on device; resumable.

`run_pretrain` reads top to bottom: the setup (env, dataset split, agent; `wsrl_mjx.setup`),
the guards and the initial or restored state, then one phase (`offline_phase`) run by the
shared runner (`wsrl_mjx.runner.run_phase`) with `OfflineRun` as its host side."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import envs
from wsrl_mjx import data
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.config import (
    RESUME_MAY_CHANGE,
    Config,
    check_budget,
    check_resume_settings,
    check_single_seed,
    to_dict,
)
from wsrl_mjx.environment import env_meta, make_eval_env
from wsrl_mjx.evaluate import make_evaluator
from wsrl_mjx.hostloop import HostLoop
from wsrl_mjx.logger import read_evals
from wsrl_mjx.loops import make_offline_chunk
from wsrl_mjx.memory import check_fits, evaluation_bytes, shape_bytes
from wsrl_mjx.render import EvalVideos
from wsrl_mjx.rundir import atomic_write, holds_run_dir
from wsrl_mjx.runner import (
    Cadences,
    Phase,
    begin,
    eval_key,
    open_checkpointers,
    open_run,
    run_phase,
    running,
)
from wsrl_mjx.setup import HOLDOUT_FILE, setup_pretrain
from wsrl_mjx.types import AgentState, Transition


@dataclass(frozen=True)
class OfflineState:
    """What the offline phase carries from chunk to chunk (the step count stays on the host)."""

    agent: AgentState
    rng: jax.Array
    gradient_steps: int


def offline_phase(agent: Agent, cfg: Config, dataset: Transition, total: int) -> Phase:
    """CQL/CalQL/IQL updates on minibatches of `dataset` (held on device) in whole chunks of
    offline.chunk_length gradient steps, until `total`."""
    length = cfg.offline.chunk_length
    compiled = make_offline_chunk(agent, length=length, batch_size=cfg.agent.batch_size)

    def chunk(state: OfflineState) -> tuple[OfflineState, dict]:
        agent_state, rng, metrics = compiled(state.agent, state.rng, dataset)
        return OfflineState(agent_state, rng, state.gradient_steps + length), metrics

    return Phase("pretrain", chunk, end=total, timer="pretrain_s")


@dataclass
class OfflineRun:
    """The host side of a pre-training (`wsrl_mjx.runner.Run`): one seed, steps in gradient
    steps, the rng in every checkpoint's metadata so a resume continues bit-exactly."""

    loops: list[HostLoop]
    total: int
    evaluator: Callable
    eval_key: jax.Array
    meta: dict
    evals: list[dict]
    videos: EvalVideos | None = None  # eval.video_every (in gradient steps)

    def step(self, state: OfflineState) -> int:
        return state.gradient_steps

    def record(self, state: OfflineState, metrics: dict, phase: Phase, start: int) -> None:
        summary = {k: float(np.mean(v)) for k, v in jax.device_get(metrics).items()}
        steps = state.gradient_steps
        self.loops[0].record(steps, steps, phase.name, summary, _gradient_rate)

    def evaluate(self, state: OfflineState, step: int, label: str) -> None:
        result = self.evaluator(state.agent.actor.params, self.eval_key)
        record = {"gradient_steps": step, **{f"eval_{k}": float(v) for k, v in result.items()}}
        self.evals.append(record)
        self.loops[0].log(step, "eval", record)
        if self.videos is not None:
            self.videos(state.agent.actor.params, step)

    def save(self, state: OfflineState, step: int) -> None:
        rng = np.asarray(jax.device_get(state.rng)).tolist()
        meta = {**self.meta, "gradient_steps": step, "rng": rng}
        self.loops[0].checkpointer.save(step, state.agent, meta)


def _gradient_rate(rates: dict) -> dict:
    return {"gradient_steps_per_s": rates["updates_per_s"]}


@holds_run_dir  # one writer per run dir, for the run's whole life
def run_pretrain(cfg: Config, *, resume: bool = False) -> dict:
    """Train CQL/CalQL/IQL on a dataset held in device memory; checkpoint the whole agent every
    offline.checkpoint_every_steps. `resume` continues the latest checkpoint bit-exactly: it
    holds the agent state and (in its metadata) the rng; the data split follows the seed."""
    check_single_seed(cfg, "pretrain")
    begin(cfg)
    chunks = math.ceil(cfg.offline.steps / cfg.offline.chunk_length)
    total = chunks * cfg.offline.chunk_length
    granule = f"whole chunks of offline.chunk_length = {cfg.offline.chunk_length}"
    check_budget("offline.steps", cfg.offline.steps, total, granule)
    checkpointers = open_checkpointers([cfg], resume)
    setup = setup_pretrain(cfg)
    cfg, env, agent, loaded = setup.cfg, setup.env, setup.agent, setup.loaded
    check_memory(agent, env, setup.train, cfg.eval.num_episodes)  # before anything is allocated
    dataset = data.to_device(setup.train, setup.train["mc_returns"])
    init_key, rng = jax.random.split(jax.random.PRNGKey(cfg.run.seed))
    state = OfflineState(agent.init(init_key), rng, 0)
    meta = {
        **env_meta(env),
        "algorithm": cfg.offline.algorithm,
        "config": to_dict(cfg),
        "total_gradient_steps": total,
        "dataset": {
            "path": str(cfg.offline.dataset),
            "fingerprint": setup.fingerprint,  # of the file, before the reward transform
            "size": loaded.size,
            "train_size": int(dataset.reward.shape[0]),
            "metadata": loaded.metadata,
        },
    }
    loops, state = open_run(
        [cfg],
        checkpointers,
        resume,
        state,
        lambda checkpointers, state: restore_offline(checkpointers[0], state, meta),
        lambda state: state.gradient_steps,
        total=total,
        label=f"pretrain-{cfg.offline.algorithm}",
        cadences=Cadences(
            cfg.offline.eval_every_steps, cfg.offline.checkpoint_every_steps, "gradient step"
        ),
    )
    start, run_dir = state.gradient_steps, Path(cfg.run.run_dir)
    # The held-out slice travels with the agent so fine-tuning can track offline Q/TD error
    # (diagnostics only: no update ever samples it).
    atomic_write(run_dir / HOLDOUT_FILE, lambda f: np.savez(f, **setup.holdout))
    evals = read_evals(run_dir, drop=("env_steps",))  # steps: gradient_steps
    print(
        f"[pretrain] {cfg.offline.algorithm} on {env.name}: {loaded.size} transitions "
        f"({dataset.reward.shape[0]} train), {total} gradient steps"
        + (f", resumed at {start}" if resume else ""),
        flush=True,
    )
    eval_env = make_eval_env(cfg, env)
    evaluator = make_evaluator(eval_env, agent, cfg.eval.num_episodes, cfg.eval.episode_length)
    videos = None
    if cfg.eval.video_every:
        videos = EvalVideos(env, agent, run_dir, cfg.eval.video_every, loops[0].logger)
    run = OfflineRun(loops, total, evaluator, eval_key(cfg), meta, evals, videos)
    t0 = time.perf_counter()
    with running(loops):
        state = run_phase(run, offline_phase(agent, cfg, dataset, total), state)
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(run_dir / "checkpoints"),
        "gradient_steps": total,
        "evals": evals,
        "final_eval_return": evals[-1]["eval_return"] if evals else float("nan"),
        "target_entropy": agent.target_entropy,
        "seconds": time.perf_counter() - t0,
        "state": state.agent,
    }


def restore_offline(checkpointer: Checkpointer, state: OfflineState, meta: dict) -> OfflineState:
    """The newest checkpoint's agent and rng (a damaged newest one falls back to the one
    before), refused if it was made on other data or with settings a resume may not change;
    checked before anything in the run dir is written, so a refusal changes nothing."""
    check_resumable(checkpointer.meta(), meta)
    restored, saved = checkpointer.restore(state.agent)
    check_resumable(saved, meta)  # the step restored
    rng = jnp.asarray(saved["rng"], dtype=state.rng.dtype)
    return OfflineState(restored, rng, saved["gradient_steps"])


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


def check_resumable(saved: dict, meta: dict) -> None:
    """Refuse to continue a checkpoint made on other data or with other settings (the one
    resume rule, `config.RESUME_MAY_CHANGE["pretrain"]`)."""
    if saved.get("dataset", {}).get("fingerprint") != meta["dataset"]["fingerprint"]:
        raise CheckpointError(
            f"--resume: the checkpoint was pre-trained on other data ({saved['dataset']['path']}, "
            f"fingerprint {saved['dataset'].get('fingerprint')}); this run has "
            f"{meta['dataset']['path']} ({meta['dataset']['fingerprint']})"
        )
    check_resume_settings(saved.get("config", {}), meta["config"], RESUME_MAY_CHANGE["pretrain"])
    if "rng" not in saved:
        raise CheckpointError("--resume: the checkpoint records no rng (an older version)")
