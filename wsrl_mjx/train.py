"""An online run: `build_online` -> `warmup_phase` (WSRL's warmup) -> `online_phase`.

`build_online` makes everything once (buffer, sampler, sharding, the two compiled chunks, the
evaluator; the env unless given); the warmup phase (`prefill_replay_buffer`) lets the frozen
(pre-trained, or random-init) policy fill the empty buffer, no updates; the online phase
(`train_online`) runs whole chunks of env steps with `online.update_rounds` sampled-batch
updates after each vector step. Both are `wsrl_mjx.runner.Phase` values run by the runner shared
with pre-training (`run_phase`: eval, NaN guard, logs, checkpoints, graceful stop), with
`OnlineRun` as the host side. What is trained and how it acts comes in an `OnlinePlan`: SAC from
scratch by default, a fine-tuning method's plan from `wsrl_mjx.finetune`.

Several seeds (`run.num_seeds`, or `run_seeds` with a config and plan per seed) are one program:
every array of the training state gets a leading seed axis and the chunks, the evaluator and
the diagnostics are vmapped over it, while each seed keeps its own run dir, HostLoop and
checkpoints. With `run.num_devices` > 1 the seeds are split over that many devices (each runs
its own seeds' program; `SeedSharding`); one seed is not vmapped at all and may be data-parallel
over devices instead (`DataSharding`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.config import (
    ONLINE_RESUME_MAY_CHANGE,
    Config,
    ConfigError,
    check_online_budget,
    check_resume_settings,
    flat_settings,
    seed_configs,
    to_dict,
)
from wsrl_mjx.environment import check_env_matches, env_meta, make_env
from wsrl_mjx.evaluate import make_evaluator
from wsrl_mjx.hostloop import HostLoop
from wsrl_mjx.logger import Logger, read_evals
from wsrl_mjx.loops import (
    SEED_AXIS,
    ActionRule,
    Aux,
    make_chunk,
    mixed_sampler,
    policy_actions,
    random_actions,
    strong_copy,
    summarize_chunk,
)
from wsrl_mjx.mc_replay import make_mc_replay
from wsrl_mjx.memory import check_fits, evaluation_bytes, shape_bytes
from wsrl_mjx.replay import buffer_nbytes, example_transition, make_replay
from wsrl_mjx.rundir import exclusive
from wsrl_mjx.runner import (
    Cadences,
    Phase,
    align_seeds,
    begin,
    eval_key,
    open_checkpointers,
    open_loops,
    run_phase,
    running,
)
from wsrl_mjx.sharding import DataSharding, SeedSharding, data_sharding, seed_sharding
from wsrl_mjx.types import AgentState, Counter, OfflineTransition, Params, TrainingState


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
    agent: Agent,
    batch_env: envs.BatchEnv,
    buffer,
    agent_state: AgentState | None = None,
    acting: Any = None,
) -> TrainingState:
    key = jax.random.PRNGKey(cfg.run.seed)
    agent_key, env_key, loop_key = jax.random.split(key, 3)
    example = example_transition(agent.observation_size, agent.action_size)
    state = TrainingState(
        agent=agent_state if agent_state is not None else agent.init(agent_key),
        buffer=buffer.init(example),
        env=batch_env.reset(env_key),
        rng=loop_key,
        env_steps=Counter.create(),
        updates=Counter.create(),
        acting=acting,
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


@dataclass(frozen=True)
class OnlinePlan:
    """What an online run trains and how it acts; the defaults are SAC from scratch."""

    agent: Agent | None = None  # the loss trained online; None: SAC from cfg.agent
    initial_agent: AgentState | None = None  # None: a fresh init
    action_rule: ActionRule | None = None  # None: the learner's own policy
    offline: OfflineTransition | None = None  # retained offline data (RLPD, retention)
    offline_per_minibatch: int = 0  # its rows in every critic minibatch
    holdout: OfflineTransition | None = None  # held-out offline batch for the diagnostics
    mc_bound: bool = False  # online CalQL: online episodes stored with their MC returns
    phase_name: str = "online"
    meta: dict = field(default_factory=dict)  # recorded with every checkpoint
    keep_actor_snapshots: bool = False  # actor params at every evaluation (collect)


def _stack(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _seed(tree: Any, k: int, seeded: bool) -> Any:
    """Seed k's slice of a tree with a leading seed axis (the tree itself for one seed)."""
    return jax.tree.map(lambda x: x[k], tree) if seeded else tree


@dataclass(frozen=True)
class OnlineSystem:
    """Everything `build_online` makes once; the two phases only run it.

    With several seeds (`cfgs`, `plans`: one each) every array of the training state, the
    action rule's input and the holdout batch has a leading seed axis and the chunks, the
    evaluator and the diagnostics are vmapped over it; shapes and settings are shared.
    """

    cfgs: list[Config]
    plans: list[OnlinePlan]
    env: envs.Env
    batch_env: envs.BatchEnv
    agent: Agent
    buffer: Any
    schedule: Schedule
    warmup_chunk: Callable
    online_chunk: Callable
    evaluate: Callable[[Params, jax.Array], dict]
    diagnose: Callable | None
    sharding: DataSharding | SeedSharding | None
    aux: Aux
    holdout: OfflineTransition | None
    metas: list[dict]

    @property
    def cfg(self) -> Config:
        return self.cfgs[0]

    @property
    def plan(self) -> OnlinePlan:
        return self.plans[0]

    @property
    def seeded(self) -> bool:
        """Whether arrays carry a leading seed axis (more than one seed)."""
        return len(self.cfgs) > 1

    def check_memory(self) -> None:
        """Refuse a run whose state cannot fit, before it is allocated (wsrl_mjx.memory)."""
        seeds = len(self.cfgs)
        key = jax.random.PRNGKey(0)
        example = example_transition(self.agent.observation_size, self.agent.action_size)
        episodes = self.cfgs[0].eval.num_episodes
        parts = {
            "replay buffer": seeds * shape_bytes(lambda: self.buffer.init(example)),
            "agent": seeds * shape_bytes(lambda: self.agent.init(key)),
            "envs": seeds * shape_bytes(lambda: self.batch_env.reset(key)),
            "evaluation envs": seeds * evaluation_bytes(self.env, episodes),
        }
        check_fits(
            parts,
            "lower online.buffer_capacity, online.num_envs, eval.num_episodes, the network "
            "widths or the number of seeds",
        )

    def init_state(self) -> TrainingState:
        states = [
            init_training_state(
                cfg,
                self.agent,
                self.batch_env,
                self.buffer,
                plan.initial_agent,
                plan.action_rule.state if plan.action_rule else None,
            )
            for cfg, plan in zip(self.cfgs, self.plans, strict=True)
        ]
        # Restores keep this layout.
        return self.place(strong_copy(_stack(states)) if self.seeded else states[0])

    def place(self, state: TrainingState) -> TrainingState:
        """The state in this system's device layout (unchanged on one device)."""
        return self.sharding.place_state(state) if self.sharding is not None else state


def _check_seeds_share(cfgs: list[Config], plans: list[OnlinePlan]) -> None:
    """Seeds in one program share every setting but seed, run dir and pre-trained checkpoint
    (an experiment's seeds each restore their own pre-training), and the offline data."""

    def flat(cfg: Config) -> dict:
        return flat_settings(
            dataclasses.replace(
                cfg,
                run=dataclasses.replace(cfg.run, seed=0, run_dir=""),
                finetune=dataclasses.replace(cfg.finetune, checkpoint=""),
            )
        )

    first = flat(cfgs[0])
    for cfg in cfgs[1:]:
        other = flat(cfg)
        differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if differ:
            raise ConfigError(
                "seeds run as one program must share every setting but the seed, run dir and "
                f"checkpoint; {differ[0]} differs: {first.get(differ[0])!r} and "
                f"{other.get(differ[0])!r}"
            )
    sources = {str(p.meta.get("pretrained", {}).get("path", "")) for p in plans if p.offline}
    if len(sources) > 1:
        raise ConfigError(f"seeds retain offline data from different datasets: {sorted(sources)}")


def build_online(
    cfgs: Config | list[Config],
    plans: OnlinePlan | list[OnlinePlan],
    env: envs.Env | None = None,
) -> OnlineSystem:
    """Env (unless given), buffer, sampler, sharding, the warmup and online chunks and the
    evaluator, for one run or for several seeds (one config and plan each) vmapped in one
    program."""
    cfgs = [cfgs] if isinstance(cfgs, Config) else list(cfgs)
    plans = [plans] if isinstance(plans, OnlinePlan) else list(plans)
    cfg, plan = cfgs[0], plans[0]
    if len(cfgs) > 1:
        _check_seeds_share(cfgs, plans)
    env = env or make_env(cfg.env)
    seeds = len(cfgs)
    batch_env = envs.BatchEnv(
        env,
        cfg.online.num_envs,
        SEED_AXIS if seeds > 1 else None,
        time_limit_truncates=cfg.online.time_limit_truncates,
    )
    agent = plan.agent or make_sac(cfg.agent, env.observation_size, env.action_size)
    m, b = agent.cfg.critic_minibatches, agent.cfg.batch_size
    online_rows = b - plan.offline_per_minibatch
    make_buffer = online_replay_maker(cfg, env, plan.mc_bound)
    buffer = make_buffer(m * b)
    sample_fn = None
    if plan.offline_per_minibatch:
        online_buffer = make_buffer(m * online_rows)
        sample_fn = mixed_sampler(online_buffer, m, b, plan.offline_per_minibatch)
    no_update_steps = steps_before_updates(cfg, m * online_rows, env.episode_length, plan.mc_bound)
    schedule = Schedule.from_config(cfg, no_update_steps)
    check_online_budget(cfg, schedule.total_env_steps, no_update_steps)
    sharding = (
        seed_sharding(cfg.run.num_devices, seeds)
        if seeds > 1
        else data_sharding(cfg.run.num_devices, cfg.online.num_envs, m * b)
    )
    acting = plan.action_rule.act if plan.action_rule else policy_actions(agent)
    # The warmup acts like the online phase (JSRL: guide roll-ins) unless it is random.
    warmup_actions = (
        random_actions(env.action_size) if cfg.online.warmup_policy == "random" else acting
    )
    # Per seed: the action rule's input; shared: the retained offline data.
    rule_aux = [p.action_rule.aux if p.action_rule else None for p in plans]
    aux = Aux(offline=plan.offline, acting=_stack(rule_aux) if seeds > 1 else rule_aux[0])
    aux_axes = Aux(offline=None, acting=0 if rule_aux[0] is not None else None)
    holdouts = [p.holdout for p in plans]
    holdout = _stack(holdouts) if seeds > 1 and holdouts[0] is not None else holdouts[0]
    chunk = dict(
        sharding=sharding,
        reward_scale=cfg.env.reward_scale,
        reward_bias=cfg.env.reward_bias,
        num_seeds=seeds,
        aux_axes=aux_axes,
    )
    warmup_chunk = make_chunk(
        batch_env,
        agent,
        buffer,
        length=max(schedule.warmup_vector_steps, 1),
        update_rounds=0,
        action_fn=warmup_actions,
        **chunk,
    )
    online_chunk = make_chunk(
        batch_env,
        agent,
        buffer,
        length=schedule.chunk_length,
        update_rounds=cfg.online.update_rounds,
        action_fn=acting,
        sample_fn=sample_fn,
        **chunk,
    )
    evaluate = make_evaluator(env, agent, cfg.eval.num_episodes, cfg.eval.episode_length)
    # Q and TD error (against the loss's own target) on a held-out offline batch, no gradient:
    # the downward-spiral probe.
    diagnose = jax.jit(agent.diagnostics) if holdout is not None else None
    if seeds > 1:
        evaluate = jax.jit(jax.vmap(evaluate))
        diagnose = diagnose and jax.jit(jax.vmap(diagnose))
    if isinstance(sharding, SeedSharding):
        aux = Aux(offline=sharding.replicate(aux.offline), acting=sharding.place_state(aux.acting))
        holdout = sharding.place_state(holdout)
    elif sharding is not None:
        aux, holdout = sharding.replicate(aux), sharding.replicate(holdout)
    return OnlineSystem(
        cfgs=cfgs,
        plans=plans,
        env=env,
        batch_env=batch_env,
        agent=agent,
        buffer=buffer,
        schedule=schedule,
        warmup_chunk=warmup_chunk,
        online_chunk=online_chunk,
        evaluate=evaluate,
        diagnose=diagnose,
        sharding=sharding,
        aux=aux,
        holdout=holdout,
        metas=[
            {**env_meta(env), "config": to_dict(c), **p.meta}
            for c, p in zip(cfgs, plans, strict=True)
        ],
    )


def warmup_phase(system: OnlineSystem) -> Phase:
    """WSRL's warmup (`prefill_replay_buffer`): the frozen policy (pre-trained, or a random
    init when training from scratch; uniform actions with online.warmup_policy=random) fills the
    empty replay buffer for the schedule's no-update steps in one chunk, no gradient step; then
    an evaluation."""
    return Phase(
        "warmup",
        lambda state: system.warmup_chunk(state, system.aux),
        end=system.schedule.warmup_env_steps,
        timer="warmup_s",
        evaluate_at_end=True,
        eval_label="after_warmup",
    )


def online_phase(system: OnlineSystem) -> Phase:
    """Whole chunks of online.chunk_length vector steps, each followed by
    online.update_rounds sampled-batch updates, until the run's env-step budget."""
    return Phase(
        system.plan.phase_name,
        lambda state: system.online_chunk(state, system.aux),
        end=system.schedule.total_env_steps,
        timer="online_s",
    )


@dataclass
class OnlineRun:
    """The host side of one online program (`wsrl_mjx.runner.Run`): a `HostLoop` per seed,
    evaluations, the held-out diagnostics and actor snapshots."""

    system: OnlineSystem
    loops: list[HostLoop]
    eval_keys: jax.Array  # one key, or [seeds, 2]
    evals: list[list[dict]] = field(default_factory=list)  # per seed
    snapshots: list[tuple[int, float, dict]] = field(default_factory=list)  # (step, return, actor)

    @property
    def total(self) -> int:
        return self.system.schedule.total_env_steps

    def step(self, state: TrainingState) -> int:
        return int(_seed(state.env_steps, 0, self.system.seeded))

    def evaluate(self, state: TrainingState, step: int, label: str) -> None:
        seeded = self.system.seeded
        with self.loops[0].timed("eval_s"):
            results = jax.device_get(self.system.evaluate(state.agent.actor.params, self.eval_keys))
            for k, loop in enumerate(self.loops):
                result = {f"eval_{n}": float(v) for n, v in _seed(results, k, seeded).items()}
                self.evals[k].append({"env_steps": step, "label": label, **result})
                loop.log(step, "eval", {**result, "label": label})
            if self.system.plan.keep_actor_snapshots and not seeded:
                params = jax.device_get(state.agent.actor.params)
                self.snapshots.append((step, self.evals[0][-1]["eval_return"], params))

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
        updates = int(_seed(state.updates, 0, seeded))
        for k, loop in enumerate(self.loops):
            seed_metrics = _seed(metrics, k, seeded)
            summary = summarize_chunk(seed_metrics, system.env.has_success)
            if diagnostics is not None:
                summary.update({n: float(v) for n, v in _seed(diagnostics, k, seeded).items()})
            loop.record(step, updates, phase.name, summary, lambda r: {**r, "updates": updates})
            if phase.name != "warmup" and "q_pred" in seed_metrics:
                _log_q_trace(loop.logger, step, system.schedule, seed_metrics)

    def save(self, state: TrainingState, step: int) -> None:
        for k, loop in enumerate(self.loops):
            meta = {**self.system.metas[k], "env_steps": step}
            loop.checkpointer.save(step, _seed(state, k, self.system.seeded), meta)


def _restore(
    system: OnlineSystem, checkpointers: list[Checkpointer], state: TrainingState
) -> TrainingState:
    """Each seed's newest checkpoint (the newest step all seeds hold, when a kill came between
    their saves), refused if it was made for another env or with settings a resume may not
    change, or if the seeds still end up at different steps (a broken newest checkpoint)."""
    step = align_seeds(checkpointers)  # None: each seed's newest
    restored = []
    for k, ckpt in enumerate(checkpointers):
        saved = ckpt.meta(step)
        check_env_matches(saved, system.metas[k], "checkpoint")
        check_resume_settings(saved.get("config", {}), system.cfgs[k], ONLINE_RESUME_MAY_CHANGE)
        restored.append(ckpt.restore(_seed(state, k, system.seeded), step)[0])
    state = system.place(strong_copy(_stack(restored))) if system.seeded else restored[0]
    steps = {int(_seed(state.env_steps, k, system.seeded)) for k in range(len(restored))}
    if len(steps) > 1:
        raise CheckpointError(
            f"--resume: the seeds' newest checkpoints are at different env steps {sorted(steps)}"
        )
    return state


def _start(system: OnlineSystem, resume: bool) -> tuple[OnlineRun, TrainingState]:
    """The initial (or restored) state and each seed's host loop; refuses to overwrite a run."""
    system.check_memory()
    checkpointers = open_checkpointers(system.cfgs, resume)
    state = system.init_state()
    if resume:
        state = _restore(system, checkpointers, state)
    step = int(_seed(state.env_steps, 0, system.seeded))
    cfg = system.cfg
    loops = open_loops(
        system.cfgs,
        checkpointers,
        start=step,
        resume=resume,
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
    return OnlineRun(system, loops, eval_keys, evals=evals), state


def _announce(system: OnlineSystem, state: TrainingState) -> None:
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


def prefill_replay_buffer(run: OnlineRun, state: TrainingState) -> TrainingState:
    """WSRL's warmup (`warmup_phase`), run by the shared runner; nothing when resumed past it."""
    return run_phase(run, warmup_phase(run.system), state)


def train_online(run: OnlineRun, state: TrainingState) -> TrainingState:
    """The online phase (`online_phase`), run by the shared runner."""
    return run_phase(run, online_phase(run.system), state)


def _run(system: OnlineSystem, resume: bool) -> list[dict]:
    """build is done: start (or restore), initial evaluation, warmup, online; a summary per
    seed."""
    run, state = _start(system, resume)
    _announce(system, state)
    with running(run.loops):
        if run.step(state) == 0:
            run.evaluate(state, 0, "initial")
        state = prefill_replay_buffer(run, state)
        state = train_online(run, state)
    return [
        {
            "run_dir": str(cfg.run.run_dir),
            "env_steps": int(_seed(state.env_steps, k, system.seeded)),
            "updates": int(_seed(state.updates, k, system.seeded)),
            "evals": run.evals[k],
            "final_eval_return": run.evals[k][-1]["eval_return"] if run.evals[k] else float("nan"),
            "times": run.loops[0].times,
            "state": _seed(state, k, system.seeded),
            "snapshots": run.snapshots,
            "num_envs": cfg.online.num_envs,
            "episode_length": system.env.episode_length,
        }
        for k, cfg in enumerate(system.cfgs)
    ]


def run_online(cfg: Config, plan: OnlinePlan | None = None, *, resume: bool = False):
    """build -> warmup (`prefill_replay_buffer`) -> online updates; returns a summary (a list
    of them, one per seed, with run.num_seeds > 1: every seed starts from `plan`).

    `plan` says what is trained and how it acts (default: SAC from scratch); fine-tuning
    methods make theirs in `wsrl_mjx.finetune.plan_finetune`.
    """
    cfgs = seed_configs(cfg)
    summaries = run_seeds(cfgs, [plan or OnlinePlan()] * len(cfgs), resume=resume)
    return summaries if cfg.run.num_seeds > 1 else summaries[0]


def run_seeds(
    cfgs: list[Config],
    plans: list[OnlinePlan],
    env: envs.Env | None = None,
    *,
    resume: bool = False,
) -> list[dict]:
    """Several seeds (one config and plan each; settings shared) trained as one vmapped program,
    each holding its own run dir; one seed is a plain run. `env`: the env, if already built."""
    begin(cfgs[0])
    with contextlib.ExitStack() as held:
        if not cfgs[0].run.distributed:  # one writer per run dir, for the run's whole life
            for cfg in cfgs:
                held.enter_context(exclusive(cfg.run.run_dir))
        return _run(build_online(cfgs, plans, env), resume)


def _log_q_trace(logger: Logger, env_steps: int, schedule: Schedule, metrics: dict) -> None:
    """Per-iteration Q/TD values: the dense trace around the warmup -> online switch."""
    q = np.asarray(metrics["q_pred"])
    td = np.asarray(metrics["td_loss"])
    start = env_steps - len(q) * schedule.num_envs
    steps = [start + (i + 1) * schedule.num_envs for i in range(len(q))]
    logger.log(env_steps, "q_trace", {"steps": steps, "q_pred": q.tolist(), "td_loss": td.tolist()})
