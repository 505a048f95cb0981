"""`evaluate`: a run's policy in the native Gymnasium env beside its MJX twin, so a twin's numbers
can be checked against the env everyone else reports on.

The checkpoint (any run: pretrain, online, finetune) gives the agent and the env it was trained
in, with its overrides and episode length. The same deterministic policy (tanh of the mean) runs
`episodes` episodes in the twin (the project's own evaluator) and in `gymnasium.make(env name,
**overrides, max_episode_steps=episode length)`, observations flattened as the twin's (goal-env
dicts as `minari_episodes.flatten_order` says). Return, success (where the task has one), length and
the normalized score (where references exist, wsrl_mjx.datasets.scores: from the success rate for
AntMaze, the return for locomotion) are reported for both, with Welch's t-test of
the two return samples: a twin that behaves like its native env gives a large p-value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import envs
from wsrl_mjx.config import ConfigError
from wsrl_mjx.core.environment import make_env, make_eval_env
from wsrl_mjx.datasets.minari_episodes import flatten_observation
from wsrl_mjx.datasets.scores import normalized_of
from wsrl_mjx.phases.bridge import load_agent
from wsrl_mjx.runtime.policy import from_dict


def native_env(
    name: str,
    overrides: dict[str, Any],
    episode_length: int,
    render_mode: str | None = None,
    render_size: tuple[int, int] | None = None,
) -> Any:
    """`gymnasium.make` of a twin's Gymnasium id (ConfigError for envs without one)."""
    package = envs.native_package(name)
    if package is None:
        raise ConfigError(
            f"env {name!r} has no native Gymnasium env: `evaluate` runs the Gymnasium twins "
            f"({', '.join(envs.twin_names())})"
        )
    import importlib

    import gymnasium as gym

    if package != "gymnasium":  # e.g. gymnasium_robotics registers its ids on request
        gym.register_envs(importlib.import_module(package))
    extra = {"render_mode": render_mode} if render_mode else {}
    if render_size:  # (height, width) of the frames MujocoEnv renders
        extra.update(height=render_size[0], width=render_size[1])
    return gym.make(name, max_episode_steps=episode_length, **overrides, **extra)


def flat_obs(obs: Any) -> np.ndarray:
    return flatten_observation(obs) if isinstance(obs, dict) else np.asarray(obs)


def native_episodes(env: Any, act: Any, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Per-episode return, success (NaN where the env reports none) and length."""
    out = {"return": [], "success": [], "length": []}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, success, length, done = 0.0, np.nan, 0, False
        while not done:
            action = np.asarray(act(jnp.asarray(flat_obs(obs), jnp.float32)[None]))[0]
            obs, reward, terminated, truncated, info = env.step(action.astype(np.float64))
            total, length, done = total + float(reward), length + 1, terminated or truncated
            if "success" in info or "is_success" in info:
                flag = float(info.get("success", info.get("is_success")))
                success = flag if np.isnan(success) else max(success, flag)
        out["return"].append(total)
        out["success"].append(success)
        out["length"].append(length)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def evaluate_native(
    run_dir: str | Path, episodes: int = 10, seed: int = 0, allow_unverified: bool = False
) -> dict:
    """The run's policy in its twin and in the native env: {env, twin, native, welch_p}."""
    agent, state, meta = load_agent(run_dir, allow_unverified=allow_unverified)
    cfg = from_dict(meta["config"])
    twin = make_eval_env(cfg, make_env(cfg.env))  # the evaluation env (eval.overrides)
    overrides = {**cfg.env.overrides, **cfg.eval.overrides}
    native = native_env(twin.name, overrides, twin.episode_length)
    key = jax.random.PRNGKey(0)  # unused by the deterministic policy
    act = jax.jit(lambda obs: agent.act(state.actor.params, obs, key, deterministic=True))
    runs = native_episodes(native, act, episodes, seed)
    native.close()
    twin_runs = _twin_episodes(twin, agent, state, episodes, seed)
    summary = {"env": twin.name, "episode_length": twin.episode_length, "episodes": episodes}
    for name, result in (("twin", twin_runs), ("native", runs)):
        summary[name] = _summary(twin.name, result)
    welch = stats.ttest_ind(twin_runs["return"], runs["return"], equal_var=False)
    summary["welch_p"] = float(welch.pvalue) if np.isfinite(welch.pvalue) else None
    return summary


def _twin_episodes(twin: Any, agent: Any, state: Any, episodes: int, seed: int) -> dict:
    """Per-episode return, success and length in the twin, the deterministic policy's."""
    from wsrl_mjx.core.evaluate import make_evaluator

    evaluate = make_evaluator(twin, agent, 1)
    rows = [
        jax.device_get(evaluate(state.actor.params, jax.random.PRNGKey(seed + k)))
        for k in range(episodes)
    ]
    return {
        key: np.asarray([float(r.get(key, np.nan)) for r in rows])
        for key in ("return", "success", "length")
    }


def _summary(env: str, result: dict[str, np.ndarray]) -> dict:
    """Means over episodes (success: the share of episodes that reached the goal) and the
    normalized score of those means."""
    mean = float(np.mean(result["return"]))
    success = result["success"]
    rate = None if np.isnan(success).all() else float(np.nanmean(success))
    return {
        "return_mean": mean,
        "return_std": float(np.std(result["return"], ddof=1)) if len(success) > 1 else None,
        "success": rate,
        "length_mean": float(np.mean(result["length"])),
        "normalized": normalized_of(env, {"return": mean, "success": rate}),
        "returns": result["return"].tolist(),
    }


def print_report(summary: dict) -> None:
    fmt = lambda x, spec=".2f": "n/a" if x is None else format(x, spec)  # noqa: E731
    print(
        f"[evaluate] {summary['env']}: {summary['episodes']} episodes of at most "
        f"{summary['episode_length']} steps, deterministic policy"
    )
    print("| env | return (mean ± std) | normalized | success | length |")
    print("|---|---|---|---|---|")
    for name in ("twin", "native"):
        s = summary[name]
        print(
            f"| {name} | {fmt(s['return_mean'])} ± {fmt(s['return_std'])} | "
            f"{fmt(s['normalized'], '.1f')} | {fmt(s['success'])} | "
            f"{fmt(s['length_mean'], '.0f')} |"
        )
    print(f"Welch's t-test, twin vs native returns: p = {fmt(summary['welch_p'], '.3g')}")


def write_report(summary: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return path
