"""An online run, top to bottom: SAC from scratch, or fine-tuning from a method's `OnlinePlan`.

`run_seeds` reads in order: the guards (each seed's run dir, before anything is compiled), the
system built once (`wsrl_mjx.core.online_system.build_online`: env, buffer, the compiled
chunks, the evaluator), the initial or restored state, each seed's host loop, the initial
evaluation, then the two phases, each run chunk by chunk by `run_phase` with `OnlineRun` as
its host side (the runner's services, `wsrl_mjx.runtime.runner.HostLoop`, keep the books):

1. `prefill_replay_buffer`: WSRL's warmup. The frozen policy (pre-trained, or a random init from
   scratch; uniform actions with online.warmup_policy=random) fills the empty replay buffer for
   the schedule's no-update steps in one chunk, no gradient step; then an evaluation.
2. `train_online`: whole chunks of online.chunk_length vector steps, each followed by
   online.update_rounds sampled-batch updates, until the env-step budget.

Several seeds (`run.num_seeds`, or `run_seeds` with a config and plan per seed) are one vmapped
program, each seed with its own run dir, logs and checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import envs
from wsrl_mjx.config import Config
from wsrl_mjx.core.environment import check_saved_env
from wsrl_mjx.core.loops import seed_slice, stack_seeds, strong_copy, summarize_chunk
from wsrl_mjx.core.online_system import OnlinePlan, OnlineSystem, build_online
from wsrl_mjx.core.replay import buffer_nbytes
from wsrl_mjx.core.schedule import replay_ratio
from wsrl_mjx.phases.render import EvalVideos
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.logger import read_evals
from wsrl_mjx.runtime.policy import RESUME_MAY_CHANGE, check_resume_settings, seed_configs
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
from wsrl_mjx.types import TrainingState

SNAPSHOTS = "snapshots"  # a behaviour run's actor at every evaluation (collect)
TIMERS = ("warmup_s", "online_s", "eval_s")


def run_online(cfg: Config, plan: OnlinePlan | None = None, *, resume: bool = False):
    """build -> warmup -> online updates; returns a summary (a list of them, one per seed, with
    run.num_seeds > 1: every seed starts from `plan`).

    `plan` says what is trained and how it acts (default: SAC from scratch); fine-tuning
    methods make theirs in `wsrl_mjx.phases.finetune.plan_finetune`.
    """
    cfgs = seed_configs(cfg)
    summary = run_seeds(cfgs, [plan or OnlinePlan()] * len(cfgs), resume=resume)
    return summary if cfg.run.num_seeds > 1 else summary[0]


def run_seeds(
    cfgs: list[Config],
    plans: list[OnlinePlan],
    env: envs.Env | None = None,
    *,
    resume: bool = False,
) -> list[dict]:
    """Several seeds (one config and plan each; settings shared) trained as one vmapped program,
    each holding its own run dir; one seed is a plain run. `env`: the env, if already built.
    Returns a summary per seed."""
    with holding(cfgs):  # one writer per run dir, for the run's whole life
        begin(cfgs[0])
        checkpointers = open_checkpointers(cfgs, resume)  # refusals before anything is compiled
        if resume:
            for cfg, ckpt in zip(cfgs, checkpointers, strict=True):
                check_resume_settings(
                    ckpt.meta().get("config", {}), cfg, RESUME_MAY_CHANGE["online"]
                )
        system = build_online(cfgs, plans, env)
        state = system.init_state()
        if resume:
            state = restore_seeds(system, checkpointers, state)
        run = open_online(system, checkpointers, state, resume)
        with running(run.loops):
            if run.step(state) == 0:  # a resumed run made it before
                run.evaluate(state, 0, "initial")
            state = prefill_replay_buffer(run, state)
            state = train_online(run, state)
        return summaries(run, state)


@dataclass(frozen=True)
class Phase:
    """One online phase: `chunk(state) -> (state, device metrics)` until env step `end`.

    `timer` names the run's time total it adds to; a phase with `evaluate_at_end` (the warmup)
    is evaluated once when it ends, labelled `eval_label` (default: `name`)."""

    name: str
    chunk: Callable[[TrainingState], tuple[TrainingState, dict]]
    end: int
    timer: str
    evaluate_at_end: bool = False
    eval_label: str = ""


def run_phase(run: OnlineRun, phase: Phase, state: TrainingState) -> TrainingState:
    """Whole chunks of `phase` until the run reaches `phase.end`; after each: its log record
    (the NaN guard first), evaluation and checkpoint when due and always at the end of the run,
    then a stop if SIGINT/SIGTERM asked for one (after the checkpoint, so nothing is lost)."""
    loop = run.loops[0]
    while (start := run.step(state)) < phase.end:
        with loop.timed(phase.timer):
            state, metrics = phase.chunk(state)
            run.record(state, metrics, phase.name, start)
        step = run.step(state)
        finished = step >= run.total
        ended = phase.evaluate_at_end and step >= phase.end
        if loop.evaluation_due(step, force=finished or ended):
            run.evaluate(state, step, phase.eval_label or phase.name)
        if loop.checkpoint_due(step, force=finished):
            run.save(state, step)
        loop.stop_if_requested(step, finished)
    return state


def prefill_replay_buffer(run: OnlineRun, state: TrainingState) -> TrainingState:
    """WSRL's warmup (phase 1 above); nothing when resumed past it."""
    system = run.system
    warmup = Phase(
        "warmup",
        lambda state: system.warmup_chunk(state, system.aux),
        end=system.schedule.warmup_env_steps,
        timer="warmup_s",
        evaluate_at_end=True,
        eval_label="after_warmup",
    )
    return run_phase(run, warmup, state)


def train_online(run: OnlineRun, state: TrainingState) -> TrainingState:
    """The online phase (phase 2 above)."""
    system = run.system
    online = Phase(
        system.plan.phase_name,
        lambda state: system.online_chunk(state, system.aux),
        end=system.schedule.total_env_steps,
        timer="online_s",
    )
    return run_phase(run, online, state)


def env_steps(state: TrainingState, k: int = 0, seeded: bool = False) -> int:
    """Seed k's env-step count (the seeds of one program step together)."""
    return int(seed_slice(state.env_steps, k, seeded))


def updates(state: TrainingState, k: int = 0, seeded: bool = False) -> int:
    """Seed k's update count."""
    return int(seed_slice(state.updates, k, seeded))


@dataclass
class OnlineRun:
    """The host side of one online program, between chunks (`run_phase`): a `HostLoop` per
    seed, evaluations, the held-out diagnostics and actor snapshots."""

    system: OnlineSystem
    loops: list[HostLoop]
    eval_keys: jax.Array  # one key, or [seeds, 2]
    evals: list[list[dict]] = field(default_factory=list)  # per seed
    snapshots: list[tuple[int, float, dict]] = field(default_factory=list)  # (step, return, actor)
    videos: EvalVideos | None = None  # eval.video_every: the first seed's policy

    @property
    def total(self) -> int:
        return self.system.schedule.total_env_steps

    def step(self, state: TrainingState) -> int:
        return env_steps(state, 0, self.system.seeded)

    def evaluate(self, state: TrainingState, step: int, label: str) -> None:
        system, seeded = self.system, self.system.seeded
        with self.loops[0].timed("eval_s"):
            results = jax.device_get(system.evaluate(state.agent.actor.params, self.eval_keys))
            for k, loop in enumerate(self.loops):
                result = {f"eval_{n}": float(v) for n, v in seed_slice(results, k, seeded).items()}
                self.evals[k].append({"env_steps": step, "label": label, **result})
                loop.logger.log(step, "eval", {**result, "label": label})
            if self.videos is not None:
                self.videos(seed_slice(state.agent.actor.params, 0, seeded), step)
            if system.plan.keep_actor_snapshots and not seeded:
                params = jax.device_get(state.agent.actor.params)
                snapshot = (step, self.evals[0][-1]["eval_return"], params)
                save_snapshot(system.cfgs[0].run.run_dir, *snapshot)
                self.snapshots.append(snapshot)

    def record(self, state: TrainingState, metrics: dict, phase: str, start: int) -> None:
        """Each seed's log record of a chunk that began at env step `start` (the NaN guard
        first), with the held-out diagnostics after every online chunk."""
        system, seeded = self.system, self.system.seeded
        metrics = jax.device_get(metrics)
        diagnostics = None
        if system.diagnose is not None and phase != "warmup":
            key = (
                jax.random.fold_in(self.eval_keys, start)
                if not seeded
                else jax.vmap(lambda k: jax.random.fold_in(k, start))(self.eval_keys)
            )
            diagnostics = jax.device_get(system.diagnose(state.agent, system.holdout, key))
        step, done = self.step(state), updates(state, 0, seeded)
        for k, loop in enumerate(self.loops):
            seed_metrics = seed_slice(metrics, k, seeded)
            summary = summarize_chunk(seed_metrics, system.env.has_success)
            if diagnostics is not None:
                summary.update({n: float(v) for n, v in seed_slice(diagnostics, k, seeded).items()})
            loop.record(step, done, phase, summary, {"updates": done})
            if phase != "warmup" and "q_pred" in seed_metrics:
                log_q_trace(loop, step, system.schedule.num_envs, seed_metrics)

    def save(self, state: TrainingState, step: int) -> None:
        for k, loop in enumerate(self.loops):
            meta = {**self.system.metas[k], "env_steps": step}
            loop.checkpointer.save(step, seed_slice(state, k, self.system.seeded), meta)


def restore_seeds(
    system: OnlineSystem, checkpointers: list[Checkpointer], state: TrainingState
) -> TrainingState:
    """Each seed's newest checkpoint (the newest step all seeds hold, when a kill came between
    their saves), refused if it was made for another env or with settings a resume may not
    change, or if the seeds still end up at different steps (a broken newest checkpoint)."""
    step = align_seeds(checkpointers)  # None: each seed's newest
    restored = []
    for k, ckpt in enumerate(checkpointers):
        saved = ckpt.meta(step)
        check_saved_env(saved, system.metas[k], "checkpoint")
        check_resume_settings(saved.get("config", {}), system.cfgs[k], RESUME_MAY_CHANGE["online"])
        restored.append(ckpt.restore(seed_slice(state, k, system.seeded), step)[0])
    state = system.place(strong_copy(stack_seeds(restored))) if system.seeded else restored[0]
    steps = {env_steps(state, k, system.seeded) for k in range(len(restored))}
    if len(steps) > 1:
        raise CheckpointError(
            f"--resume: the seeds' newest checkpoints are at different env steps {sorted(steps)}"
        )
    return state


def open_online(
    system: OnlineSystem, checkpointers: list[Checkpointer], state: TrainingState, resume: bool
) -> OnlineRun:
    """Each seed's host loop from the (initial or restored) state's step, its evaluation key,
    the evaluations and actor snapshots a resumed run made before, and the video writer."""
    cfg, seeded = system.cfg, system.seeded
    start = env_steps(state, 0, seeded)
    loops = open_loops(
        system.cfgs,
        checkpointers,
        start=start,
        resume=resume,
        total=system.schedule.total_env_steps,
        label=system.plan.phase_name,
        cadences=Cadences(cfg.eval.every_env_steps, cfg.run.checkpoint_every_env_steps),
        times=dict.fromkeys(TIMERS, 0.0),
    )
    keys = [eval_key(c) for c in system.cfgs]
    # A resumed run's summary holds the evaluations made before the kill too (the log kept
    # them), so a run resumed after its end still reports its final evaluation.
    evals = [read_evals(c.run.run_dir) if resume else [] for c in system.cfgs]
    snapshots = []
    if resume and system.plan.keep_actor_snapshots:
        snapshots = load_snapshots(cfg.run.run_dir, state.agent.actor.params, upto=start)
    announce(system, state)
    videos = None
    if cfg.eval.video_every:
        run_dir = Path(system.cfgs[0].run.run_dir)
        videos = EvalVideos(
            system.env, system.agent, run_dir, cfg.eval.video_every, loops[0].logger
        )
    eval_keys = jnp.stack(keys) if seeded else keys[0]
    return OnlineRun(system, loops, eval_keys, evals=evals, snapshots=snapshots, videos=videos)


def announce(system: OnlineSystem, state: TrainingState) -> None:
    cfg, schedule = system.cfg, system.schedule
    ratio = replay_ratio(dataclasses.replace(cfg, agent=system.agent.cfg))
    seeds = f" x {len(system.cfgs)} seeds in one program" if system.seeded else ""
    print(
        f"[{system.plan.phase_name}] {system.env.name}: {cfg.online.num_envs} envs{seeds}, warmup "
        f"{schedule.warmup_env_steps} steps, {schedule.total_env_steps} env steps in total; "
        f"replay ratio {ratio['replay_ratio']:.2f} samples/env step, "
        f"UTD {ratio['utd']:.3f}; buffer {buffer_nbytes(state.buffer) / 2**20:.1f} MiB",
        flush=True,
    )


def summaries(run: OnlineRun, state: TrainingState) -> list[dict]:
    """One summary per seed: its run dir, counters, evaluations, times and final state."""
    system, seeded = run.system, run.system.seeded
    return [
        {
            "run_dir": str(cfg.run.run_dir),
            "env_steps": env_steps(state, k, seeded),
            "updates": updates(state, k, seeded),
            "evals": run.evals[k],
            "final_eval_return": run.evals[k][-1]["eval_return"] if run.evals[k] else float("nan"),
            "times": run.loops[0].times,
            "state": seed_slice(state, k, seeded),
            "snapshots": run.snapshots,
            "num_envs": cfg.online.num_envs,
            "episode_length": system.env.episode_length,
        }
        for k, cfg in enumerate(system.cfgs)
    ]


def log_q_trace(loop: HostLoop, step: int, num_envs: int, metrics: dict) -> None:
    """Per-iteration Q/TD values: the dense trace around the warmup -> online switch."""
    q = np.asarray(metrics["q_pred"])
    td = np.asarray(metrics["td_loss"])
    start = step - len(q) * num_envs
    steps = [start + (i + 1) * num_envs for i in range(len(q))]
    loop.logger.log(step, "q_trace", {"steps": steps, "q_pred": q.tolist(), "td_loss": td.tolist()})


def save_snapshot(run_dir: str | Path, step: int, eval_return: float, params) -> Path:
    """The actor at an evaluation, as `snapshots/<env steps>.npz` in the run dir (kept across a
    resume: `collect` picks its medium policy among all of a behaviour run's evaluations)."""
    folder = Path(run_dir) / SNAPSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    arrays = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}
    arrays["eval_return"] = np.float64(eval_return)
    return atomic_write(folder / f"{step:010d}.npz", lambda f: np.savez(f, **arrays))


def load_snapshots(run_dir: str | Path, template, upto: int) -> list[tuple[int, float, dict]]:
    """The snapshots `save_snapshot` wrote up to env step `upto` (those after it came from a
    stretch the resume repeats), each in the structure of the actor params `template`."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    snapshots = []
    for path in sorted((Path(run_dir) / SNAPSHOTS).glob("*.npz")):
        step = int(path.stem)
        if step > upto:
            continue
        with np.load(path) as saved:
            values = [saved[jax.tree_util.keystr(p)] for p, _ in leaves]
            snapshots.append((step, float(saved["eval_return"]), treedef.unflatten(values)))
    return snapshots
