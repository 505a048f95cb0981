"""Can a task tell methods apart? Normalized scores of trivial policies.

A test bed is useful only if trivial policies fail it: this evaluates constant-action policies
(zero, all +1, all -1 and random constant vectors) with the project's evaluator in a twin,
and reads the uniform-random policy's return from a `random` dataset's metadata (its mean
episode return over the rollout). Writes JSON and markdown.

    python scripts/trivial_policies.py --env HalfCheetah-v5 --env Hopper-v5 \
        --data data/locomotion --out results/locomotion_wsrl/trivial_policies
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from wsrl_mjx.config import EnvConfig
from wsrl_mjx.core.environment import make_env
from wsrl_mjx.core.evaluate import make_evaluator
from wsrl_mjx.datasets import readers, scores
from wsrl_mjx.studies.gates import ConstantPolicy

NUM_RANDOM_CONSTANTS = 10


def constant_actions(action_size: int, seed: int, directions: int = 0) -> dict[str, np.ndarray]:
    """Zero, all +1, all -1, random constant vectors and, for 2-D actions, `directions` unit
    vectors evenly spaced in angle (a point mass pushed one way)."""
    rng = np.random.default_rng(seed)
    actions = {
        "zero": np.zeros(action_size),
        "all +1": np.ones(action_size),
        "all -1": -np.ones(action_size),
    }
    for i in range(NUM_RANDOM_CONSTANTS):
        actions[f"uniform #{i}"] = rng.uniform(-1.0, 1.0, action_size)
    if action_size == 2:
        for angle in np.linspace(0.0, 360.0, directions, endpoint=False):
            rad = np.deg2rad(angle)
            actions[f"direction {angle:.1f} deg"] = np.array([np.cos(rad), np.sin(rad)])
    return {k: v.astype(np.float32) for k, v in actions.items()}


def _normalized(env_name: str, record: dict) -> float:
    score = scores.normalized_of(env_name, record)
    return math.nan if score is None else score


def evaluate_task(
    env_name: str, data_dir: Path, episodes: int, seed: int, directions: int = 0
) -> dict:
    env = make_env(EnvConfig(name=env_name))
    evaluate = make_evaluator(env, ConstantPolicy(), episodes)
    rows = {}
    for name, action in constant_actions(env.action_size, seed, directions).items():
        result = evaluate(jnp.asarray(action), jax.random.PRNGKey(seed))
        row = {
            "action": action.round(3).tolist(),
            "return": float(result["return"]),
            "success": float(result.get("success", math.nan)),
            "length": float(result["length"]),
        }
        rows[name] = {**row, "normalized": _normalized(env_name, row)}
    out = {"env": env_name, "episodes": episodes, "constant": rows}
    random_path = data_dir / f"{env_name}-random.npz"
    if random_path.is_file():
        meta = readers.load_any(random_path).metadata
        ret = meta.get("rollout_return", meta.get("behaviour_return"))
        out["random"] = {"return": ret, "normalized": _normalized(env_name, {"return": ret})}
    refs = scores.references(env_name)
    if refs is not None:
        out["references"] = refs._asdict()
    return out


def markdown(results: list[dict]) -> str:
    lines = [
        "# Trivial policies",
        "",
        f"Deterministic evaluation in the MJX envs; normalized with the references of "
        f"`wsrl_mjx/datasets/scores.py` where the env has them. Command: `{' '.join(sys.argv)}`. "
        f"Machine: {platform.processor() or platform.machine()}, "
        f"jax {jax.__version__}.",
        "",
        "| task | policy | return | normalized | success | episode length |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if "random" in r:
            lines.append(
                f"| {r['env']} | uniform random (the `random` dataset's episodes) | "
                f"{r['random']['return']:.1f} | {r['random']['normalized']:.1f} | | |"
            )
        best = max(r["constant"].items(), key=lambda kv: kv[1]["return"])
        for name, row in r["constant"].items():
            mark = " (best constant)" if name == best[0] else ""
            lines.append(
                f"| {r['env']} | constant {name}{mark} | {row['return']:.1f} | "
                f"{row['normalized']:.1f} | {row['success']:.2f} | {row['length']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", required=True)
    parser.add_argument("--data", type=Path, default=Path("data/locomotion"))
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--directions", type=int, default=0, help="2-D actions: unit vectors")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = [
        evaluate_task(e, args.data, args.episodes, args.seed, args.directions) for e in args.env
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    text = markdown(results)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
