"""Online fine-tuning, top to bottom: the setup reads every input once
(`wsrl_mjx.phases.setup.setup_finetune`: checkpoints, env, held-out splits, retained data), each
seed's
registered method (`wsrl_mjx.methods.METHODS`) becomes an `OnlinePlan` (`plan_finetune`, no file
read), and the online run trains the seeds as one program (`wsrl_mjx.phases.online.run_seeds`).
Nothing
here names a method: its registry entry says which loss runs online, whether it starts from the
pre-trained agent, its offline share and its action rule.

Online CalQL keeps its bound as the official code does (`finetune.online_mc_bound`, default on):
online episodes get their Monte-Carlo returns when they end (`wsrl_mjx.core.mc_replay`) and only
finished episodes are sampled. With it off, online rows carry no bound (CQL from a CalQL
checkpoint) and the bound applies to retained offline rows only.
"""

from __future__ import annotations

import jax

from wsrl_mjx.config import Config, ConfigError
from wsrl_mjx.core.online_system import OnlinePlan
from wsrl_mjx.methods import METHODS, make_agent, online_mc_bound
from wsrl_mjx.phases.bridge import check_pretrained
from wsrl_mjx.phases.online import run_seeds
from wsrl_mjx.phases.setup import FinetuneSetup, setup_finetune
from wsrl_mjx.runtime.policy import seed_configs
from wsrl_mjx.types import AgentState


def mix_init(pretrained: AgentState, fresh: AgentState, actor: bool, critic: bool) -> AgentState:
    """Ablations: keep the pre-trained actor and/or critics (with their optimizer states)."""
    state = fresh
    if actor:
        state = state.replace(actor=pretrained.actor, temperature=pretrained.temperature)
    if critic:
        state = state.replace(
            critic=pretrained.critic, target_critic_params=pretrained.target_critic_params
        )
    if actor and critic:
        state = state.replace(extras=pretrained.extras, step=pretrained.step)
    return state


def check_same_targets(saved: dict, cfg: Config) -> None:
    """The restored Q only means something on the same reward transform and discount."""
    pairs = {
        "env.reward_scale": (saved["env"]["reward_scale"], cfg.env.reward_scale),
        "env.reward_bias": (saved["env"]["reward_bias"], cfg.env.reward_bias),
        "agent.discount": (saved["agent"]["discount"], cfg.agent.discount),
    }
    for key, (was, now) in pairs.items():
        if was != now:
            raise ConfigError(
                f"{key}={now} but the checkpoint was pre-trained with {key}={was}: its Q-values "
                "are on another scale; use the same value"
            )


def plan_finetune(setup: FinetuneSetup) -> list[OnlinePlan]:
    """Each seed's `OnlinePlan` from what the setup read: the method's online loss, the agent it
    starts from, its action rule, and the data it samples and diagnoses with. No file is read."""
    # One method and agent for every seed: seeds in one program share these settings.
    first, env = setup.cfgs[0], setup.env
    method = METHODS[first.finetune.method]
    agent = make_agent(
        method.loss, first.agent, first.offline, env.observation_size, env.action_size
    )
    plans = []
    for cfg, pretrained, holdout in zip(setup.cfgs, setup.pretrained, setup.holdouts, strict=True):
        ft = cfg.finetune
        state, meta = (pretrained.state, pretrained.meta) if pretrained else (None, {})
        if pretrained:
            check_pretrained(pretrained, agent, env.name)
            check_same_targets(meta["config"], cfg)
        initial_agent = None
        if method.restores:
            fresh = agent.init(jax.random.PRNGKey(cfg.run.seed + 1))
            restored = agent.from_pretrained(state, fresh, f"checkpoint {ft.checkpoint}")
            initial_agent = mix_init(restored, fresh, ft.init_actor, ft.init_critic)
        plans.append(
            OnlinePlan(
                agent=agent,
                initial_agent=initial_agent,
                action_rule=method.acting(agent, cfg, env, state) if method.acting else None,
                offline=setup.offline,
                offline_per_minibatch=setup.offline_rows,
                holdout=holdout,
                mc_bound=online_mc_bound(cfg),
                phase_name=f"finetune-{method.name}",
                meta={"method": method.name, "pretrained": meta.get("dataset", {})},
            )
        )
    return plans


def run_finetune(cfg: Config, *, resume: bool = False):
    """Fine-tune with `finetune.method`; a summary (a list of them with run.num_seeds > 1:
    the seeds start from the same checkpoint and run as one vmapped program)."""
    summaries = run_finetune_seeds(seed_configs(cfg), resume=resume)
    return summaries if cfg.run.num_seeds > 1 else summaries[0]


def run_finetune_seeds(cfgs: list[Config], *, resume: bool = False) -> list[dict]:
    """One config per seed (each may name its own checkpoint, e.g. an experiment's per-seed
    pre-trainings; every other setting shared), fine-tuned as one program: the setup (every
    file read once, the env built once), each seed's plan, then the online run."""
    setup = setup_finetune(cfgs)
    return run_seeds(setup.cfgs, plan_finetune(setup), env=setup.env, resume=resume)
