"""`run maze-datasets`: maze datasets from the command line, and the trained ant policy the
antmaze collector steers.

The collectors themselves (`envs.maze_data`) need nothing of the trainer; this module adds what
does: loading an `antgoal` run's actor (or the exported file shipped in `envs/assets/`) and
saving datasets in the project's format (`wsrl_mjx.datasets.data.save_dataset`).

Command line (writes docs/<agent>maze_<layout>.png; `--save DIR` also writes
DIR/pointmaze-<layout>.npz or DIR/antmaze-<layout>-<goals>.npz):

    python -m wsrl_mjx.run maze-datasets --layouts umaze medium large --out docs/
    python -m wsrl_mjx.run maze-datasets --layouts medium --num-transitions 1000000 --save data/
    python -m wsrl_mjx.run maze-datasets --agent ant --policy runs/antgoal_sac --goals diverse \
        --save data/

`--twin ID` collects in a Gymnasium-Robotics AntMaze twin instead (`envs.maze_data.
collect_gym_antmaze`: the twin's own goals, no PNG) and writes DIR/<ID>.npz (`env`: ID):

    python -m wsrl_mjx.run maze-datasets --agent ant --twin AntMaze_Large_Diverse_GR-v4 \
        --save data/
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

import envs
from envs import ant_goal, maze
from envs.gym_antmaze import ANTMAZE_IDS
from envs.maze_data import (
    ant_policy_stats,
    collect_antmaze,
    collect_gym_antmaze,
    collect_pointmaze,
    plot_maze_dataset,
)
from wsrl_mjx.agents import make_sac
from wsrl_mjx.config import ConfigError
from wsrl_mjx.datasets.data import save_dataset
from wsrl_mjx.phases.bridge import load_agent
from wsrl_mjx.runtime.policy import from_dict

# The low-level policy shipped with the project (actor only, ~0.3 MB): SAC on `antgoal` with
# configs/antgoal_sac.yaml, exported by `--export-policy`; `--policy` takes any other.
BUNDLED_ANT_POLICY = Path(envs.__file__).parent / "assets" / "antgoal_policy.msgpack"


def _antgoal_run(run_dir: str | Path) -> tuple[Any, Any, dict]:
    agent, state, meta = load_agent(run_dir)
    if meta.get("env") != "antgoal":
        raise ValueError(
            f"{run_dir} was trained on env {meta.get('env')!r}; the antmaze collector needs a "
            "policy trained on 'antgoal' (configs/antgoal_sac.yaml)"
        )
    return agent, state, meta


def export_ant_policy(run_dir: str | Path, path: str | Path) -> Path:
    """Write an antgoal run's actor (params + the run's config) to one msgpack file."""
    from flax import serialization

    _, state, meta = _antgoal_run(run_dir)
    payload = {
        "config": json.dumps(meta["config"]),
        "env_steps": int(meta.get("env_steps", -1)),
        "params": jax.device_get(state.actor.params),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(serialization.msgpack_serialize(payload))
    return path


def load_ant_policy(
    source: str | Path = BUNDLED_ANT_POLICY,
) -> tuple[Callable[[Any, jax.Array], jax.Array], Any]:
    """(policy_fn, params) for `collect_antmaze`: an antgoal run dir or an exported file.

    The policy acts deterministically (tanh of the actor mean) on `ant_goal_features` of the
    antmaze observation, whose goal slot holds the waypoint; collection adds the noise.
    """
    source = Path(source)
    if source.is_file():
        from flax import serialization

        try:
            payload = serialization.msgpack_restore(source.read_bytes())
            cfg = from_dict(json.loads(payload["config"]))
        except Exception as e:  # corrupt or foreign file: say which
            raise ValueError(f"{source} is not an exported ant policy: {e}") from None
        env = ant_goal.make_ant_goal()
        agent = make_sac(cfg.agent, env.observation_size, env.action_size)
        params = payload["params"]
    else:
        agent, state, _ = _antgoal_run(source)
        params = state.actor.params

    def policy_fn(params: Any, obs: jax.Array) -> jax.Array:
        return agent.act(params, ant_goal.ant_goal_features(obs), None, deterministic=True)

    return policy_fn, params


TWIN_SHOWN = ("coverage", "behavior_goals_reached", "reward_sum", "restarts", "steps_per_second")


def save_twin_dataset(
    args: argparse.Namespace, policy_fn: Callable, params: Any, noise: float
) -> Path:
    """`--twin`: a dataset collected in the AntMaze twin `args.twin`, saved as <save>/<id>.npz."""
    if not args.save:
        raise SystemExit("--twin writes a dataset: give --save DIR")
    arrays, meta = collect_gym_antmaze(
        args.twin, policy_fn, params, args.num_transitions, args.num_envs, args.seed, noise
    )
    meta["policy"] = str(args.policy)
    print(f"{args.twin}:", {k: meta[k] for k in TWIN_SHOWN})
    path = save_dataset(Path(args.save) / args.twin, arrays, meta)
    print("  wrote", path)
    return path


def run_maze_datasets(args: argparse.Namespace) -> None:
    """`python -m wsrl_mjx.run maze-datasets ...` (arguments: wsrl_mjx/run/)."""
    if args.layouts is None:
        args.layouts = list(maze.LAYOUTS)
    if unknown := [x for x in args.layouts if x not in maze.LAYOUTS]:
        raise ConfigError(f"--layouts: unknown {unknown}; the layouts: {', '.join(maze.LAYOUTS)}")
    if args.twin and args.twin not in ANTMAZE_IDS:
        raise ConfigError(f"--twin: unknown {args.twin!r}; the twins: {', '.join(ANTMAZE_IDS)}")
    if args.policy is None:
        args.policy = str(BUNDLED_ANT_POLICY)
    if args.export_policy:
        print("wrote", export_ant_policy(args.policy, args.export_policy))
    noise = args.noise if args.noise is not None else {"point": 0.5, "ant": 0.1}[args.agent]
    if args.agent == "ant":
        policy_fn, params = load_ant_policy(args.policy)
        if args.policy_stats:
            print(ant_policy_stats(policy_fn, params, noise=noise, seed=args.seed))
            return
        if args.twin:
            save_twin_dataset(args, policy_fn, params, noise)
            return
    elif args.twin:
        raise ConfigError("--twin needs --agent ant")
    for layout in args.layouts:
        if args.agent == "ant":
            arrays, meta = collect_antmaze(
                layout, policy_fn, params, args.num_transitions, args.num_envs, args.seed,
                goals=args.goals, noise=noise,
            )  # fmt: skip
            meta["policy"] = str(args.policy)
            name = f"antmaze-{layout}-{args.goals}"
        else:
            arrays, meta = collect_pointmaze(
                layout, args.num_transitions, args.num_envs, args.seed, noise
            )
            name = f"pointmaze-{layout}"
        shown = ("coverage", "behavior_goals_reached", "num_terminals", "restarts")
        shown += ("collect_seconds", "steps_per_second")
        print(f"{name}:", {k: meta[k] for k in shown if k in meta})
        if args.out:
            first = 300 if args.agent == "point" else 1000
            png = plot_maze_dataset(
                layout,
                arrays["observations"],
                Path(args.out) / f"{args.agent}maze_{layout}.png",
                scaling=meta["scaling"],
                timeouts=arrays["timeouts"],
                max_trajectories=args.max_trajectories,
                max_steps=first,
                title=f"{name}: {args.max_trajectories} of the dataset's trajectories "
                f"(first {first} steps)\n{len(arrays['rewards'])} transitions, noise {noise}, "
                f"cell coverage {meta['coverage']:.2f}",
            )
            print("  wrote", png)
        if args.save:
            print("  wrote", save_dataset(Path(args.save) / name, arrays, meta))
