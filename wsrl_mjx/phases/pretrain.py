"""Offline pre-training: CQL, CalQL or IQL on a dataset held on device; resumable.

`run_pretrain` reads top to bottom: the setup (env, dataset split, agent; `wsrl_mjx.phases.setup`),
the guards and the initial or restored state, then `train_offline`: the compiled chunk
(`offline_chunk`) run chunk by chunk with `OfflineRun` as its host side (the runner's services,
`wsrl_mjx.runtime.runner.HostLoop`, do the bookkeeping)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.config import Config, OfflineConfig, to_dict
from wsrl_mjx.core.environment import env_meta, make_eval_env
from wsrl_mjx.core.evaluate import make_evaluator
from wsrl_mjx.core.loops import make_offline_chunk, pad_rows, seed_slice, stack_seeds, strong_copy
from wsrl_mjx.datasets import data, scores
from wsrl_mjx.phases.render import EvalVideos
from wsrl_mjx.phases.setup import HOLDOUT_FILE, setup_pretrain
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.logger import read_evals
from wsrl_mjx.runtime.memory import check_fits, evaluation_bytes, shape_bytes
from wsrl_mjx.runtime.policy import (
    RESUME_MAY_CHANGE,
    check_budget,
    check_resume_settings,
    seed_configs,
)
from wsrl_mjx.runtime.rundir import atomic_write, holding
from wsrl_mjx.runtime.runner import (
    Cadences,
    HostLoop,
    align_seeds,
    begin,
    eval_key,
    open_checkpointers,
    open_loops,
    running,
)
from wsrl_mjx.types import AgentState, Transition


@dataclass(frozen=True)
class OfflineState:
    """What the offline phase carries from chunk to chunk (the step count stays on the host);
    with several seeds `agent` and `rng` have a leading seed axis."""

    agent: AgentState
    rng: jax.Array
    gradient_steps: int


def offline_chunk(
    agent: Agent, cfg: Config, dataset: Transition, sizes: jax.Array, seeded: bool = False
) -> Callable[[OfflineState], tuple[OfflineState, dict]]:
    """CQL/CalQL/IQL updates on minibatches of `dataset`'s first `sizes` rows (held on device;
    one per seed with `seeded`): one chunk of offline.chunk_length gradient steps."""
    length = cfg.offline.chunk_length
    compiled = make_offline_chunk(
        agent, length=length, batch_size=cfg.agent.batch_size, seeded=seeded
    )

    def chunk(state: OfflineState) -> tuple[OfflineState, dict]:
        agent_state, rng, metrics = compiled(state.agent, state.rng, dataset, sizes)
        return OfflineState(agent_state, rng, state.gradient_steps + length), metrics

    return chunk


def train_offline(
    run: OfflineRun, chunk: Callable, state: OfflineState, converged: Callable[[], bool]
) -> OfflineState:
    """Whole chunks until `run.total`, or until `converged()` says so after an evaluation (then
    checkpointed there); after each chunk its log record (the NaN guard first), evaluation and
    checkpoint when due and always at the end, then a stop if SIGINT/SIGTERM asked for one."""
    loop = run.loops[0]
    while (start := state.gradient_steps) < run.total:
        with loop.timed("pretrain_s"):
            state, metrics = chunk(state)
            run.record(state, metrics, start)
        step = state.gradient_steps
        finished, stop_here = step >= run.total, False
        if loop.evaluation_due(step, force=finished):
            run.evaluate(state, step)
            stop_here = converged()
        if loop.checkpoint_due(step, force=finished or stop_here):
            run.save(state, step)
        if stop_here:
            break
        loop.stop_if_requested(step, finished)
    return state


def plateaued(offline: OfflineConfig, env_name: str, seed_evals: list[list[dict]]) -> bool:
    """offline.plateau_*'s stopping rule on the evaluations so far (means over seeds): from
    plateau_from on, the last plateau_window scores' mean within plateau_score of the window's
    before, and the held-out Q moved by less than a plateau_q share over the last window."""
    window, count = offline.plateau_window, min(len(e) for e in seed_evals)
    if not offline.plateau_from or count < 2 * window:
        return False
    if seed_evals[0][count - 1]["gradient_steps"] < offline.plateau_from:
        return False

    def mean_over_seeds(value: Callable[[dict], float | None]) -> np.ndarray:
        rows = [[value(r) for r in evals[:count]] for evals in seed_evals]
        return np.mean(np.asarray(rows, dtype=float), axis=0)  # None -> NaN: never plateaus

    def score(record: dict) -> float | None:
        normalized = scores.normalized_of(env_name, record, prefix="eval_")
        return record.get("eval_return") if normalized is None else normalized

    score_means, q = mean_over_seeds(score), mean_over_seeds(lambda r: r.get("eval_offline_q"))
    score_moved = abs(score_means[-window:].mean() - score_means[-2 * window : -window].mean())
    q_moved = abs(q[-1] - q[-1 - window]) / max(abs(q[-1 - window]), 1e-8)
    return bool(score_moved <= offline.plateau_score and q_moved < offline.plateau_q)


@dataclass
class OfflineRun:
    """The host side of a pre-training, between chunks (`train_offline`): steps in gradient
    steps, the rng in every checkpoint's metadata so a resume continues bit-exactly; one host
    loop, metadata and evaluation list per seed (`seeded`: the state has a leading seed axis)."""

    loops: list[HostLoop]
    total: int
    evaluator: Callable
    eval_keys: jax.Array  # one key, or [seeds, 2]
    metas: list[dict]
    evals: list[list[dict]]
    seeded: bool = False
    videos: EvalVideos | None = None  # eval.video_every (in gradient steps; the first seed)
    diagnose: Callable | None = None  # (agent state, eval keys) -> held-out Q and TD error

    def record(self, state: OfflineState, metrics: dict, start: int) -> None:
        metrics, steps = jax.device_get(metrics), state.gradient_steps
        for k, loop in enumerate(self.loops):
            seed_metrics = seed_slice(metrics, k, self.seeded)
            summary = {name: float(np.mean(v)) for name, v in seed_metrics.items()}
            loop.record(steps, steps, "pretrain", summary)

    def evaluate(self, state: OfflineState, step: int) -> None:
        results = self.evaluator(state.agent.actor.params, self.eval_keys)
        if self.diagnose is not None:  # the held-out rows fine-tuning tracks, from the start
            results = {**results, **self.diagnose(state.agent, self.eval_keys)}
        results = jax.device_get(results)
        for k, loop in enumerate(self.loops):
            result = seed_slice(results, k, self.seeded)
            record = {"gradient_steps": step, **{f"eval_{n}": float(v) for n, v in result.items()}}
            self.evals[k].append(record)
            loop.logger.log(step, "eval", record)
        if self.videos is not None:
            self.videos(seed_slice(state.agent.actor.params, 0, self.seeded), step)

    def save(self, state: OfflineState, step: int) -> None:
        rngs = np.asarray(jax.device_get(state.rng))
        for k, loop in enumerate(self.loops):
            rng = seed_slice(rngs, k, self.seeded).tolist()
            meta = {**self.metas[k], "gradient_steps": step, "rng": rng}
            loop.checkpointer.save(step, seed_slice(state.agent, k, self.seeded), meta)


def run_pretrain(cfg: Config, *, resume: bool = False) -> dict | list[dict]:
    """Train CQL/CalQL/IQL on a dataset held in device memory; checkpoint the whole agent every
    offline.checkpoint_every_steps. `resume` continues the latest checkpoint bit-exactly: it
    holds the agent state and (in its metadata) the rng; the data split follows the seed.
    With run.num_seeds > 1 the seeds (each its own split, run dir and checkpoints) are one
    vmapped program, and a summary per seed is returned."""
    summaries = pretrain_seeds(seed_configs(cfg), resume=resume)
    return summaries if cfg.run.num_seeds > 1 else summaries[0]


def pretrain_seeds(cfgs: list[Config], *, resume: bool = False) -> list[dict]:
    """One pre-training per config (seeds of one setting), one program; a summary each."""
    with holding(cfgs):  # one writer per run dir, for the run's whole life
        cfg, seeded = cfgs[0], len(cfgs) > 1
        begin(cfg)
        chunks = math.ceil(cfg.offline.steps / cfg.offline.chunk_length)
        total = chunks * cfg.offline.chunk_length
        granule = f"whole chunks of offline.chunk_length = {cfg.offline.chunk_length}"
        check_budget("offline.steps", cfg.offline.steps, total, granule)
        checkpointers = open_checkpointers(cfgs, resume)
        setups = [setup_pretrain(c) for c in cfgs]  # each seed's own split of the dataset
        cfg, env, agent, loaded = setups[0].cfg, setups[0].env, setups[0].agent, setups[0].loaded
        # Before anything is allocated:
        check_memory(agent, env, setups[0].train, cfg.eval.num_episodes, len(cfgs))
        datasets = [data.to_device(s.train, s.train["mc_returns"]) for s in setups]
        sizes = [d.reward.shape[0] for d in datasets]  # each seed's split: its own length
        dataset = (
            stack_seeds([pad_rows(d, max(sizes)) for d in datasets]) if seeded else datasets[0]
        )
        sizes = jnp.asarray(sizes if seeded else sizes[0], jnp.int32)
        starts = [jax.random.split(jax.random.PRNGKey(s.cfg.run.seed)) for s in setups]
        agents = [agent.init(init_key) for init_key, _ in starts]
        rngs = [rng for _, rng in starts]
        state = OfflineState(
            stack_seeds(agents) if seeded else agents[0],
            jnp.stack(rngs) if seeded else rngs[0],
            0,
        )
        metas = [pretrain_meta(s, d, total) for s, d in zip(setups, datasets, strict=True)]
        if resume:
            state = restore_offline(checkpointers, state, metas, seeded)
        loops = open_loops(
            [s.cfg for s in setups],
            checkpointers,
            start=state.gradient_steps,
            resume=resume,
            total=total,
            label=f"pretrain-{cfg.offline.algorithm}",
            cadences=Cadences(
                cfg.offline.eval_every_steps, cfg.offline.checkpoint_every_steps, "gradient step"
            ),
        )
        start, run_dirs = state.gradient_steps, [Path(s.cfg.run.run_dir) for s in setups]
        # The held-out slice travels with the agent so fine-tuning can track offline Q/TD error
        # (diagnostics only: no update ever samples it).
        for setup, run_dir in zip(setups, run_dirs, strict=True):
            atomic_write(run_dir / HOLDOUT_FILE, lambda f, s=setup: np.savez(f, **s.holdout))
        evals = [read_evals(run_dir, drop=("env_steps",)) for run_dir in run_dirs]
        seeds = f" x {len(cfgs)} seeds in one program" if seeded else ""
        print(
            f"[pretrain] {cfg.offline.algorithm} on {env.name}{seeds}: {loaded.size} transitions "
            f"({datasets[0].reward.shape[0]} train), {total} gradient steps"
            + (f", resumed at {start}" if resume else ""),
            flush=True,
        )
        eval_env = make_eval_env(cfg, env)
        evaluator = make_evaluator(eval_env, agent, cfg.eval.num_episodes, cfg.eval.episode_length)
        keys = [eval_key(s.cfg) for s in setups]
        eval_keys = jnp.stack(keys) if seeded else keys[0]
        if seeded:
            evaluator = jax.jit(jax.vmap(evaluator))
        videos = None
        if cfg.eval.video_every:
            videos = EvalVideos(env, agent, run_dirs[0], cfg.eval.video_every, loops[0].logger)
        diagnose = held_out_diagnostics(
            agent, [s.holdout for s in setups], cfg.finetune.holdout_rows
        )
        run = OfflineRun(loops, total, evaluator, eval_keys, metas, evals, seeded, videos, diagnose)
        t0 = time.perf_counter()

        def converged() -> bool:
            """The plateau rule; where it holds, the checkpoint saved next records the run as
            finished there (fine-tuning refuses unfinished pre-trainings)."""
            if not plateaued(cfg.offline, env.name, evals):
                return False
            step = evals[0][-1]["gradient_steps"]
            for meta in metas:
                meta.update(total_gradient_steps=step, plateaued_at=step)
            return True

        with running(loops):
            chunk = offline_chunk(agent, cfg, dataset, sizes, seeded)
            state = train_offline(run, chunk, state, converged)
        if state.gradient_steps < total:
            print(
                f"[pretrain] score and held-out Q plateaued (offline.plateau_*): stopped at "
                f"{state.gradient_steps} of {total} gradient steps",
                flush=True,
            )
        summaries = [
            {
                "run_dir": str(run_dir),
                "checkpoint": str(run_dir / "checkpoints"),
                "gradient_steps": state.gradient_steps,
                "evals": evals[k],
                "final_eval_return": evals[k][-1]["eval_return"] if evals[k] else float("nan"),
                "target_entropy": agent.target_entropy,
                "seconds": time.perf_counter() - t0,
                "state": seed_slice(state.agent, k, seeded),
            }
            for k, run_dir in enumerate(run_dirs)
        ]
        return summaries


def held_out_diagnostics(agent: Agent, holdouts: list[dict], rows: int) -> Callable:
    """(agent state, eval keys) -> Q and TD error on the first `rows` held-out rows of each
    seed: the rows fine-tuning tracks, so the probe reads the same from pre-training on (seeds in
    one program: as many rows as the shortest split holds, where that is fewer)."""
    rows = min(rows, *(len(h["rewards"]) for h in holdouts))
    batches = [{k: v[:rows] for k, v in h.items()} for h in holdouts]
    batches = [data.to_device(b, b["mc_returns"]) for b in batches]
    if len(batches) == 1:
        probe = jax.jit(agent.diagnostics)
        return lambda agent_state, key: probe(agent_state, batches[0], key)
    probe, stacked = jax.jit(jax.vmap(agent.diagnostics)), stack_seeds(batches)
    return lambda agent_state, keys: probe(agent_state, stacked, keys)


def pretrain_meta(setup: Any, dataset: Transition, total: int) -> dict:
    """What each checkpoint of a seed's pre-training records besides its step and rng."""
    cfg = setup.cfg
    return {
        **env_meta(setup.env),
        "algorithm": cfg.offline.algorithm,
        "config": to_dict(cfg),
        "total_gradient_steps": total,
        "dataset": {
            "path": str(cfg.offline.dataset),
            "fingerprint": setup.fingerprint,  # of the file, before the reward transform
            "size": setup.loaded.size,
            "train_size": int(dataset.reward.shape[0]),
            "metadata": setup.loaded.metadata,
        },
    }


def restore_offline(
    checkpointers: list[Checkpointer], state: OfflineState, metas: list[dict], seeded: bool
) -> OfflineState:
    """Each seed's newest checkpoint's agent and rng (a damaged newest one falls back to the one
    before; seeds stopped between their saves resume from the newest step all hold), refused
    if it was made on other data or with settings a resume may not change; checked before
    anything in the run dir is written, so a refusal changes nothing."""
    step = align_seeds(checkpointers) if seeded else None
    agents, rngs, steps = [], [], set()
    for k, (checkpointer, meta) in enumerate(zip(checkpointers, metas, strict=True)):
        check_resumable(checkpointer.meta(step), meta)
        restored, saved = checkpointer.restore(seed_slice(state.agent, k, seeded), step)
        check_resumable(saved, meta)  # the step restored
        agents.append(restored)
        rngs.append(jnp.asarray(saved["rng"], dtype=state.rng.dtype))
        steps.add(saved["gradient_steps"])
    if len(steps) > 1:
        raise CheckpointError(f"--resume: the seeds' checkpoints are at different steps {steps}")
    if not seeded:
        return OfflineState(agents[0], rngs[0], steps.pop())
    return OfflineState(strong_copy(stack_seeds(agents)), jnp.stack(rngs), steps.pop())


def check_memory(
    agent: Agent, env: envs.Env, train: dict, num_episodes: int, seeds: int = 1
) -> None:
    """Refuse a pre-training whose data and state cannot fit, before either is allocated."""
    key = jax.random.PRNGKey(0)
    check_fits(
        {
            "dataset": seeds * data.device_bytes(train),
            "agent": seeds * shape_bytes(lambda: agent.init(key)),
            "evaluation envs": seeds * evaluation_bytes(env, num_episodes),
        },
        "use fewer transitions, lower the network widths or eval.num_episodes",
    )


def check_resumable(saved: dict, meta: dict) -> None:
    """Refuse to continue a checkpoint made on other data or with other settings (the one
    resume rule, `policy.RESUME_MAY_CHANGE["pretrain"]`)."""
    if saved.get("dataset", {}).get("fingerprint") != meta["dataset"]["fingerprint"]:
        raise CheckpointError(
            f"--resume: the checkpoint was pre-trained on other data ({saved['dataset']['path']}, "
            f"fingerprint {saved['dataset'].get('fingerprint')}); this run has "
            f"{meta['dataset']['path']} ({meta['dataset']['fingerprint']})"
        )
    check_resume_settings(saved.get("config", {}), meta["config"], RESUME_MAY_CHANGE["pretrain"])
    if "rng" not in saved:
        raise CheckpointError("--resume: the checkpoint records no rng (an older version)")
