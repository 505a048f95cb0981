"""The thin host loop between compiled chunks: warmup, online SAC, eval, logs, checkpoints."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import envs
from wsrl_mjx.agents.sac import SACAgent, make_sac
from wsrl_mjx.checkpoint import Checkpointer, CheckpointError, TrainingDiverged
from wsrl_mjx.config import (
    DEFAULT_ENV,
    Config,
    ConfigError,
    EnvConfig,
    check_online_budget,
    save_config,
    to_dict,
)
from wsrl_mjx.evaluate import make_evaluator
from wsrl_mjx.logger import Logger, Progress
from wsrl_mjx.loops import (
    ActionFn,
    make_chunk,
    mixed_sampler,
    policy_actions,
    random_actions,
    strong_copy,
    summarize_chunk,
)
from wsrl_mjx.mc_replay import make_mc_replay
from wsrl_mjx.replay import buffer_nbytes, example_transition, make_replay
from wsrl_mjx.rundir import holds_run_dir
from wsrl_mjx.sharding import data_sharding, initialize_distributed
from wsrl_mjx.types import AgentState, TrainingState, Transition


def make_env(cfg: EnvConfig) -> envs.Env:
    overrides = dict(cfg.overrides)
    if cfg.episode_length is not None:
        overrides["episode_length"] = cfg.episode_length
    try:
        return envs.make(cfg.name or DEFAULT_ENV, **overrides)
    except ValueError as e:  # unknown name or task key: a config error, named as such
        raise ConfigError(f"env.name / env.overrides: {e}") from None


def env_meta(env: envs.Env) -> dict:
    return {
        "env": env.name,
        "observation_size": env.observation_size,
        "action_size": env.action_size,
    }


def check_finite(
    metrics: dict, step: int, checkpointer: Checkpointer, unit: str = "env step"
) -> None:
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        last = checkpointer.latest_step()
        kept = f"last good checkpoint: {checkpointer.directory}/{last}" if last else "no checkpoint"
        raise TrainingDiverged(
            f"non-finite {', '.join(bad)} at {unit} {step}; stopping ({kept}). "
            "Lower the learning rates or check the rewards/observations."
        )


@dataclass
class Schedule:
    """Vector-step bookkeeping: warmup is one chunk; online runs whole chunks of T steps."""

    num_envs: int
    warmup_vector_steps: int
    chunk_length: int
    online_chunks: int

    @classmethod
    def from_config(cls, cfg: Config, no_update_steps: int | None = None) -> Schedule:
        """`no_update_steps`: env steps before the first update (default: the warmup)."""
        n = cfg.online.num_envs
        no_update_steps = cfg.online.warmup_steps if no_update_steps is None else no_update_steps
        warmup = math.ceil(no_update_steps / n)
        online_steps = max(cfg.online.total_env_steps - warmup * n, 0)
        chunks = math.ceil(online_steps / (n * cfg.online.chunk_length))
        return cls(n, warmup, cfg.online.chunk_length, chunks)

    @property
    def warmup_env_steps(self) -> int:
        return self.warmup_vector_steps * self.num_envs

    @property
    def total_env_steps(self) -> int:
        return self.warmup_env_steps + self.online_chunks * self.chunk_length * self.num_envs


def steps_before_updates(cfg: Config, online_rows: int, episode_length: int, mc_bound: bool) -> int:
    """Env steps the frozen policy collects before the first update (`online.first_update`).

    Official: max(K, the online rows of one sampled batch); with CalQL's online bound also one
    full episode length per env, so that every env has finished an episode before sampling.
    """
    k = cfg.online.warmup_steps
    if cfg.online.first_update == "after_warmup":
        return k
    steps = max(k, online_rows)
    if mc_bound:
        steps = max(steps, cfg.online.num_envs * episode_length)
    return steps


def replay_ratio(cfg: Config) -> dict:
    """Gradient samples and critic updates per env step, with N envs per vector step."""
    a, o = cfg.agent, cfg.online
    samples = o.update_rounds * a.critic_minibatches * a.batch_size / o.num_envs
    return {"replay_ratio": samples, "utd": o.update_rounds * a.critic_minibatches / o.num_envs}


def init_training_state(
    cfg: Config,
    agent: SACAgent,
    batch_env: envs.BatchEnv,
    buffer,
    agent_state: AgentState | None = None,
    extras: dict | None = None,
) -> TrainingState:
    key = jax.random.PRNGKey(cfg.run.seed)
    agent_key, env_key, loop_key = jax.random.split(key, 3)
    example = example_transition(agent.observation_size, agent.action_size)
    state = TrainingState(
        agent=agent_state if agent_state is not None else agent.init(agent_key),
        buffer=buffer.init(example),
        env=batch_env.reset(env_key),
        rng=loop_key,
        env_steps=jnp.zeros((), jnp.int32),
        updates=jnp.zeros((), jnp.int32),
        extras=extras or {},
    )
    # Leaves may alias (the batch env keeps obs twice; a restored agent may share arrays) and
    # donating needs every leaf in its own buffer; strong types avoid a second compile.
    return strong_copy(state)


def online_replay_maker(cfg: Config, env: envs.Env, mc_bound: bool):
    """sample size -> the online buffer: plain FIFO, or with MC returns for online CalQL."""
    capacity = cfg.online.buffer_capacity
    if not mc_bound:
        return lambda rows: make_replay(capacity, rows)
    if cfg.run.num_devices > 1:
        raise ConfigError(
            "finetune.online_mc_bound=true runs on one device; set run.num_devices=1 or "
            "finetune.online_mc_bound=false"
        )

    def make(rows: int):
        try:
            return make_mc_replay(
                capacity,
                rows,
                cfg.online.num_envs,
                env.episode_length,
                cfg.agent.discount,
                cfg.offline.sparse_negative_reward,
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None

    return make


def make_diagnostics(agent: SACAgent):
    """Q and TD error on a held-out offline batch, no gradient (the downward-spiral probe)."""

    def diagnose(state: AgentState, batch: Transition, rng: jax.Array) -> dict:
        target = agent.td_target(state, batch, rng)
        q = agent.q_values(state.critic.params, batch.obs, batch.action)
        return {
            "offline_q": q.mean(),
            "offline_td": jnp.mean((q - target) ** 2),
            "offline_q_target": target.mean(),
        }

    return jax.jit(diagnose)


@holds_run_dir  # one writer per run dir, for the run's whole life
def run_online(
    cfg: Config,
    *,
    agent: SACAgent | None = None,
    initial_agent: AgentState | None = None,
    online_action_fn: ActionFn | None = None,
    aux: dict | None = None,
    offline_per_minibatch: int = 0,
    holdout: Transition | None = None,
    initial_extras: dict | None = None,
    resume: bool = False,
    phase_name: str = "online",
    extra_meta: dict | None = None,
    keep_actor_snapshots: bool = False,
    mc_bound: bool = False,
) -> dict:
    """Warmup then online updates in the fused loop; returns a summary.

    Defaults give SAC from scratch. Fine-tuning passes the restored `initial_agent`, the `agent`
    whose loss runs online, and optionally retained offline data (`aux["offline"]` with
    `offline_per_minibatch` rows in every critic minibatch), a JSRL `online_action_fn`, and a
    `holdout` batch whose Q/TD error is logged after every chunk. `mc_bound` (online CalQL)
    stores online episodes with their Monte-Carlo returns (`wsrl_mjx.mc_replay`).
    """
    if cfg.run.distributed:
        initialize_distributed()
    jax.config.update("jax_default_matmul_precision", cfg.run.matmul_precision)
    run_dir = Path(cfg.run.run_dir)
    env = make_env(cfg.env)
    batch_env = envs.BatchEnv(env, cfg.online.num_envs)
    agent = agent or make_sac(cfg.agent, env.observation_size, env.action_size)
    m, b = agent.cfg.critic_minibatches, agent.cfg.batch_size
    online_rows = b - offline_per_minibatch
    make_buffer = online_replay_maker(cfg, env, mc_bound)
    buffer = make_buffer(m * b)
    sample_fn = None
    if offline_per_minibatch:
        online_buffer = make_buffer(m * online_rows)
        sample_fn = mixed_sampler(online_buffer, m, b, offline_per_minibatch)
    no_update_steps = steps_before_updates(cfg, m * online_rows, env.episode_length, mc_bound)
    schedule = Schedule.from_config(cfg, no_update_steps)
    check_online_budget(cfg, schedule.total_env_steps, no_update_steps)
    sharding = data_sharding(cfg.run.num_devices, cfg.online.num_envs, m * b)
    reward = dict(reward_scale=cfg.env.reward_scale, reward_bias=cfg.env.reward_bias)
    # The warmup acts like the online phase (JSRL: guide roll-ins) unless it is random.
    warmup_actions = (
        random_actions(env.action_size)
        if cfg.online.warmup_policy == "random"
        else online_action_fn or policy_actions(agent)
    )
    warmup_chunk = make_chunk(
        batch_env,
        agent,
        buffer,
        length=max(schedule.warmup_vector_steps, 1),
        update_rounds=0,
        action_fn=warmup_actions,
        sharding=sharding,
        **reward,
    )
    online_chunk = make_chunk(
        batch_env,
        agent,
        buffer,
        length=schedule.chunk_length,
        update_rounds=cfg.online.update_rounds,
        action_fn=online_action_fn or policy_actions(agent),
        sample_fn=sample_fn,
        sharding=sharding,
        **reward,
    )
    evaluate = make_evaluator(env, agent, cfg.eval.num_episodes, cfg.eval.episode_length)
    diagnose = make_diagnostics(agent) if holdout is not None else None

    checkpointer = Checkpointer(run_dir / "checkpoints", keep=cfg.run.keep_checkpoints)
    meta = {**env_meta(env), "config": to_dict(cfg), **(extra_meta or {})}
    state = init_training_state(cfg, agent, batch_env, buffer, initial_agent, initial_extras)
    if sharding is not None:  # restores below keep this layout
        state = sharding.place_state(state)
        aux, holdout = sharding.replicate(aux), sharding.replicate(holdout)
    if resume:
        if checkpointer.latest_step() is None:
            raise CheckpointError(f"--resume: no checkpoint in {checkpointer.directory}")
        _check_meta(checkpointer.meta(), meta)
        state, _ = checkpointer.restore(state)
    elif checkpointer.latest_step() is not None:
        raise CheckpointError(
            f"{run_dir} already holds checkpoints; pass --resume to continue that run or choose "
            "another run.run_dir (nothing was overwritten)"
        )
    save_config(cfg, run_dir / "config.yaml")
    resume_step = int(state.env_steps) if resume else None
    logger = Logger(run_dir, tensorboard=cfg.run.tensorboard, resume_step=resume_step)
    ratio = replay_ratio(dataclasses.replace(cfg, agent=agent.cfg))
    print(
        f"[{phase_name}] {env.name}: {cfg.online.num_envs} envs, warmup "
        f"{schedule.warmup_env_steps} steps, {schedule.total_env_steps} env steps in total; "
        f"replay ratio {ratio['replay_ratio']:.2f} samples/env step, "
        f"UTD {ratio['utd']:.3f}; buffer {buffer_nbytes(state.buffer) / 2**20:.1f} MiB",
        flush=True,
    )
    eval_key = jax.random.PRNGKey(cfg.run.seed + 10_000)
    evals: list[dict] = []
    snapshots: list[tuple[int, float, dict]] = []  # (env steps, eval return, actor params)

    def run_eval(env_steps: int, label: str) -> None:
        result = evaluate(state.agent.actor.params, eval_key)
        result = {f"eval_{k}": float(v) for k, v in result.items()}
        evals.append({"env_steps": env_steps, "label": label, **result})
        if keep_actor_snapshots:
            snapshots.append(
                (env_steps, result["eval_return"], jax.device_get(state.agent.actor.params))
            )
        logger.log(env_steps, "eval", {**result, "label": label})

    def save(env_steps: int) -> None:
        checkpointer.save(env_steps, state, {**meta, "env_steps": env_steps})

    env_steps = int(state.env_steps)
    # A resumed run keeps the uninterrupted run's cadence (its checkpoint follows that eval).
    next_eval = (env_steps // cfg.eval.every_env_steps + 1) * cfg.eval.every_env_steps
    next_ckpt = (env_steps // cfg.run.checkpoint_every_env_steps + 1) * (
        cfg.run.checkpoint_every_env_steps
    )
    progress = Progress(schedule.total_env_steps, env_steps, cfg.run.progress, phase_name)
    times = {"warmup_s": 0.0, "online_s": 0.0, "eval_s": 0.0}
    try:
        if env_steps == 0:
            t = time.perf_counter()
            run_eval(0, "initial")
            times["eval_s"] += time.perf_counter() - t
            next_eval = cfg.eval.every_env_steps
        while env_steps < schedule.total_env_steps:
            in_warmup = env_steps < schedule.warmup_env_steps
            chunk = warmup_chunk if in_warmup else online_chunk
            t = time.perf_counter()
            state, metrics = chunk(state, aux)
            summary = summarize_chunk(jax.device_get(metrics), env.has_success)
            if diagnose is not None and not in_warmup:
                diag = diagnose(state.agent, holdout, jax.random.fold_in(eval_key, env_steps))
                summary.update({k: float(v) for k, v in diag.items()})
            env_steps, updates = int(state.env_steps), int(state.updates)
            times["warmup_s" if in_warmup else "online_s"] += time.perf_counter() - t
            check_finite(summary, env_steps, checkpointer)
            rates = progress.update(env_steps, updates)
            logger.log(
                env_steps,
                "warmup" if in_warmup else phase_name,
                {**summary, **rates, "updates": updates},
            )
            if not in_warmup and "q_pred" in metrics:
                _log_q_trace(logger, env_steps, schedule, metrics)
            finished = env_steps >= schedule.total_env_steps
            if (
                env_steps >= next_eval
                or finished
                or (in_warmup and env_steps >= schedule.warmup_env_steps)
            ):
                t = time.perf_counter()
                run_eval(env_steps, "after_warmup" if in_warmup else phase_name)
                times["eval_s"] += time.perf_counter() - t
                next_eval = (env_steps // cfg.eval.every_env_steps + 1) * cfg.eval.every_env_steps
            if env_steps >= next_ckpt or finished:
                save(env_steps)
                next_ckpt = (env_steps // cfg.run.checkpoint_every_env_steps + 1) * (
                    cfg.run.checkpoint_every_env_steps
                )
    finally:
        progress.close()
        logger.close()
    checkpointer.close()
    return {
        "run_dir": str(run_dir),
        "env_steps": env_steps,
        "updates": int(state.updates),
        "evals": evals,
        "final_eval_return": evals[-1]["eval_return"] if evals else float("nan"),
        "times": times,
        "state": state,
        "snapshots": snapshots,
        "num_envs": cfg.online.num_envs,
    }


def _log_q_trace(logger: Logger, env_steps: int, schedule: Schedule, metrics: dict) -> None:
    """Per-iteration Q/TD values: the dense trace around the warmup -> online switch."""
    q = np.asarray(metrics["q_pred"])
    td = np.asarray(metrics["td_loss"])
    start = env_steps - len(q) * schedule.num_envs
    steps = [start + (i + 1) * schedule.num_envs for i in range(len(q))]
    logger.log(env_steps, "q_trace", {"steps": steps, "q_pred": q.tolist(), "td_loss": td.tolist()})


def _check_meta(saved: dict, expected: dict) -> None:
    for key in ("env", "observation_size", "action_size"):
        if saved.get(key) != expected.get(key):
            raise CheckpointError(
                f"checkpoint was made for {key}={saved.get(key)!r}, this run has "
                f"{key}={expected.get(key)!r}"
            )
