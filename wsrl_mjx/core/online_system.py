"""What an online run builds once: `build_online` makes the batched env, buffer, sampler,
sharding, the warmup and online chunks, the evaluator and the held-out diagnostics, for one seed
or several seeds vmapped in one program, and the initial state (`OnlineSystem.init_state`); the
run itself (`wsrl_mjx.phases.online`) only calls what it holds. Nothing here runs on the host
between chunks.

What is trained and how it acts comes in an `OnlinePlan`: SAC from scratch by default, a
fine-tuning method's plan from `wsrl_mjx.phases.finetune`. With several seeds every array of the
training state gets a leading seed axis and the chunks, the evaluator and the diagnostics are
vmapped over it; with `run.num_devices` > 1 the seeds are split over that many devices
(`SeedSharding`), and one seed may be data-parallel over devices instead (`DataSharding`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax

import envs
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.config import Config, to_dict
from wsrl_mjx.core.environment import env_meta, make_env, make_eval_env
from wsrl_mjx.core.evaluate import make_evaluator
from wsrl_mjx.core.loops import (
    SEED_AXIS,
    ActionRule,
    Aux,
    make_chunk,
    mixed_sampler,
    policy_actions,
    random_actions,
    stack_seeds,
    strong_copy,
)
from wsrl_mjx.core.mc_replay import online_replay_maker
from wsrl_mjx.core.replay import example_transition
from wsrl_mjx.core.schedule import Schedule, steps_before_updates
from wsrl_mjx.runtime.memory import check_fits, evaluation_bytes, shape_bytes
from wsrl_mjx.runtime.policy import check_online_budget, check_seeds_share
from wsrl_mjx.runtime.sharding import DataSharding, SeedSharding, data_sharding, seed_sharding
from wsrl_mjx.types import AgentState, Counter, OfflineTransition, Params, TrainingState


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
        """Refuse a run whose state cannot fit, before it is allocated (wsrl_mjx.runtime.memory)."""
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
        return self.place(strong_copy(stack_seeds(states)) if self.seeded else states[0])

    def place(self, state: TrainingState) -> TrainingState:
        """The state in this system's device layout (unchanged on one device)."""
        return self.sharding.place_state(state) if self.sharding is not None else state


def build_online(
    cfgs: Config | list[Config],
    plans: OnlinePlan | list[OnlinePlan],
    env: envs.Env | None = None,
) -> OnlineSystem:
    """Env (unless given), buffer, sampler, sharding, the warmup and online chunks and the
    evaluator, for one run or for several seeds (one config and plan each) vmapped in one
    program; refused if its state cannot fit in memory."""
    cfgs = [cfgs] if isinstance(cfgs, Config) else list(cfgs)
    plans = [plans] if isinstance(plans, OnlinePlan) else list(plans)
    cfg, plan = cfgs[0], plans[0]
    if len(cfgs) > 1:
        check_seeds_share(cfgs)
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
    make_buffer = online_replay_maker(cfg, env.episode_length, plan.mc_bound)
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
    aux = Aux(offline=plan.offline, acting=stack_seeds(rule_aux) if seeds > 1 else rule_aux[0])
    aux_axes = Aux(offline=None, acting=0 if rule_aux[0] is not None else None)
    holdouts = [p.holdout for p in plans]
    holdout = stack_seeds(holdouts) if seeds > 1 and holdouts[0] is not None else holdouts[0]
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
    evaluate = make_evaluator(
        make_eval_env(cfg, env), agent, cfg.eval.num_episodes, cfg.eval.episode_length
    )
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
    system = OnlineSystem(
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
    system.check_memory()  # before the state is allocated or anything is written
    return system
