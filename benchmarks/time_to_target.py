"""Wall-clock to a target return: the fused loop at many envs against the paper's configuration.

Both variants train SAC from scratch on the same task with the same networks, batch size and
random-action warmup, and evaluate the deterministic policy every `--eval-every` env steps with
the same jitted evaluator; training time (evaluation and compilation excluded) is summed until
an evaluation reaches `--target`:

  paper    the paper's online setting: one env, UTD 4 (`--paper-critic-minibatches` critic
           minibatches and one actor step per env step), run as a conventional host loop
           (`benchmarks.host_loop.HostLoop`).
  fused    the project's fused on-device loop (`wsrl_mjx.core.loops.make_chunk`) at `--num-envs`
           envs with `--update-rounds` update rounds of `--critic-minibatches` per vector step.

    python -m benchmarks.time_to_target                       # CPU defaults, CartpoleSwingup
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Protocol

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

import envs  # noqa: E402
from benchmarks.common import (  # noqa: E402
    agent_config,
    fmt,
    hardware_markdown,
    markdown_table,
    out_stem,
    results_payload,
    start_run,
    write_results,
)
from benchmarks.host_loop import HostLoop  # noqa: E402
from wsrl_mjx.agents.sac import SACAgent, make_sac  # noqa: E402
from wsrl_mjx.config import AgentConfig, Config, EnvConfig, OnlineConfig, RunConfig  # noqa: E402
from wsrl_mjx.core.environment import make_env  # noqa: E402
from wsrl_mjx.core.evaluate import make_evaluator  # noqa: E402
from wsrl_mjx.core.loops import make_chunk, policy_actions, random_actions, strong_copy  # noqa: E402
from wsrl_mjx.core.online_system import init_training_state  # noqa: E402
from wsrl_mjx.core.replay import make_replay  # noqa: E402
from wsrl_mjx.types import Params, TrainingState  # noqa: E402


def agent_settings(args: argparse.Namespace, critic_minibatches: int) -> AgentConfig:
    return agent_config(
        args,
        critic_minibatches=critic_minibatches,
        actor_lr=args.lr,
        temperature_lr=args.lr,
        init_temperature=args.init_temperature,
    )


class Trainer(Protocol):
    """What `time_to_target` drives: compile once, then per seed a fresh start, the random
    warmup (`--warmup-steps` env steps), training in `--eval-every` env-step pieces and the
    actor's params to evaluate."""

    agent: SACAgent

    def warm_up(self) -> None: ...  # compile everything (on throwaway state where it matters)

    def start(self, seed: int) -> None: ...

    def random_steps(self) -> object: ...

    def train(self) -> object: ...

    def actor_params(self) -> Params: ...


class PaperHostLoop:
    def __init__(self, args: argparse.Namespace, env: envs.Env):
        self.agent = make_sac(
            agent_settings(args, args.paper_critic_minibatches),
            env.observation_size,
            env.action_size,
        )
        self.loop = HostLoop(
            self.agent,
            envs.BatchEnv(env, 1),
            update_rounds=1,
            buffer_capacity=args.buffer_capacity,
        )
        # One env: env steps are vector steps.
        self.warmup_steps, self.eval_every = args.warmup_steps, args.eval_every

    def warm_up(self) -> None:
        jax.block_until_ready(self.loop.run(self.agent.cfg.critic_minibatches, learn=False))
        jax.block_until_ready(self.loop.run(1))

    def start(self, seed: int) -> None:
        self.loop.reset(seed)

    def random_steps(self) -> object:
        return self.loop.run(self.warmup_steps, learn=False)

    def train(self) -> object:
        return self.loop.run(self.eval_every)

    def actor_params(self) -> Params:
        return self.loop.agent_state.actor.params


class FusedLoop:
    def __init__(self, args: argparse.Namespace, env: envs.Env):
        if args.eval_every % args.num_envs or args.warmup_steps % args.num_envs:
            raise SystemExit("--eval-every and --warmup-steps must be multiples of --num-envs")
        self.cfg = Config(
            env=EnvConfig(name=args.env, episode_length=args.episode_length),
            agent=agent_settings(args, args.critic_minibatches),
            online=OnlineConfig(num_envs=args.num_envs, buffer_capacity=args.buffer_capacity),
        )
        self.agent = make_sac(self.cfg.agent, env.observation_size, env.action_size)
        self.batch_env = envs.BatchEnv(env, args.num_envs)
        self.buffer = make_replay(
            args.buffer_capacity, self.cfg.agent.critic_minibatches * args.batch_size
        )
        common = dict(batch_env=self.batch_env, agent=self.agent, buffer=self.buffer)
        self.warmup_chunk = make_chunk(
            **common,
            length=args.warmup_steps // args.num_envs,
            update_rounds=0,
            action_fn=random_actions(env.action_size),
        )
        self.online_chunk = make_chunk(
            **common,
            length=args.eval_every // args.num_envs,
            update_rounds=args.update_rounds,
            action_fn=policy_actions(self.agent),
        )

    def _initial_state(self, seed: int) -> TrainingState:
        cfg = dataclasses.replace(self.cfg, run=RunConfig(seed=seed))
        return strong_copy(init_training_state(cfg, self.agent, self.batch_env, self.buffer))

    def warm_up(self) -> None:
        state, _ = self.warmup_chunk(self._initial_state(0), None)
        jax.block_until_ready(self.online_chunk(state, None))

    def start(self, seed: int) -> None:
        self.state = self._initial_state(seed)

    def random_steps(self) -> object:
        self.state, _ = self.warmup_chunk(self.state, None)
        return self.state.env_steps

    def train(self) -> object:
        self.state, _ = self.online_chunk(self.state, None)
        return self.state.env_steps

    def actor_params(self) -> Params:
        return self.state.agent.actor.params


def time_to_target(
    trainer: Trainer, evaluate, args: argparse.Namespace, seed: int, label: str
) -> dict:
    """Train until an evaluation reaches the target or a budget runs out."""
    trainer.start(seed)
    eval_key = jax.random.PRNGKey(10_000 + seed)
    train_s, env_steps, curve = 0.0, 0, []
    start = time.perf_counter()
    jax.block_until_ready(trainer.random_steps())
    train_s += time.perf_counter() - start
    env_steps += args.warmup_steps
    reached = None
    while env_steps < args.max_env_steps and train_s < args.max_seconds:
        start = time.perf_counter()
        jax.block_until_ready(trainer.train())
        train_s += time.perf_counter() - start
        env_steps += args.eval_every
        ret = float(
            evaluate(trainer.actor_params(), jax.random.fold_in(eval_key, env_steps))["return"]
        )
        curve.append({"env_steps": env_steps, "train_s": round(train_s, 3), "return": ret})
        print(
            f"  {label} seed {seed}: {env_steps:>7,} env steps, {train_s:7.1f} s, return {ret:.2f}",
            flush=True,
        )
        if ret >= args.target:
            reached = {"env_steps": env_steps, "train_s": train_s}
            break
    return {"seed": seed, "reached": reached, "curve": curve}


def summarize(runs: list[dict]) -> dict:
    hits = [r["reached"] for r in runs if r["reached"]]
    return {
        "reached": f"{len(hits)}/{len(runs)}",
        "median_train_s": statistics.median(h["train_s"] for h in hits) if hits else None,
        "median_env_steps": statistics.median(h["env_steps"] for h in hits) if hits else None,
    }


def to_markdown(payload: dict) -> str:
    s, res = payload["settings"], payload["results"]
    rows = []
    for name, desc in (
        (
            "paper",
            f"host loop, 1 env, {s['paper_critic_minibatches']} critic minibatches per env step",
        ),
        (
            "fused",
            f"fused, {s['num_envs']} envs, {s['update_rounds']} round(s) x "
            f"{s['critic_minibatches']} critic minibatch(es) per vector step",
        ),
    ):
        if name not in res:  # --variants left it out
            continue
        r = res[name]["summary"]
        rows.append(
            [
                name,
                desc,
                r["reached"],
                fmt(r["median_env_steps"]),
                fmt(r["median_train_s"], 1),
                fmt(res[name]["compile_s"], 1),
            ]
        )
    speedup = payload["speedup_fused_over_paper"]
    table = markdown_table(
        [
            "variant",
            "configuration",
            "reached target",
            "median env steps",
            "median train s",
            "compile s",
        ],
        rows,
    )
    return f"""# Wall-clock to a target return ({payload["hardware"]["backend"]})

{hardware_markdown(payload)}

Task {s["env"]} ({s["episode_length"]}-step episodes), SAC from scratch, MLPs {s["hidden"]},
{s["num_critics"]} critics, batch {s["batch_size"]}, {s["warmup_steps"]:,} random-action warmup
env steps; deterministic evaluation ({s["eval_episodes"]} episodes) every {s["eval_every"]:,} env
steps; target return {s["target"]}; seeds {s["seeds"]}. Train s: training time until the first
evaluation at or above the target (evaluation and compilation excluded).

{table}

Fused / paper wall-clock speedup (ratio of medians): {fmt(speedup, 1) if speedup else "-"}x
(the issue's target: >= 10x).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartpoleSwingup")
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--target", type=float, default=6.0, help="evaluation return to reach")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--num-critics", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-4, help="actor and temperature lr")
    parser.add_argument("--init-temperature", type=float, default=0.1)
    parser.add_argument("--buffer-capacity", type=int, default=200_000)
    parser.add_argument("--warmup-steps", type=int, default=1024)
    parser.add_argument("--eval-every", type=int, default=512)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--paper-critic-minibatches", type=int, default=4, help="paper's UTD")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--update-rounds", type=int, default=4)
    parser.add_argument("--critic-minibatches", type=int, default=1)
    parser.add_argument("--max-env-steps", type=int, default=200_000)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["paper", "fused"])
    parser.add_argument("--matmul-precision", default="highest")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    header = start_run(args.matmul_precision)
    env = make_env(EnvConfig(name=args.env, episode_length=args.episode_length))
    results = {}
    for name in args.variants:
        trainer = {"paper": PaperHostLoop, "fused": FusedLoop}[name](args, env)
        evaluate = make_evaluator(env, trainer.agent, args.eval_episodes)
        start = time.perf_counter()
        trainer.start(args.seeds[0])
        trainer.warm_up()
        jax.block_until_ready(evaluate(trainer.actor_params(), jax.random.PRNGKey(0)))
        compile_s = time.perf_counter() - start
        runs = [time_to_target(trainer, evaluate, args, seed, name) for seed in args.seeds]
        results[name] = {"compile_s": compile_s, "runs": runs, "summary": summarize(runs)}
    paper, fused = (
        results.get(k, {}).get("summary", {}).get("median_train_s") for k in ("paper", "fused")
    )
    speedup = paper / fused if paper and fused else None
    payload = results_payload(
        "time_to_target", header, args, results, speedup_fused_over_paper=speedup
    )
    write_results(out_stem(args, "time_to_target"), payload, to_markdown(payload))
    print(to_markdown(payload))


if __name__ == "__main__":
    main()
