"""Online fine-tuning: a registered method (`wsrl_mjx.methods.METHODS`) made into an
`OnlinePlan` for the fused loop. Nothing here names a method: its registry entry says which loss
runs online, whether it starts from the pre-trained agent, its offline share and its action rule.

Online CalQL keeps its bound as the official code does (`finetune.online_mc_bound`, default on):
online episodes get their Monte-Carlo returns when they end (`wsrl_mjx.mc_replay`) and only
finished episodes are sampled. With it off, online rows carry no bound (CQL from a CalQL
checkpoint) and the bound applies to retained offline rows only.
"""

from __future__ import annotations

import dataclasses

import jax

from wsrl_mjx import data
from wsrl_mjx.bridge import Pretrained, check_pretrained, read_pretrained
from wsrl_mjx.checkpoint import CheckpointError
from wsrl_mjx.config import Config, ConfigError, seed_configs
from wsrl_mjx.methods import METHODS, Method, make_agent, online_mc_bound
from wsrl_mjx.setup import load_holdout, load_offline_data, setup_finetune
from wsrl_mjx.train import OnlinePlan, run_seeds
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


def offline_rows(method: str | Method, ratio: float | None, batch_size: int) -> int:
    """Offline rows per critic minibatch: the method's default share unless set explicitly."""
    method = METHODS[method] if isinstance(method, str) else method
    ratio = method.offline_ratio if ratio is None else ratio
    rows = int(round(ratio * batch_size))
    if not 0.0 <= ratio < 1.0 or rows >= batch_size:
        raise ConfigError(
            f"finetune.offline_ratio={ratio} leaves no online rows in a batch of {batch_size}; "
            "use a value in [0, 1)"
        )
    return rows


def _check_inputs(cfg: Config, method: Method, rows: int) -> None:
    """A method that starts from or acts with the pre-trained agent needs its checkpoint; one
    that samples offline rows needs data (the checkpoint's dataset, or finetune.dataset)."""
    ft = cfg.finetune
    if ft.checkpoint:
        return
    if method.needs_pretrained:
        raise CheckpointError(
            f"finetune.method={method.name} needs a pre-trained checkpoint: pass --checkpoint DIR"
        )
    if rows and not ft.dataset:
        raise CheckpointError(
            f"finetune.method={method.name} samples offline data: pass --checkpoint DIR (its "
            "dataset is used) or finetune.dataset"
        )


def plan_finetune(cfg: Config, env, pretrained: Pretrained | None = None) -> OnlinePlan:
    """The method's `OnlinePlan`: its online loss, initial agent, action rule and data.
    `pretrained`: finetune.checkpoint already read (`wsrl_mjx.setup.setup_finetune`)."""
    ft = cfg.finetune
    method = METHODS[ft.method]
    agent = make_agent(method.loss, cfg.agent, cfg.offline, env.observation_size, env.action_size)
    rows = offline_rows(method, ft.offline_ratio, cfg.agent.batch_size)
    _check_inputs(cfg, method, rows)

    state, meta, holdout = None, {}, None
    if ft.checkpoint:
        pretrained = pretrained or read_pretrained(ft.checkpoint)
        check_pretrained(pretrained, agent, env.name)
        state, meta = pretrained.state, pretrained.meta
        check_same_targets(meta["config"], cfg)
        holdout = load_holdout(pretrained.run_dir, ft.holdout_rows)

    initial_agent = None
    if method.restores:
        fresh = agent.init(jax.random.PRNGKey(cfg.run.seed + 1))
        restored = agent.from_pretrained(state, fresh, f"checkpoint {ft.checkpoint}")
        initial_agent = mix_init(restored, fresh, ft.init_actor, ft.init_critic)
    action_rule = method.acting(agent, cfg, env, state) if method.acting else None

    offline = None
    if rows:
        dataset_path = ft.dataset or meta.get("dataset", {}).get("path", "")
        data_cfg = dataclasses.replace(
            cfg, offline=dataclasses.replace(cfg.offline, dataset=dataset_path)
        )
        _, loaded, returns = load_offline_data(data_cfg, env)
        offline = data.to_device(loaded.arrays, returns)
    return OnlinePlan(
        agent=agent,
        initial_agent=initial_agent,
        action_rule=action_rule,
        offline=offline,
        offline_per_minibatch=rows,
        holdout=holdout,
        mc_bound=online_mc_bound(cfg),
        phase_name=f"finetune-{method.name}",
        meta={"method": method.name, "pretrained": meta.get("dataset", {})},
    )


def run_finetune(cfg: Config, *, resume: bool = False):
    """Fine-tune with `finetune.method`; a summary (a list of them with run.num_seeds > 1:
    the seeds start from the same checkpoint and run as one vmapped program)."""
    summaries = run_finetune_seeds(seed_configs(cfg), resume=resume)
    return summaries if cfg.run.num_seeds > 1 else summaries[0]


def run_finetune_seeds(cfgs: list[Config], *, resume: bool = False) -> list[dict]:
    """One config per seed (each may name its own checkpoint, e.g. an experiment's per-seed
    pre-trainings; every other setting shared), fine-tuned as one program: the setup (each
    checkpoint read once, the env built once), each seed's plan, then the online run."""
    setup = setup_finetune(cfgs)
    plans = [
        plan_finetune(cfg, setup.env, pre)
        for cfg, pre in zip(setup.cfgs, setup.pretrained, strict=True)
    ]
    return run_seeds(setup.cfgs, plans, env=setup.env, resume=resume)
