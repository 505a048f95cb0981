"""Check the project's online SAC against a reference (brax's SAC) on the same Hopper-v5 twin.

One trainer, one seed per call; writes a curve file OUT/<trainer>_utd<U>_seed<N>.tsv (header
comment lines with the git commit, trainer, seed and every setting; columns env_steps,
eval_return, normalized, wall_s) and, after training, the final policy's return in native
Gymnasium Hopper-v5 (OUT/native_<trainer>_utd<U>_seed<N>.json). A seed whose curve file is
complete (its last line is `# complete`) is skipped on rerun. `--plot` only (re)draws
OUT/curves.png and prints the summary table from the curve files there.

    .venv/bin/python scripts/sac_reference.py --trainer wsrl --seed 0 --env-steps 105008 \
        --out results/sac_reference
    .venv/bin/python scripts/sac_reference.py --trainer brax --seed 0 --env-steps 105008 \
        --out results/sac_reference
    .venv/bin/python scripts/sac_reference.py --plot --out results/sac_reference

Both sides: Hopper-v5 MJX twin (envs.make), 16 envs, warmup/prefill ceil(5000/16)*16 = 5008 env
steps with the initial (random-init) stochastic policy and no update (brax's prefill can only do
that, so the project is set to online.warmup_policy=policy), then per 16-env vector step U
gradient updates (default 8: UTD 0.5) of batch 256; evaluation every 10000 env steps after the
prefill (5008 + 10000 k on both sides: brax's epochs, the project's chunks of 625 vector steps),
16 deterministic (tanh of the mean) 1000-step episodes. settings.md lists every setting.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # XLA:CPU cache-loader noise (wsrl_mjx/__init__)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENV_NAME = "Hopper-v5"
NUM_ENVS = 16
WARMUP = 5000
PREFILL = math.ceil(WARMUP / NUM_ENVS) * NUM_ENVS  # 5008 on both sides
EVAL_EVERY = 10_000
EVAL_EPISODES = 16
EPISODE_LENGTH = 1000
TARGET_ENTROPY_BRAX = -0.5  # x action size, fixed in brax/training/agents/sac/losses.py

# The project's side: configs/locomotion/behaviour.yaml plus these overrides, each setting the
# project to the value brax has (and cannot change), see settings.md.
WSRL_MATCHED = {
    "agent.target_entropy": -1.5,  # brax: -0.5 * |A| = -1.5 (project default -|A| = -3)
    "agent.init_temperature": 1.0,  # brax: log_alpha = 0 (the project's default too)
    "agent.backup_entropy": True,  # brax's target: min Q' - alpha log pi(a'|s')
    "agent.critic_head": "per_member",  # brax: two independent MLPs (project: shared last Dense)
    "agent.temperature_entropy": "actor_batch",  # brax: alpha loss on fresh samples at s
    "online.warmup_policy": "policy",  # brax prefills with the initial policy, not uniform
    "agent.discount": 0.99,
    "agent.tau": 0.005,
    "agent.batch_size": 256,
    "agent.critic_minibatches": 1,
    "env.reward_scale": 1.0,
    "eval.num_episodes": EVAL_EPISODES,
    "online.chunk_length": EVAL_EVERY // NUM_ENVS,  # 625: chunk ends = brax's eval points
    "run.checkpoint_every_env_steps": 1_000_000,  # the final checkpoint only
}


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + (" (working tree has uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def planned_total(env_steps: int) -> tuple[int, int]:
    """(epochs of EVAL_EVERY env steps after the prefill, total env steps) for a budget."""
    epochs = max(1, math.ceil((env_steps - PREFILL) / EVAL_EVERY))
    return epochs, PREFILL + epochs * EVAL_EVERY


# D4RL's Hopper references, as in wsrl_mjx/datasets/scores.py (D4RL_REFERENCES["Hopper-v5"]); kept
# here so that a curve file can always be written (scores.py was being edited during these runs).
HOPPER_RANDOM, HOPPER_EXPERT = -20.272305, 3234.3


def normalized(ret: float) -> float:
    """D4RL normalized score, 100 (x - random) / (expert - random)."""
    try:
        from wsrl_mjx.datasets.scores import normalized_score

        return normalized_score(ENV_NAME, ret)
    except Exception:  # noqa: BLE001  (the same formula and numbers)
        return 100.0 * (ret - HOPPER_RANDOM) / (HOPPER_EXPERT - HOPPER_RANDOM)


def curve_path(out: Path, trainer: str, utd_updates: int, seed: int) -> Path:
    return out / f"{trainer}_utd{utd_updates}_seed{seed}.tsv"


def is_complete(path: Path) -> bool:
    return path.is_file() and path.read_text().rstrip().endswith("# complete")


def write_curve(path: Path, header: dict, rows: list[tuple], complete: bool) -> None:
    lines = [f"# {k}: {v}" for k, v in header.items()]
    lines.append("env_steps\teval_return\tnormalized\twall_s")
    lines += [f"{s}\t{r:.3f}\t{normalized(r):.3f}\t{w:.1f}" for s, r, w in rows]
    if complete:
        lines.append("# complete")
    path.write_text("\n".join(lines) + "\n")


# --- the project's SAC -----------------------------------------------------------------------


def wsrl_overrides(args, total: int, run_dir: Path) -> dict:
    return {
        "env.name": ENV_NAME,
        "run.run_dir": str(run_dir),
        "run.seed": args.seed,
        "online.total_env_steps": total,
        "eval.every_env_steps": EVAL_EVERY,
        "online.update_rounds": args.utd_updates,
        **WSRL_MATCHED,
    }


def run_wsrl(args, out: Path, header: dict, total: int) -> None:
    run_dir = Path(args.run_root) / f"wsrl_utd{args.utd_updates}_seed{args.seed}"
    sets = wsrl_overrides(args, total, run_dir)
    cmd = [sys.executable, "-m", "wsrl_mjx.run", "online"]
    cmd += ["--config", "configs/locomotion/behaviour.yaml"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v) if isinstance(v, bool) else v}"]
    header.update({"command": " ".join(cmd), "run_dir": str(run_dir)})
    header.update({f"set {k}": v for k, v in sets.items()})
    config_text = ""
    if run_dir.exists() and not (run_dir / "metrics.jsonl").is_file():
        raise SystemExit(f"{run_dir} exists without metrics.jsonl; remove it")
    finished = run_dir.exists() and any(
        r.get("env_steps") == total
        for r in read_jsonl(run_dir / "metrics.jsonl")
        if r.get("phase") == "eval"
    )
    t0 = time.time()
    if not finished:
        resume = ["--resume"] if run_dir.exists() else []
        print("running:", " ".join(cmd + resume), flush=True)
        subprocess.run(cmd + resume, cwd=REPO, check=True)
    wall = time.time() - t0
    if (run_dir / "config.yaml").is_file():
        config_text = (run_dir / "config.yaml").read_text()
    records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("phase") == "eval"]
    # wall_s: the log's time stamps relative to the run's first record (compile included)
    all_records = read_jsonl(run_dir / "metrics.jsonl")
    start = min(r["time"] for r in all_records) if all_records else 0.0
    rows = [
        (int(r["env_steps"]), float(r["eval_return"]), float(r["time"] - start)) for r in records
    ]
    header["resolved config (config.yaml)"] = json.dumps(config_flat(config_text))
    header["wall_s of this call"] = f"{wall:.0f}"
    rate = env_rate(all_records)
    if rate:
        header["online env steps/s (log)"] = f"{rate:.1f}"
    write_curve(curve_path(out, "wsrl", args.utd_updates, args.seed), header, rows, False)
    native = out / f"native_wsrl_utd{args.utd_updates}_seed{args.seed}.json"
    if not native.is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "wsrl_mjx.run",
                "evaluate",
                str(run_dir),
                "--episodes",
                str(args.native_episodes),
                "--out",
                str(native),
            ],
            cwd=REPO,
            check=True,
        )
    write_curve(curve_path(out, "wsrl", args.utd_updates, args.seed), header, rows, True)


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def config_flat(text: str) -> dict:
    if not text:
        return {}
    import yaml

    from wsrl_mjx.runtime.policy import flat_settings

    return flat_settings(yaml.safe_load(text))


def env_rate(records: list[dict]) -> float | None:
    """Env steps/s of the online phase from the log's time stamps (evaluations included)."""
    online = [r for r in records if r.get("phase") == "online"]
    if len(online) < 2:
        return None
    a, b = online[0], online[-1]
    return (b["env_steps"] - a["env_steps"]) / max(b["time"] - a["time"], 1e-9)


# --- brax's SAC ------------------------------------------------------------------------------


def brax_settings(args, total: int, epochs: int) -> dict:
    return dict(
        num_timesteps=total,
        episode_length=EPISODE_LENGTH,
        action_repeat=1,
        num_envs=NUM_ENVS,
        num_eval_envs=EVAL_EPISODES,
        learning_rate=3e-4,
        discounting=0.99,
        seed=args.seed,
        batch_size=256,
        num_evals=epochs + 1,  # an initial one, then one per epoch of EVAL_EVERY env steps
        normalize_observations=False,
        reward_scaling=1.0,
        tau=0.005,
        min_replay_size=WARMUP,  # prefill: ceil(5000/16) vector steps of the initial policy
        max_replay_size=None,  # = num_timesteps: the whole run
        grad_updates_per_step=args.utd_updates,
        deterministic_eval=True,
    )


class BraxTask:
    """The project's Env around the twin task for brax: the same action clipping, float32
    obs/reward and done = true termination only as the project trains on; the time limit is
    brax's EpisodeWrapper (truncation = 1 - done when the 1000th step is reached). The only
    change: `step` keeps metric keys a wrapper added (brax's EvalWrapper adds `reward`), since
    the twin's step returns its own metrics dict and lax.scan needs the same pytree."""

    def __init__(self, env):
        self.env = env
        self.action_size = env.action_size
        self.observation_size = env.observation_size

    def reset(self, rng):
        return self.env.reset(rng)

    def step(self, state, action):
        nstate = self.env.step(state, action)
        return nstate.replace(metrics={**state.metrics, **nstate.metrics})


def make_brax_env():
    import envs

    return BraxTask(envs.make(ENV_NAME))


def run_brax(args, out: Path, header: dict, total: int, epochs: int) -> None:
    import jax
    import numpy as np
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as sac
    from mujoco_playground._src import wrapper

    import wsrl_mjx  # noqa: F401  (the persistent compile cache)

    settings = brax_settings(args, total, epochs)
    net = dict(
        hidden_layer_sizes=(256, 256), policy_network_layer_norm=False, q_network_layer_norm=False
    )
    header.update({f"brax {k}": v for k, v in settings.items()})
    header.update({f"brax network {k}": v for k, v in net.items()})
    header["brax wrap_env_fn"] = (
        "mujoco_playground wrapper.wrap_for_brax_training(full_reset=False)"
    )
    env = make_brax_env()
    rows: list[tuple] = []
    sps: list[float] = []
    t0 = time.time()

    def progress(step, metrics):
        ret = float(metrics["eval/episode_reward"])
        rows.append((int(step), ret, time.time() - t0))
        if "training/sps" in metrics:
            sps.append(float(metrics["training/sps"]))
        print(
            f"brax seed {args.seed} step {step}: eval return {ret:.1f} "
            f"(sps {sps[-1] if sps else float('nan'):.0f}, {time.time() - t0:.0f} s)",
            flush=True,
        )

    make_policy, params, _ = sac.train(
        environment=env,
        wrap_env_fn=functools.partial(wrapper.wrap_for_brax_training, full_reset=False),
        network_factory=functools.partial(sac_networks.make_sac_networks, **net),
        progress_fn=progress,
        **settings,
    )
    header["wall_s of this call"] = f"{time.time() - t0:.0f}"
    if sps:
        header["brax training/sps per epoch (evaluation excluded)"] = " ".join(
            f"{s:.0f}" for s in sps
        )
    path = curve_path(out, "brax", args.utd_updates, args.seed)
    write_curve(path, header, rows, False)
    params_path = Path(args.run_root) / f"brax_utd{args.utd_updates}_seed{args.seed}_params.pkl"
    params_path.parent.mkdir(parents=True, exist_ok=True)
    params_path.write_bytes(pickle.dumps(jax.device_get(params)))
    native = native_gym_eval(make_policy, params, args.native_episodes)
    native.update({"params": str(params_path), "twin_final_eval_return": rows[-1][1]})
    (out / f"native_brax_utd{args.utd_updates}_seed{args.seed}.json").write_text(
        json.dumps(native, indent=1)
    )
    write_curve(path, header, rows, True)
    del np


def native_gym_eval(make_policy, params, episodes: int, seed: int = 0) -> dict:
    """The deterministic brax policy in native gymnasium Hopper-v5 (numpy obs, jitted policy)."""
    import gymnasium
    import jax
    import jax.numpy as jnp
    import numpy as np

    policy = make_policy(params, deterministic=True)
    act = jax.jit(lambda obs: policy(obs[None], jax.random.PRNGKey(0))[0][0])
    env = gymnasium.make(ENV_NAME)
    returns, lengths = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, steps, done = 0.0, 0, False
        while not done:
            action = np.asarray(act(jnp.asarray(obs, jnp.float32)), np.float64)
            obs, reward, terminated, truncated, _ = env.step(np.clip(action, -1.0, 1.0))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
    env.close()
    mean = float(np.mean(returns))
    return {
        "env": f"native gymnasium {ENV_NAME}",
        "episodes": episodes,
        "reset_seeds": f"{seed}..{seed + episodes - 1}",
        "return_mean": mean,
        "return_std": float(np.std(returns)),
        "normalized_mean": normalized(mean),
        "length_mean": float(np.mean(lengths)),
        "returns": returns,
    }


# --- plot and summary ------------------------------------------------------------------------


def read_curve(path: Path) -> tuple[dict, list[tuple[int, float]]]:
    header, rows = {}, []
    for line in path.read_text().splitlines():
        if line.startswith("# ") and ": " in line:
            k, v = line[2:].split(": ", 1)
            header[k] = v
        elif line and not line.startswith("#") and not line.startswith("env_steps"):
            s, r, _n, w = line.split("\t")
            rows.append((int(s), float(r), float(w)))
    return header, rows


def bootstrap_ci(values, reps: int = 20000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean over seeds (scipy.stats.bootstrap)."""
    import numpy as np
    from scipy.stats import bootstrap

    values = np.asarray(values, float)
    if len(values) < 2 or np.ptp(values) == 0:
        return float(values.mean()), float(values.mean())
    res = bootstrap(
        (values,),
        np.mean,
        n_resamples=reps,
        confidence_level=0.95,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_diff_ci(a, b, reps: int = 20000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of mean(a) - mean(b), seeds resampled within each group."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    da = rng.choice(a, (reps, len(a))).mean(1) - rng.choice(b, (reps, len(b))).mean(1)
    return float(np.percentile(da, 2.5)), float(np.percentile(da, 97.5))


def native_returns(out: Path, name: str) -> dict[int, float]:
    """Per seed: the final policy's mean return in native Gymnasium Hopper-v5."""
    found = {}
    for path in sorted(out.glob(f"native_{name}_seed*.json")):
        seed = int(path.stem.rsplit("_seed", 1)[1])
        data = json.loads(path.read_text())
        found[seed] = data["native"]["return_mean"] if "native" in data else data["return_mean"]
    return found


def plot(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups: dict[str, list[list[tuple]]] = {}
    for path in sorted(out.glob("*_seed*.tsv")):
        if not is_complete(path):
            continue
        name = path.stem.rsplit("_seed", 1)[0]
        groups.setdefault(name, []).append(read_curve(path)[1])
    if not groups:
        print("no complete curve files")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"wsrl": "tab:blue", "brax": "tab:orange"}
    finals_by_name: dict = {}
    print("trainer\tseeds\tfinal env steps\tfinal returns\tmean [95% bootstrap CI]")
    for name, curves in sorted(groups.items()):
        steps = sorted(set.intersection(*[{s for s, _, _ in c} for c in curves]))
        table = np.array([[dict((s, r) for s, r, _ in c)[s] for s in steps] for c in curves])
        mean = table.mean(0)
        ci = np.array([bootstrap_ci(table[:, j]) for j in range(len(steps))])
        color = colors.get(name.split("_")[0])
        style = "--" if name.endswith("utd16") else "-"
        ax.plot(steps, mean, style, label=f"{name} ({len(curves)} seeds)", color=color)
        for row in table:  # each seed, thin
            ax.plot(steps, row, style, color=color, alpha=0.35, linewidth=0.7)
        if len(curves) > 1:
            ax.fill_between(steps, ci[:, 0], ci[:, 1], alpha=0.2, color=color)
        finals = table[:, -1]
        finals_by_name[name] = finals
        lo, hi = ci[-1]
        print(
            f"{name}\t{len(curves)}\t{steps[-1]}\t{' '.join(f'{f:.0f}' for f in finals)}\t"
            f"{finals.mean():.0f} [{lo:.0f}, {hi:.0f}]"
        )
        auc = table.mean(1)
        lo, hi = bootstrap_ci(auc)
        print(
            "  mean over the eval grid (area under the curve) per seed: "
            f"{' '.join(f'{x:.0f}' for x in auc)}; {auc.mean():.0f} [{lo:.0f}, {hi:.0f}]"
        )
        nat = native_returns(out, name)
        if nat:
            vals = list(nat.values())
            lo, hi = bootstrap_ci(vals)
            per_seed = {k: round(v) for k, v in sorted(nat.items())}
            print(
                f"  native Gymnasium final policy per seed {per_seed}; "
                f"{sum(vals) / len(vals):.0f} [{lo:.0f}, {hi:.0f}]"
            )
    for utd in sorted({n.split("_", 1)[1] for n in finals_by_name}):
        a, b = finals_by_name.get(f"wsrl_{utd}"), finals_by_name.get(f"brax_{utd}")
        if a is not None and b is not None and len(a) > 1 and len(b) > 1:
            lo, hi = bootstrap_diff_ci(a, b)
            print(f"{utd}: final wsrl - brax = {a.mean() - b.mean():.0f} [{lo:.0f}, {hi:.0f}]")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return (16 deterministic episodes, MJX twin)")
    ax.set_title(
        "Hopper-v5 twin, project SAC (wsrl) vs brax SAC\nmean, 95% bootstrap CI, seeds thin"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    print(f"wrote {out / 'curves.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trainer", choices=["wsrl", "brax"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--env-steps",
        type=int,
        default=105_008,
        help="budget incl. the 5008-step prefill; rounded up to 5008 + 10000 k",
    )
    p.add_argument(
        "--utd-updates",
        type=int,
        default=8,
        help="gradient updates per 16-env vector step (8: UTD 0.5, 16: UTD 1)",
    )
    p.add_argument("--native-episodes", type=int, default=10)
    p.add_argument("--out", default="results/sac_reference")
    p.add_argument(
        "--run-root",
        default="/tmp/sac_reference_runs",
        help="the project's run dirs and brax's final params (not results)",
    )
    p.add_argument("--plot", action="store_true", help="only draw curves.png and summarize")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot:
        plot(out)
        return
    if args.trainer is None:
        p.error("--trainer is required unless --plot")
    path = curve_path(out, args.trainer, args.utd_updates, args.seed)
    if is_complete(path):
        print(f"{path} is complete: skipped")
        return
    epochs, total = planned_total(args.env_steps)
    header = {
        "git commit": git_commit(),
        "trainer": args.trainer,
        "seed": args.seed,
        "env": f"{ENV_NAME} MJX twin (envs.make), episode length {EPISODE_LENGTH}",
        "env_steps total": total,
        "prefill/warmup env steps": PREFILL,
        "num_envs": NUM_ENVS,
        "updates per vector step": args.utd_updates,
        "UTD (updates per env step)": args.utd_updates / NUM_ENVS,
        "eval": f"every {EVAL_EVERY} env steps after the prefill, {EVAL_EPISODES} deterministic "
        f"episodes of up to {EPISODE_LENGTH} steps in the twin",
        "host": f"{os.uname().nodename}, CPU, XLA threads pinned by the caller (taskset)",
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    if args.trainer == "wsrl":
        run_wsrl(args, out, header, total)
    else:
        run_brax(args, out, header, total, epochs)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
