"""An online run, top to bottom: build the system once (`wsrl_mjx.phases.online_system`), start or
restore each seed's state and host side (`wsrl_mjx.phases.online_run`), evaluate the initial policy,
then the shared runner (`wsrl_mjx.runtime.runner.run_phase`) runs WSRL's warmup
(`prefill_replay_buffer`: the frozen policy fills the empty replay buffer, no update) and the
online phase (`train_online`: whole chunks of env steps with `online.update_rounds`
sampled-batch updates after each vector step).

What is trained and how it acts comes in an `OnlinePlan`: SAC from scratch by default, a
fine-tuning method's plan from `wsrl_mjx.phases.finetune`. Several seeds (`run.num_seeds`, or
`run_seeds` with a config and plan per seed) are one vmapped program, each seed with its own run
dir, logs and checkpoints.
"""

from __future__ import annotations

import envs
from wsrl_mjx.config import Config
from wsrl_mjx.phases.online_run import OnlineRun, check_online_dirs, start_online, summaries
from wsrl_mjx.phases.online_system import OnlinePlan, build_online, online_phase, warmup_phase
from wsrl_mjx.runtime.policy import seed_configs
from wsrl_mjx.runtime.rundir import holds_run_dir
from wsrl_mjx.runtime.runner import begin, run_phase, running
from wsrl_mjx.types import TrainingState


def run_online(cfg: Config, plan: OnlinePlan | None = None, *, resume: bool = False):
    """build -> warmup -> online updates; returns a summary (a list of them, one per seed, with
    run.num_seeds > 1: every seed starts from `plan`).

    `plan` says what is trained and how it acts (default: SAC from scratch); fine-tuning
    methods make theirs in `wsrl_mjx.phases.finetune.plan_finetune`.
    """
    cfgs = seed_configs(cfg)
    summary = run_seeds(cfgs, [plan or OnlinePlan()] * len(cfgs), resume=resume)
    return summary if cfg.run.num_seeds > 1 else summary[0]


@holds_run_dir  # one writer per run dir, for the run's whole life
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
    begin(cfgs[0])
    checkpointers = check_online_dirs(cfgs, resume)  # refusals before anything is compiled
    system = build_online(cfgs, plans, env)
    run, state = start_online(system, checkpointers, resume)
    with running(run.loops):
        if run.step(state) == 0:  # a resumed run made it before
            run.evaluate(state, 0, "initial")
        state = prefill_replay_buffer(run, state)
        state = train_online(run, state)
    return summaries(run, state)


def prefill_replay_buffer(run: OnlineRun, state: TrainingState) -> TrainingState:
    """WSRL's warmup (`warmup_phase`), run by the shared runner; nothing when resumed past it."""
    return run_phase(run, warmup_phase(run.system), state)


def train_online(run: OnlineRun, state: TrainingState) -> TrainingState:
    """The online phase (`online_phase`), run by the shared runner."""
    return run_phase(run, online_phase(run.system), state)
