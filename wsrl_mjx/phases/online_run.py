"""The host side of an online run: `start_online` opens each seed's checkpoints (restoring
them on `--resume`), logger and progress; `OnlineRun` is what the shared runner
(`wsrl_mjx.runtime.runner.run_phase`) calls between chunks: each seed's log record with the held-out
diagnostics, evaluations and checkpoints; `summaries` is what the run returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from wsrl_mjx.config import Config
from wsrl_mjx.core.environment import check_saved_env
from wsrl_mjx.core.loops import seed_slice, stack_seeds, strong_copy, summarize_chunk
from wsrl_mjx.core.replay import buffer_nbytes
from wsrl_mjx.core.schedule import Schedule, replay_ratio
from wsrl_mjx.phases.online_system import OnlineSystem
from wsrl_mjx.phases.render import EvalVideos
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.hostloop import HostLoop
from wsrl_mjx.runtime.logger import Logger, read_evals
from wsrl_mjx.runtime.policy import RESUME_MAY_CHANGE, check_resume_settings
from wsrl_mjx.runtime.rundir import atomic_write
from wsrl_mjx.runtime.runner import (
    Cadences,
    Phase,
    align_seeds,
    eval_key,
    open_checkpointers,
    open_run,
)
from wsrl_mjx.types import TrainingState

SNAPSHOTS = "snapshots"  # a behaviour run's actor at every evaluation (collect)


@dataclass
class OnlineRun:
    """The host side of one online program (`wsrl_mjx.runtime.runner.Run`): a `HostLoop` per seed,
    evaluations, the held-out diagnostics and actor snapshots."""

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
        return self.system.env_steps(state)

    def evaluate(self, state: TrainingState, step: int, label: str) -> None:
        seeded = self.system.seeded
        with self.loops[0].timed("eval_s"):
            results = jax.device_get(self.system.evaluate(state.agent.actor.params, self.eval_keys))
            for k, loop in enumerate(self.loops):
                result = {f"eval_{n}": float(v) for n, v in seed_slice(results, k, seeded).items()}
                self.evals[k].append({"env_steps": step, "label": label, **result})
                loop.log(step, "eval", {**result, "label": label})
            if self.videos is not None:
                self.videos(seed_slice(state.agent.actor.params, 0, seeded), step)
            if self.system.plan.keep_actor_snapshots and not seeded:
                params = jax.device_get(state.agent.actor.params)
                snapshot = (step, self.evals[0][-1]["eval_return"], params)
                save_snapshot(self.system.cfgs[0].run.run_dir, *snapshot)
                self.snapshots.append(snapshot)

    def record(self, state: TrainingState, metrics: dict, phase: Phase, start: int) -> None:
        """Each seed's log record of a chunk that began at env step `start` (the NaN guard
        first), with the held-out diagnostics after every online chunk."""
        system, seeded = self.system, self.system.seeded
        metrics = jax.device_get(metrics)
        diagnostics = None
        if system.diagnose is not None and phase.name != "warmup":
            key = (
                jax.random.fold_in(self.eval_keys, start)
                if not seeded
                else jax.vmap(lambda k: jax.random.fold_in(k, start))(self.eval_keys)
            )
            diagnostics = jax.device_get(system.diagnose(state.agent, system.holdout, key))
        step = self.step(state)
        updates = system.updates(state)
        for k, loop in enumerate(self.loops):
            seed_metrics = seed_slice(metrics, k, seeded)
            summary = summarize_chunk(seed_metrics, system.env.has_success)
            if diagnostics is not None:
                summary.update({n: float(v) for n, v in seed_slice(diagnostics, k, seeded).items()})
            loop.record(step, updates, phase.name, summary, lambda r: {**r, "updates": updates})
            if phase.name != "warmup" and "q_pred" in seed_metrics:
                _log_q_trace(loop.logger, step, system.schedule, seed_metrics)

    def save(self, state: TrainingState, step: int) -> None:
        for k, loop in enumerate(self.loops):
            meta = {**self.system.metas[k], "env_steps": step}
            loop.checkpointer.save(step, seed_slice(state, k, self.system.seeded), meta)


def start_online(
    system: OnlineSystem, checkpointers: list[Checkpointer], resume: bool
) -> tuple[OnlineRun, TrainingState]:
    """The initial (or restored) state and each seed's host loop (`check_online_dirs` has
    refused what cannot start, before anything in the run dirs is written)."""
    cfg = system.cfg
    loops, state = open_run(
        system.cfgs,
        checkpointers,
        resume,
        system.init_state(),
        lambda checkpointers, state: restore_seeds(system, checkpointers, state),
        system.env_steps,
        total=system.schedule.total_env_steps,
        label=system.plan.phase_name,
        cadences=Cadences(cfg.eval.every_env_steps, cfg.run.checkpoint_every_env_steps),
        times={"warmup_s": 0.0, "online_s": 0.0, "eval_s": 0.0},
    )
    keys = [eval_key(c) for c in system.cfgs]
    eval_keys = jnp.stack(keys) if system.seeded else keys[0]
    # A resumed run's summary holds the evaluations made before the kill too (the log kept
    # them), so a run resumed after its end still reports its final evaluation.
    evals = [read_evals(c.run.run_dir) if resume else [] for c in system.cfgs]
    snapshots = []
    if resume and system.plan.keep_actor_snapshots:
        snapshots = load_snapshots(
            cfg.run.run_dir, state.agent.actor.params, upto=system.env_steps(state)
        )
    announce(system, state)
    videos = None
    if cfg.eval.video_every:
        run_dir = Path(system.cfgs[0].run.run_dir)
        videos = EvalVideos(
            system.env, system.agent, run_dir, cfg.eval.video_every, loops[0].logger
        )
    run = OnlineRun(system, loops, eval_keys, evals=evals, snapshots=snapshots, videos=videos)
    return run, state


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


def check_online_dirs(cfgs: list[Config], resume: bool) -> list[Checkpointer]:
    """Each seed's checkpoints, refused before anything is built or compiled: a run dir that
    already holds a run (without --resume), one with nothing to resume, or a resume with
    settings that change what the run computes (checked again on the step restored)."""
    checkpointers = open_checkpointers(cfgs, resume)
    if resume:
        for cfg, ckpt in zip(cfgs, checkpointers, strict=True):
            saved = ckpt.meta().get("config", {})
            check_resume_settings(saved, cfg, RESUME_MAY_CHANGE["online"])
    return checkpointers


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
    steps = {system.env_steps(state, k) for k in range(len(restored))}
    if len(steps) > 1:
        raise CheckpointError(
            f"--resume: the seeds' newest checkpoints are at different env steps {sorted(steps)}"
        )
    return state


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
    system = run.system
    return [
        {
            "run_dir": str(cfg.run.run_dir),
            "env_steps": system.env_steps(state, k),
            "updates": system.updates(state, k),
            "evals": run.evals[k],
            "final_eval_return": run.evals[k][-1]["eval_return"] if run.evals[k] else float("nan"),
            "times": run.loops[0].times,
            "state": seed_slice(state, k, system.seeded),
            "snapshots": run.snapshots,
            "num_envs": cfg.online.num_envs,
            "episode_length": system.env.episode_length,
        }
        for k, cfg in enumerate(system.cfgs)
    ]


def _log_q_trace(logger: Logger, env_steps: int, schedule: Schedule, metrics: dict) -> None:
    """Per-iteration Q/TD values: the dense trace around the warmup -> online switch."""
    q = np.asarray(metrics["q_pred"])
    td = np.asarray(metrics["td_loss"])
    start = env_steps - len(q) * schedule.num_envs
    steps = [start + (i + 1) * schedule.num_envs for i in range(len(q))]
    logger.log(env_steps, "q_trace", {"steps": steps, "q_pred": q.tolist(), "td_loss": td.tolist()})
