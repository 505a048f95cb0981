"""Env steps/s of the Gymnasium twins beside Playground's and brax's nearest tasks.

    python -m benchmarks.gym_twins_throughput [--num-envs 16 128] [--steps 20] [--repeats 3]

Each variant is `jit(scan(vmap(step)))` over `--steps` vector steps of `num_envs` envs with
uniform random actions (no resets, no learning), all variants interleaved in one process
(benchmarks/common.py), so the ratios are side by side under the same load. Pairs:

| twin                | Playground (MJX)  | brax (`backend="mjx"`) |
|---------------------|-------------------|------------------------|
| HalfCheetah-v5      | CheetahRun        | halfcheetah            |
| Hopper-v5           | HopperHop         | hopper                 |
| Walker2d-v5         | WalkerWalk        | walker2d               |
| Ant-v5              | -                 | ant                    |
| PointMaze_Medium-v3 | pointmaze-medium* | -                      |

*the project's own maze (D4RL frame), the nearest task this repository has.
"""

from __future__ import annotations

import argparse

import jax

import envs
from benchmarks import common

PAIRS: dict[str, tuple[str | None, str | None]] = {
    "HalfCheetah-v5": ("CheetahRun", "halfcheetah"),
    "Hopper-v5": ("HopperHop", "hopper"),
    "Walker2d-v5": ("WalkerWalk", "walker2d"),
    "Ant-v5": (None, "ant"),
    "PointMaze_Medium-v3": ("pointmaze-medium", None),
}


def rollout_fn(reset, step, action_size: int, num_envs: int, steps: int):
    """A no-argument callable running `steps` vector steps of random actions (jitted)."""
    keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
    state = jax.jit(jax.vmap(reset))(keys)

    @jax.jit
    def run(state, rng):
        def body(carry, key):
            action = jax.random.uniform(key, (num_envs, action_size), minval=-1.0, maxval=1.0)
            return jax.vmap(step)(carry, action), None

        state, _ = jax.lax.scan(body, state, jax.random.split(rng, steps))
        return state.obs

    return lambda: run(state, jax.random.PRNGKey(1))


def _dt(env: envs.Env) -> float:
    """Simulated seconds per env step (control dt times the action repeat)."""
    task = env.task
    dt = getattr(task, "dt", None) or float(task.mj_model.opt.timestep)
    return float(dt) * env.action_repeat


def variants(num_envs: int, steps: int, names: list[str]) -> tuple[dict, dict]:
    """({variant: timed callable}, {variant: simulated seconds per env step})."""
    from brax import envs as brax_envs

    out, dts = {}, {}
    for twin in names:
        playground, brax = PAIRS[twin]
        env = envs.make(twin)
        name = f"{twin} (twin)"
        out[name] = rollout_fn(env.reset, env.step, env.action_size, num_envs, steps)
        dts[name] = _dt(env)
        if playground:
            p = envs.make(playground)
            name = f"{twin} vs {playground} (Playground)"
            out[name] = rollout_fn(p.reset, p.step, p.action_size, num_envs, steps)
            dts[name] = _dt(p)
        if brax:
            b = brax_envs.get_environment(brax, backend="mjx")
            name = f"{twin} vs {brax} (brax)"
            out[name] = rollout_fn(b.reset, b.step, b.action_size, num_envs, steps)
            dts[name] = float(b.dt)
    return out, dts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--steps", type=int, default=20, help="vector steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--twins", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    header = common.start_run("highest")
    results = []
    for n in args.num_envs:
        print(f"num_envs={n}", flush=True)
        fns, dts = variants(n, args.steps, args.twins)
        timings = common.measure_interleaved(fns, args.repeats)
        for name, t in timings.items():
            rate = n * args.steps / t["median_s"]
            results.append(
                {"num_envs": n, "variant": name, "env_steps_per_s": rate, "dt_s": dts[name], **t}
            )
    payload = common.results_payload("gym_twins_throughput", header, args, results)
    common.write_results(
        common.out_stem(args, "gym_twins_throughput"), payload, markdown(payload, args)
    )


def markdown(payload: dict, args: argparse.Namespace) -> str:
    rate = {(r["num_envs"], r["variant"]): r["env_steps_per_s"] for r in payload["results"]}
    dt = {r["variant"]: r["dt_s"] for r in payload["results"]}
    rows = []
    for n in args.num_envs:
        for twin in args.twins:
            playground, brax = PAIRS[twin]
            own = rate[(n, f"{twin} (twin)")]
            p = rate.get((n, f"{twin} vs {playground} (Playground)"))
            b = rate.get((n, f"{twin} vs {brax} (brax)"))
            p_dt = dt.get(f"{twin} vs {playground} (Playground)")
            b_dt = dt.get(f"{twin} vs {brax} (brax)")
            rows.append(
                [
                    str(n),
                    f"{twin} (dt {dt[f'{twin} (twin)']:g} s)",
                    common.fmt(own),
                    f"{playground} (dt {p_dt:g} s): {common.fmt(p)}" if p else "-",
                    common.fmt(own / p, 2) + "x" if p else "-",
                    f"{brax} (dt {b_dt:g} s): {common.fmt(b)}" if b else "-",
                    common.fmt(own / b, 2) + "x" if b else "-",
                ]
            )
    table = common.markdown_table(
        [
            "num_envs",
            "twin",
            "twin env steps/s",
            "Playground task: env steps/s",
            "twin / Playground",
            "brax task: env steps/s",
            "twin / brax",
        ],
        rows,
    )
    return (
        "# Gymnasium twins: env steps/s beside Playground and brax (CPU)\n\n"
        + common.hardware_markdown(payload)
        + f"\n\nSettings: {args.steps} vector steps of uniform random actions per timed run, "
        f"median of {args.repeats} interleaved rounds, compile excluded; no resets. "
        "dt = simulated seconds per env step. Playground's tasks are DM Control's (other "
        "models, timesteps and action repeats), brax runs its MJX backend on its own XMLs, "
        "so a ratio compares one env step of each task as shipped. The twins keep Gymnasium's "
        "XML options (Hopper, Walker2d and Ant integrate with RK4: four model evaluations per "
        "physics step), which is what parity with "
        "the native envs costs.\n\n" + table + "\n"
    )


if __name__ == "__main__":
    main()
