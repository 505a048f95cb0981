"""`gates`: is a locomotion test bed worth a fine-tuning run? Checked before any is spent.

A test bed can only show an offline-to-online effect when its datasets sit at the levels the
experiment assumes and when no trivial controller reaches them. Each gate below is stated in
advance (the constants) and reads only files: the datasets `collect` wrote and, once they
exist, the pre-training runs' logs. The command exits 1 when a gate fails.

1. Behaviour levels over many episodes: `medium` and `expert` each hold >= EPISODES complete
   episodes (one evaluation of 16 is not a level); their mean normalized return with a 95%
   bootstrap CI, and their forward speed (from the rewards: forward = reward - healthy bonus +
   control cost).
2. Trivial references fail: uniform random (the `random` dataset's episodes), zero action, the
   best of a set of constant actions (EPISODES twin episodes each) and standing still (the
   healthy bonus on every step of a full episode at zero speed: 31.3 on Hopper-v5) all score at
   least MARGIN below `medium`'s lower CI bound.
3. `medium` leaves room both ways: at least MARGIN above standing, at least MARGIN below
   `expert`, and moving forward at >= MIN_SPEED m/s.
4. Pre-training (with --pretrain): every seed's final evaluation at least MARGIN above
   standing, at least MARGIN below `expert`, moving forward at >= MIN_SPEED m/s.

A dataset that is not at hand (the expert needs a 1M-step behaviour run) may take its level from
an earlier gate record of the same task (`--levels-from`); the record says so, and where from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wsrl_mjx.datasets import scores
from wsrl_mjx.studies.verdicts import paired_bootstrap

EPISODES = 100  # episodes behind every level
MARGIN = 10.0  # normalized points between a level and what it must beat
MIN_SPEED = 0.2  # m/s of forward progress: a policy that only balances does not pass
NUM_RANDOM_CONSTANTS = 16
KINDS = ("random", "medium", "expert")


@dataclass(frozen=True)
class Level:
    """A policy's score: mean normalized return over `episodes`, its 95% CI, forward speed."""

    name: str
    episodes: int
    normalized: float
    low: float
    high: float
    speed: float


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str


def level(name: str, env_name: str, returns: np.ndarray, speeds: np.ndarray) -> Level:
    normalized = np.array([scores.normalized_score(env_name, r) for r in returns])
    mean, low, high = paired_bootstrap(normalized, reps=2000)  # the project's one bootstrap
    speed = float(speeds.mean()) if len(speeds) else math.nan
    return Level(name, len(returns), mean, low, high, speed)


def dataset_episodes(arrays: dict, env_config: dict, scale_action, episode_length: int):
    """(returns, forward speeds) of the complete episodes of a dataset: each ends on a
    termination or on the time limit after `episode_length` steps; a stream's cut-off tail
    (flagged a timeout by `collect`) is not an episode."""
    healthy = float(env_config.get("healthy_reward", 0.0))
    ctrl = float(env_config.get("ctrl_cost_weight", 0.0))
    weight = float(env_config.get("forward_reward_weight", 1.0))
    rewards = np.asarray(arrays["rewards"], np.float64)
    terminals = np.asarray(arrays["terminals"], bool)
    cost = ctrl * np.square(np.asarray(scale_action(arrays["actions"]), np.float64)).sum(-1)
    forward = (rewards - healthy * ~terminals + cost) / weight
    ends = np.flatnonzero(terminals | np.asarray(arrays["timeouts"], bool))
    returns, speeds, start = [], [], 0
    for end in ends:
        length = end + 1 - start
        if terminals[end] or length == episode_length:
            returns.append(rewards[start : end + 1].sum())
            speeds.append(forward[start : end + 1].mean())
        start = end + 1
    return np.array(returns), np.array(speeds)


def constant_actions(action_size: int, seed: int) -> dict[str, np.ndarray]:
    """Zero, all +1, all -1, each joint alone at +-1 and random constant vectors."""
    rng = np.random.default_rng(seed)
    actions = {"zero": np.zeros(action_size), "all +1": np.ones(action_size)}
    actions["all -1"] = -np.ones(action_size)
    for j in range(action_size):
        for sign in (1, -1):
            actions[f"joint {j} at {sign:+d}"] = sign * np.eye(action_size)[j]
    for i in range(NUM_RANDOM_CONSTANTS):
        actions[f"uniform #{i}"] = rng.uniform(-1.0, 1.0, action_size)
    return {k: v.astype(np.float32) for k, v in actions.items()}


class ConstantPolicy:
    """The evaluator's agent interface, acting with one fixed action."""

    def act(self, action, obs, rng, deterministic=True):
        import jax.numpy as jnp

        return jnp.broadcast_to(action, (*obs.shape[:-1], action.shape[-1]))


def trivial_levels(env, seed: int) -> tuple[Level, Level, str]:
    """Zero action and the best constant action, EPISODES twin episodes each."""
    import jax

    from wsrl_mjx.core.evaluate import make_evaluator

    evaluate = make_evaluator(env, ConstantPolicy(), EPISODES, per_episode=True)
    found = {}
    for name, action in constant_actions(env.action_size, seed).items():
        out = jax.device_get(evaluate(jax.numpy.asarray(action), jax.random.PRNGKey(seed)))
        found[name] = level(f"constant {name}", env.name, out["return"], out["forward_speed"])
    best = max(found, key=lambda k: found[k].normalized)
    note = f"{best} ({found[best].normalized:.1f}; best of {len(found)} constant actions)"
    return found["zero"], found[best], note


def standing_level(env_name: str, env_config: dict, episode_length: int) -> Level:
    """The healthy bonus on every step of a full episode at zero speed (no control cost)."""
    value = scores.normalized_score(
        env_name, float(env_config.get("healthy_reward", 0.0)) * episode_length
    )
    return Level("standing still", episode_length, value, value, value, 0.0)


def pretrain_levels(run_dirs: list[Path], env_name: str) -> list[Level]:
    """Each pre-training run's final evaluation, read from its log."""
    from wsrl_mjx.runtime.logger import read_metrics

    levels = []
    for run_dir in run_dirs:
        evals = [r for r in read_metrics(run_dir) if r["phase"] == "eval"]
        if not evals:
            levels.append(Level(f"pretrain {run_dir}", 0, math.nan, math.nan, math.nan, math.nan))
            continue
        last = evals[-1]
        value = scores.normalized_score(env_name, last["eval_return"])
        speed = last.get("eval_forward_speed", math.nan)
        levels.append(Level(f"pretrain {run_dir}", 0, value, value, value, speed))
    return levels


def judge(levels: dict[str, Level], trivial: list[Level], pretrain: list[Level]) -> list[Gate]:
    medium, expert, standing = levels["medium"], levels["expert"], levels["standing still"]
    gates = [
        Gate(
            f"{kind} holds over >= {EPISODES} episodes",
            levels[kind].episodes >= EPISODES,
            f"{levels[kind].episodes} complete episodes",
        )
        for kind in KINDS
    ]
    for ref in trivial:
        gates.append(
            Gate(
                f"{ref.name} fails (>= {MARGIN:g} below medium's lower bound)",
                ref.normalized + MARGIN <= medium.low,
                f"{ref.normalized:.1f} vs medium {medium.low:.1f}",
            )
        )
    for ref in (medium, *pretrain):
        gates += [
            Gate(
                f"{ref.name}: >= {MARGIN:g} above standing",
                ref.low >= standing.normalized + MARGIN,
                f"{ref.low:.1f} vs standing {standing.normalized:.1f}",
            ),
            Gate(
                f"{ref.name}: >= {MARGIN:g} below expert",
                ref.high + MARGIN <= expert.low,
                f"{ref.high:.1f} vs expert {expert.low:.1f}",
            ),
            Gate(
                f"{ref.name}: moves forward at >= {MIN_SPEED:g} m/s",
                ref.speed >= MIN_SPEED,
                f"{ref.speed:.2f} m/s",
            ),
        ]
    return gates


def recorded_levels(path: Path, env_name: str) -> dict[str, tuple[Level, dict]]:
    """{kind: (its level, provenance)} from an earlier gate record of `env_name`."""
    from wsrl_mjx.runtime.errors import DatasetError

    try:
        record = json.loads(Path(path).read_text())
        levels = {k: Level(**record["levels"][k]) for k in KINDS if k in record["levels"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"--levels-from {path}: not a gate record ({e})") from e
    if record.get("env") != env_name:
        raise DatasetError(f"--levels-from {path}: a record of {record.get('env')}, not {env_name}")
    datasets = record.get("datasets", {})
    return {k: (v, {"recorded_in": str(path), **datasets.get(k, {})}) for k, v in levels.items()}


def run_gates(
    env_name: str,
    data_dir: Path,
    pretrain: list[Path],
    out: Path,
    seed: int = 0,
    recorded: dict[str, tuple[Level, dict]] | None = None,
) -> bool:
    """Every gate of one task; writes `out`.json and `out`.md; True when all pass. A kind whose
    dataset is not in `data_dir` takes its level from `recorded` (`recorded_levels`)."""
    from wsrl_mjx.config import EnvConfig
    from wsrl_mjx.core.environment import make_env
    from wsrl_mjx.datasets import readers

    env = make_env(EnvConfig(name=env_name))
    levels, provenance = {}, {}
    for kind in KINDS:
        path = data_dir / f"{env_name}-{kind}.npz"
        if not path.is_file() and kind in (recorded or {}):
            levels[kind], provenance[kind] = recorded[kind]
            continue
        dataset = readers.load_any(path)
        returns, speeds = dataset_episodes(
            dataset.arrays, env.config, env.scale_action, env.episode_length
        )
        levels[kind] = level(kind, env_name, returns, speeds)
        provenance[kind] = dataset.metadata
    levels["standing still"] = standing_level(env_name, env.config, env.episode_length)
    zero, best, best_note = trivial_levels(env, seed)
    trivial = [levels["random"], zero, best, levels["standing still"]]
    gates = judge(levels, trivial, pretrain_levels(pretrain, env_name))
    record = {
        "env": env_name,
        "constants": {"EPISODES": EPISODES, "MARGIN": MARGIN, "MIN_SPEED": MIN_SPEED},
        "levels": {k: asdict(v) for k, v in levels.items()},
        "trivial": [asdict(t) for t in trivial],
        "best_constant": best_note,
        "gates": [asdict(g) for g in gates],
        "datasets": provenance,
        "passed": all(g.passed for g in gates),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    return record["passed"]


def markdown(record: dict) -> str:
    lines = [
        f"# Test-bed gates: {record['env']}",
        "",
        f"Result: **{'every gate passed' if record['passed'] else 'a gate FAILED'}**. "
        f"Constants stated in advance: {record['constants']}.",
        "",
        "| policy | episodes | normalized [95% CI] | forward speed (m/s) |",
        "|---|---|---|---|",
    ]
    rows = {**record["levels"], **{t["name"]: t for t in record["trivial"]}}
    for row in rows.values():
        lines.append(
            f"| {row['name']} | {row['episodes']} | {row['normalized']:.1f} "
            f"[{row['low']:.1f}, {row['high']:.1f}] | {row['speed']:.2f} |"
        )
    lines += ["", f"Best constant action: {record['best_constant']}"]
    lines += [
        f"{kind}: its level as recorded in `{p['recorded_in']}` (its dataset is not at hand)"
        for kind, p in record["datasets"].items()
        if isinstance(p, dict) and "recorded_in" in p
    ]
    lines += ["", "| gate | | detail |"]
    lines.append("|---|---|---|")
    for g in record["gates"]:
        lines.append(f"| {g['name']} | {'pass' if g['passed'] else 'FAIL'} | {g['detail']} |")
    return "\n".join(lines) + "\n"
