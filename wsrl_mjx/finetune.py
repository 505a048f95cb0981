"""Online fine-tuning: WSRL and the paper's baselines and ablations, all in the fused loop.

| method | starts from        | online loss      | offline data in batches | acting           |
|--------|--------------------|------------------|-------------------------|------------------|
| wsrl   | pre-trained agent  | SAC              | never                   | policy (+warmup) |
| calql  | pre-trained agent  | CalQL            | offline_ratio (0)       | policy           |
| cql    | pre-trained agent  | CQL              | offline_ratio (0)       | policy           |
| iql    | pre-trained agent  | IQL              | offline_ratio (0)       | policy           |
| rlpd   | random init        | SAC              | offline_ratio (0.5)     | policy           |
| jsrl   | random-init learner| SAC              | never                   | guide roll-in    |
| sac    | random init        | SAC              | never                   | policy           |

Online CalQL keeps its bound as the official code does (`finetune.online_mc_bound`, default on):
online episodes get their Monte-Carlo returns when they end (`wsrl_mjx.mc_replay`) and only
finished episodes are sampled. With it off, online rows carry no bound (CQL from a CalQL
checkpoint) and the bound applies to retained offline rows only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from wsrl_mjx import data
from wsrl_mjx.agents import SACAgent, make_agent, method_loss
from wsrl_mjx.checkpoint import CheckpointError
from wsrl_mjx.config import Config, ConfigError
from wsrl_mjx.loops import ActionFn, guided_actions
from wsrl_mjx.pretrain import (
    HOLDOUT_FILE,
    checkpoint_dir,
    load_offline_data,
    resolve_env,
    restore_pretrained,
)
from wsrl_mjx.train import make_env, run_online
from wsrl_mjx.types import AgentState, OfflineTransition

RESTORING = ("wsrl", "calql", "cql", "iql")
DEFAULT_OFFLINE_RATIO = {"rlpd": 0.5}


def _pretrain_dir(checkpoint: str) -> Path:
    """The pre-training run dir (holding config.yaml and holdout.npz) for a checkpoint path."""
    path = checkpoint_dir(checkpoint)
    return path.parent if path.name == "checkpoints" else path


def _load_holdout(run_dir: Path, rows: int) -> OfflineTransition | None:
    path = run_dir / HOLDOUT_FILE
    if not path.is_file():
        return None
    with np.load(path) as z:
        arrays = {k: z[k][:rows] for k in z.files}
    return data.to_device(arrays, arrays["mc_returns"])


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


@dataclasses.dataclass
class FinetunePlan:
    """What `run_online` gets for a method: its keyword arguments, decided in one place."""

    agent: SACAgent
    initial_agent: AgentState | None
    online_action_fn: ActionFn | None
    aux: dict | None
    offline_per_minibatch: int
    holdout: OfflineTransition | None
    initial_extras: dict | None
    pretrained_meta: dict


def offline_rows(method: str, ratio: float | None, batch_size: int) -> int:
    """Offline rows per critic minibatch: the method's default share unless set explicitly."""
    ratio = DEFAULT_OFFLINE_RATIO.get(method, 0.0) if ratio is None else ratio
    rows = int(round(ratio * batch_size))
    if not 0.0 <= ratio < 1.0 or rows >= batch_size:
        raise ConfigError(
            f"finetune.offline_ratio={ratio} leaves no online rows in a batch of {batch_size}; "
            "use a value in [0, 1)"
        )
    return rows


def plan_finetune(cfg: Config, env) -> FinetunePlan:
    ft = cfg.finetune
    method = ft.method
    agent = make_agent(
        method_loss(method), cfg.agent, cfg.offline, env.observation_size, env.action_size
    )
    if method != "sac" and not ft.checkpoint and not (method == "rlpd" and ft.dataset):
        raise CheckpointError(
            f"finetune.method={method} needs a pre-trained checkpoint: pass --checkpoint DIR"
            + (" (or finetune.dataset for rlpd)" if method == "rlpd" else "")
        )

    pretrained, meta, holdout = None, {}, None
    if ft.checkpoint:
        pretrained, meta = restore_pretrained(ft.checkpoint, agent, env.name)
        check_same_targets(meta["config"], cfg)
        holdout = _load_holdout(_pretrain_dir(ft.checkpoint), ft.holdout_rows)

    initial_agent, aux, action_fn, extras = None, {}, None, None
    if method in RESTORING:
        fresh = agent.init(jax.random.PRNGKey(cfg.run.seed + 1))
        initial_agent = mix_init(pretrained, fresh, ft.init_actor, ft.init_critic)
        if initial_agent.extras.keys() != fresh.extras.keys():
            # e.g. a CQL-Lagrange checkpoint fine-tuned with SAC: the multiplier is dropped.
            initial_agent = initial_agent.replace(extras=fresh.extras)
    if method == "jsrl":
        aux["guide_params"] = pretrained.actor.params
        action_fn = guided_actions(agent, ft.jsrl_max_guide_steps or env.episode_length)
        extras = {"guide_horizon": jnp.zeros((cfg.online.num_envs,), jnp.int32)}

    rows = offline_rows(method, ft.offline_ratio, cfg.agent.batch_size)
    if rows:
        dataset_path = ft.dataset or meta.get("dataset", {}).get("path", "")
        data_cfg = dataclasses.replace(
            cfg, offline=dataclasses.replace(cfg.offline, dataset=dataset_path)
        )
        _, loaded, returns = load_offline_data(data_cfg, env)
        aux["offline"] = data.to_device(loaded.arrays, returns)
    return FinetunePlan(agent, initial_agent, action_fn, aux or None, rows, holdout, extras, meta)


def run_finetune(cfg: Config, *, resume: bool = False) -> dict:
    cfg = resolve_env(cfg, finetuning=True)  # an empty env.name: the checkpoint's env
    env = make_env(cfg.env)
    plan = plan_finetune(cfg, env)
    method = cfg.finetune.method
    return run_online(
        cfg,
        agent=plan.agent,
        initial_agent=plan.initial_agent,
        online_action_fn=plan.online_action_fn,
        aux=plan.aux,
        offline_per_minibatch=plan.offline_per_minibatch,
        holdout=plan.holdout,
        initial_extras=plan.initial_extras,
        resume=resume,
        phase_name=f"finetune-{method}",
        extra_meta={"method": method, "pretrained": plan.pretrained_meta.get("dataset", {})},
        mc_bound=method == "calql" and cfg.finetune.online_mc_bound,
    )
