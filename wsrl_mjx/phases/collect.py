"""Make D4RL-style datasets on device: random / medium / medium-replay / expert.

A behaviour SAC agent is trained with the online loop; its actor is snapshotted at every
evaluation. `medium` rolls out the snapshot whose return is nearest a target (`medium_target`:
a share of the final return or of the normalized range, or D4RL's own medium level), judged by
the whole rollout among `medium_candidates` snapshots; `medium-replay` is everything the replay
buffer held up to that snapshot; `expert` rolls out the best of `expert_candidates` late
snapshots by rollout (the final actor by default); `random` takes uniform actions. Rollouts are
the warmup chunk (no updates) writing into a buffer sized to the request.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import numpy as np

import envs
from wsrl_mjx.agents.sac import make_sac
from wsrl_mjx.config import Config, ConfigError
from wsrl_mjx.core.environment import make_env
from wsrl_mjx.core.loops import make_chunk, policy_actions, random_actions
from wsrl_mjx.core.online_system import OnlinePlan, init_training_state
from wsrl_mjx.core.replay import make_replay
from wsrl_mjx.core.schedule import Schedule
from wsrl_mjx.datasets import scores
from wsrl_mjx.datasets.data import DATASET_KEYS, save_dataset
from wsrl_mjx.phases.online import run_online
from wsrl_mjx.runtime.policy import check_single_seed

KINDS = ("random", "medium", "medium-replay", "expert")


def buffer_to_arrays(
    experience, num_envs: int, count: int, reward_scale: float = 1.0, reward_bias: float = 0.0
) -> dict[str, np.ndarray]:
    """The first `count` stored items (time-major, N per vector step) as D4RL arrays with each
    env's stream contiguous, so trajectories are consecutive rows. Rewards are un-transformed."""
    steps = count // num_envs

    def per_env(x):
        x = np.asarray(x)[0, : steps * num_envs]
        x = x.reshape((steps, num_envs, *x.shape[1:]))
        return np.swapaxes(x, 0, 1).reshape((steps * num_envs, *x.shape[2:]))

    e = jax.tree.map(per_env, jax.device_get(experience))
    terminals = e.terminated > 0.5
    timeouts = e.truncated > 0.5
    # Each env's stream ends mid-episode: flag it a timeout so trajectories never run across
    # streams (D4RL: never both flags on one row).
    timeouts.reshape(num_envs, steps)[:, -1] |= ~terminals.reshape(num_envs, steps)[:, -1]
    arrays = {key: getattr(e, field) for field, key in DATASET_KEYS.items()}
    return {
        **arrays,
        "rewards": ((e.reward - reward_bias) / reward_scale).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


def rollout(
    cfg: Config, env: envs.Env, actor_params, size: int, seed: int
) -> tuple[dict[str, np.ndarray], float]:
    """`size` transitions of the given actor (stochastic samples) or uniform actions (None)."""
    n = cfg.collect.num_envs
    steps = math.ceil(size / n)
    agent = make_sac(cfg.agent, env.observation_size, env.action_size)
    batch_env = envs.BatchEnv(env, n, time_limit_truncates=cfg.online.time_limit_truncates)
    buffer = make_replay(steps * n, 1)
    action_fn = random_actions(env.action_size) if actor_params is None else policy_actions(agent)
    chunk = make_chunk(batch_env, agent, buffer, length=steps, update_rounds=0, action_fn=action_fn)
    run_cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=seed))
    state = init_training_state(run_cfg, agent, batch_env, buffer)
    if actor_params is not None:
        state = state.replace(
            agent=state.agent.replace(
                actor=state.agent.actor.replace(params=jax.device_put(actor_params))
            )
        )
    state, metrics = chunk(state, None)
    episodes = float(metrics["episodes"].sum())
    # NaN when no episode ended within the rollout (not a return of 0).
    mean_return = float(metrics["episode_return_sum"].sum()) / episodes if episodes else math.nan
    arrays = buffer_to_arrays(state.buffer.experience, n, steps * n)
    return {k: v[:size] for k, v in arrays.items()}, mean_return


def medium_return(cfg: Config, env_name: str, snapshots: list) -> float:
    """The return `medium` aims at: medium_fraction x the final return; with
    collect.medium_target=reference that share of the env's normalized range; with d4rl the
    level of D4RL's own medium dataset for the env."""
    target = cfg.collect.medium_target
    if target == "final":
        return cfg.collect.medium_fraction * snapshots[-1][1]
    refs = scores.references(env_name)
    if refs is None or refs.metric != "return":  # AntMaze's are for the success rate
        raise ConfigError(
            f"collect.medium_target={target}: env {env_name!r} has no reference returns "
            f"(wsrl_mjx.datasets.scores has {', '.join(sorted(scores.D4RL_REFERENCES))}); use final"
        )
    if target == "reference":
        return scores.return_at(env_name, 100.0 * cfg.collect.medium_fraction)
    if env_name not in scores.D4RL_MEDIUM_SCORES:
        raise ConfigError(
            f"collect.medium_target=d4rl: D4RL has no medium dataset for {env_name!r} "
            f"(it has {', '.join(sorted(scores.D4RL_MEDIUM_SCORES))}); use reference or final"
        )
    return scores.return_at(env_name, scores.D4RL_MEDIUM_SCORES[env_name])


def trained_snapshots(snapshots: list, target: float | None = None, window: int = 0) -> list:
    """The snapshots medium may be: after some training (never the random-init actor, whose
    buffer would be empty) and before the final one (expert); with a `window`, only those up to
    the first `window` consecutive evaluations whose mean reaches `target` (early stopping)."""
    if window:
        returns = [s[1] for s in snapshots]
        for end in range(window, len(snapshots) + 1):
            if np.mean(returns[end - window : end]) >= target:
                snapshots = snapshots[:end] + snapshots[-1:]  # the final one stays expert's
                break
    return [s for s in snapshots[:-1] if s[0] > 0] or snapshots[-1:]


def pick_medium(snapshots: list, target: float, window: int = 0) -> tuple[int, float, dict]:
    """The snapshot whose return is nearest `target`, among `trained_snapshots`."""
    trained = trained_snapshots(snapshots, target, window)
    return min(trained, key=lambda s: abs(s[1] - target))


def best_rollout(cfg: Config, env: envs.Env, kind: str, candidates: list, loss, seed: int) -> dict:
    """Roll out every candidate snapshot (the dataset itself: every episode it completes, >= 100
    at D4RL's sizes) and keep the one whose rollout return has the smallest `loss`, so one lucky
    evaluation of a few episodes cannot pick it. A NaN return (no episode ended) never wins."""

    def worse(ret: float) -> float:
        return math.inf if math.isnan(ret) else loss(ret)

    best, tried = None, []
    for step, eval_return, params in candidates:
        arrays, ret = rollout(cfg, env, params, cfg.collect.size, seed)
        tried.append({"env_steps": step, "eval_return": eval_return, "rollout_return": ret})
        print(
            f"[collect] {kind} candidate at {step}: eval {eval_return:.1f}, rollout {ret:.1f}",
            flush=True,
        )
        if best is None or worse(ret) < worse(best["rollout_return"]):
            best = {
                "snapshot": (step, eval_return, params),
                "arrays": arrays,
                "rollout_return": ret,
            }
    return {**best, "candidates": tried}


def pick_medium_by_rollout(
    cfg: Config, env: envs.Env, snapshots: list, target: float, seed: int
) -> dict:
    """`medium`: of the `collect.medium_candidates` snapshots whose evaluation is nearest
    `target`, the one whose rollout return is nearest it."""
    trained = trained_snapshots(snapshots, target, cfg.collect.medium_window)
    nearest = sorted(trained, key=lambda s: abs(s[1] - target))[: cfg.collect.medium_candidates]
    return best_rollout(cfg, env, "medium", nearest, lambda ret: abs(ret - target), seed)


def expert_candidates(snapshots: list, count: int) -> list:
    """The final snapshot and the `count` - 1 best evaluated others of the run's second half,
    in the order they were taken (trained as far as the run went, not an early spike)."""
    final = snapshots[-1]
    late = [s for s in snapshots[:-1] if s[0] >= final[0] / 2]
    best = sorted(late, key=lambda s: -s[1])[: count - 1]
    return sorted(best, key=lambda s: s[0]) + [final]


def pick_expert_by_rollout(cfg: Config, env: envs.Env, snapshots: list, seed: int) -> dict:
    """`expert`: of `expert_candidates(...)`, the one whose rollout returns most."""
    candidates = expert_candidates(snapshots, cfg.collect.expert_candidates)
    return best_rollout(cfg, env, "expert", candidates, lambda ret: -ret, seed)


def run_collect(cfg: Config, *, resume: bool = False) -> dict:
    """The behaviour run (continued from its last checkpoint with `resume`; one that ended is
    only restored), then every requested dataset, written again on each call."""
    check_single_seed(cfg, "collect")
    kinds = cfg.collect.kinds
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(f"collect.kinds: unknown {unknown}; choose from {', '.join(KINDS)}")
    env = make_env(cfg.env)
    out_dir = Path(cfg.collect.out_dir)
    base_meta = {"env": env.name, "seed": cfg.run.seed, "episode_length": env.episode_length}
    written, behaviour, target = {}, None, None
    if set(kinds) - {"random"}:
        steps = cfg.collect.behaviour_env_steps or cfg.online.total_env_steps
        behaviour_cfg = dataclasses.replace(
            cfg, online=dataclasses.replace(cfg.online, total_env_steps=steps)
        )
        runs = Schedule.from_config(behaviour_cfg).total_env_steps  # whole chunks: >= steps
        if "medium-replay" in kinds and runs > cfg.online.buffer_capacity:
            raise ConfigError(
                f"collect.kinds has medium-replay, which needs the whole behaviour run in the "
                f"buffer (a full buffer overwrites its first rows): online.buffer_capacity="
                f"{cfg.online.buffer_capacity} < the {runs} env steps the behaviour run makes"
            )
        plan = OnlinePlan(phase_name="behaviour", keep_actor_snapshots=True)
        behaviour = run_online(behaviour_cfg, plan, resume=resume)
        target = medium_return(cfg, env.name, behaviour["snapshots"])
        print(f"[collect] medium: the snapshot nearest return {target:.1f}", flush=True)
        if "medium" in kinds or cfg.collect.medium_candidates > 1:
            slot = kinds.index("medium") if "medium" in kinds else len(kinds)
            seed = cfg.run.seed + 100 * (slot + 1)  # the seed medium's rollout always had
            medium = pick_medium_by_rollout(cfg, env, behaviour["snapshots"], target, seed)
        else:  # medium-replay alone, picked by the evaluations
            window = cfg.collect.medium_window
            medium = {"snapshot": pick_medium(behaviour["snapshots"], target, window)}
    for i, kind in enumerate(kinds):
        seed = cfg.run.seed + 100 * (i + 1)
        meta = {**base_meta, "method": kind}
        if kind == "random":  # a rollout: one compiled chunk, silent until done
            print(
                f"[collect] random: rolling out {cfg.collect.size} transitions with "
                f"{cfg.collect.num_envs} envs (compiling, then one chunk) ...",
                flush=True,
            )
            arrays, ret = rollout(cfg, env, None, cfg.collect.size, seed)
            meta.update(behaviour_return=ret)
        elif kind == "medium-replay":
            step, ret, _ = medium["snapshot"]
            arrays = buffer_to_arrays(
                behaviour["state"].buffer.experience,
                behaviour["num_envs"],
                step,
                cfg.env.reward_scale,
                cfg.env.reward_bias,
            )
            meta.update(behaviour_return=ret, snapshot_env_steps=step)
        elif kind == "medium":
            step, eval_ret, _ = medium["snapshot"]
            arrays, ret = medium["arrays"], medium["rollout_return"]
            meta.update(behaviour_return=eval_ret, rollout_return=ret, snapshot_env_steps=step)
            meta.update(target_return=target, medium_candidates=medium["candidates"])
        else:
            expert = pick_expert_by_rollout(cfg, env, behaviour["snapshots"], seed)
            step, eval_ret, _ = expert["snapshot"]
            arrays, ret = expert["arrays"], expert["rollout_return"]
            meta.update(behaviour_return=eval_ret, rollout_return=ret, snapshot_env_steps=step)
            meta.update(expert_candidates=expert["candidates"])
        path = save_dataset(out_dir / f"{env.name}-{kind}.npz", arrays, meta)
        written[kind] = {"path": str(path), "size": len(arrays["rewards"]), **meta}
        if cfg.collect.format == "minari":
            from wsrl_mjx.phases.minari_export import export_minari

            dataset_id = f"wsrl-mjx/{env.name.lower()}/{kind}-v0"
            minari_dir = export_minari(path, dataset_id, out_dir / "minari", cfg.env.overrides)
            written[kind]["minari"] = str(minari_dir)
            print(f"[collect] {kind}: Minari dataset {dataset_id} -> {minari_dir}", flush=True)
        print(
            f"[collect] {kind}: {len(arrays['rewards'])} transitions, behaviour return "
            f"{meta['behaviour_return']:.2f} -> {path}",
            flush=True,
        )
    return written
