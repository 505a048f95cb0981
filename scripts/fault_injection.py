"""Kill (SIGKILL) or stop (SIGTERM) tiny `online`, `pretrain` and `finetune` runs at random
moments, resume them, and compare with an uninterrupted run: is the final state bit-identical, is
any log record lost? And start a second `pipeline --resume` beside a live pipeline: is it
refused, and does the live one finish with what an undisturbed pipeline makes?

    python scripts/fault_injection.py --trials 4 --out runs/fault_injection
    python scripts/fault_injection.py --signal TERM --trials 3 --pipeline-trials 2

Each trial starts a run through the command line, sends the signal once its log holds a random
number of records (plus a random delay of up to 1.5 s), then runs `--resume` (or starts afresh
when no checkpoint was written yet) until it exits 0. SIGTERM must end the run with exit 143
after writing a checkpoint and saying how to resume (or exit 0 if it had finished). Bit-identity
is checked on the sha256 of every saved array (the checksums each checkpoint records); records
are compared by (phase, step).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "env.name=PointMass",
    "env.episode_length=20",
    "agent.actor_hidden=[16,16]",
    "agent.critic_hidden=[16,16]",
    "agent.num_critics=2",
    "agent.batch_size=16",
    "agent.critic_minibatches=1",
    "eval.num_episodes=2",
    "eval.every_env_steps=100",
    "run.progress=false",
    "run.tensorboard=false",
    "run.keep_checkpoints=2",
]
ONLINE = [
    "online.num_envs=4",
    "online.warmup_steps=40",
    "online.chunk_length=10",
    "online.buffer_capacity=1000",
    "online.total_env_steps=400",
    "run.checkpoint_every_env_steps=80",
]
COLLECT = [
    "collect.kinds=[medium]",
    "collect.size=400",
    "collect.num_envs=4",
    "collect.behaviour_env_steps=400",
]
PRETRAIN = [
    "offline.steps=300",
    "offline.chunk_length=25",
    "offline.checkpoint_every_steps=50",
    "offline.eval_every_steps=100",
    "offline.holdout_fraction=0.1",
]


def make_dataset(path: Path) -> Path:
    """400 PointMass-shaped random transitions in episodes of 20 steps."""
    sys.path.insert(0, str(REPO))
    from wsrl_mjx import data

    arrays = data.random_transitions(400, 4, 2, episode_length=20)
    return data.save_dataset(path, arrays, {"env": "PointMass"})


def command(kind: str, run_dir: Path, dataset: Path, resume: bool) -> list[str]:
    sets = [*TINY, *(PRETRAIN if kind == "pretrain" else ONLINE), f"run.run_dir={run_dir}"]
    if kind == "pipeline":  # collect -> pretrain -> finetune, all tiny
        sets = [*TINY, *ONLINE, *COLLECT, *PRETRAIN, f"run.run_dir={run_dir}"]
    if kind == "pretrain":
        sets.append(f"offline.dataset={dataset}")
    if kind == "finetune":  # WSRL from the finished pre-training reference run
        sets.append(f"finetune.checkpoint={pretrained(run_dir.parent)}")
    argv = [sys.executable, "-m", "wsrl_mjx.run", kind]
    for s in sets:
        argv += ["--set", s]
    return [*argv, "--resume"] if resume else argv


def pretrained(root: Path) -> Path:
    return root / "pretrain-reference"


def start(argv: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = open(log, "a")  # noqa: SIM115
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def run_to_end(kind: str, run_dir: Path, dataset: Path) -> float:
    t = time.perf_counter()
    resume = bool(steps_on_disk(run_dir))
    proc = start(command(kind, run_dir, dataset, resume), run_dir.parent / f"{run_dir.name}.log")
    if proc.wait() != 0:
        raise RuntimeError(f"{kind} in {run_dir} exited {proc.returncode}: see its .log")
    return time.perf_counter() - t


def steps_on_disk(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return (
        sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit()) if folder.is_dir() else []
    )


def final_digests(run_dir: Path, home: Path | None = None) -> dict:
    """The newest step's array checksums and its metadata (rng, counters, config) with the
    run's own folder (`home`, default the run dir) written as <run>: two runs in two folders
    compare equal when they computed the same thing."""
    steps = steps_on_disk(run_dir)
    text = (run_dir / "checkpoints" / str(steps[-1]) / "meta" / "metadata").read_text()
    meta = json.loads(text.replace(str(home or run_dir), "<run>"))
    arrays = {k: v for k, v in meta.pop("integrity").items() if k != "__metadata__"}
    return {"step": steps[-1], "arrays": arrays, "meta": meta}


def record_keys(run_dir: Path) -> Counter:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return Counter((r["phase"], r["env_steps"]) for r in map(json.loads, lines))


def lines_in(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def trial(
    kind: str, index: int, root: Path, dataset: Path, records: int, rng: random.Random, sig: str
) -> dict:
    """Signal once the log holds a random number of records (0 = during start-up), after a
    random extra delay: moments spread over the whole run, checkpoint writes included."""
    run_dir = root / f"{kind}-{sig.lower()}-trial{index}"
    after, delay = rng.randint(0, records - 1), rng.uniform(0.0, 1.5)
    log = run_dir.parent / f"{run_dir.name}.log"
    proc = start(command(kind, run_dir, dataset, False), log)
    while proc.poll() is None and lines_in(run_dir / "metrics.jsonl") < after:
        time.sleep(0.05)
    time.sleep(delay)
    signalled = proc.poll() is None
    if signalled:
        proc.send_signal(getattr(signal, f"SIG{sig}"))
    proc.wait()
    ckpts = steps_on_disk(run_dir)
    partial = sorted(p.name for p in (run_dir / "checkpoints").glob("*tmp*"))
    logged = lines_in(run_dir / "metrics.jsonl")
    told = "--resume" in log.read_text().split("[stop]")[-1] if signalled else False
    if signalled or proc.returncode != 0:
        run_to_end(kind, run_dir, dataset)
    return {
        "run_dir": run_dir,
        "kill": f"after record {logged} of {records} (+{delay:.1f} s)",
        "killed": signalled,
        "exit": proc.returncode,
        "told_how_to_resume": told,
        "checkpoints_at_kill": ckpts + partial,
    }


def pipeline_trial(index: int, root: Path, records: int, rng: random.Random) -> dict:
    """A second `pipeline --resume` started at a random moment of a live pipeline."""
    run_dir = root / f"pipeline-trial{index}"
    after = rng.randint(0, records - 1)
    first = start(command("pipeline", run_dir, Path(), False), root / f"{run_dir.name}.log")
    while first.poll() is None and sum(map(lines_in, run_dir.glob("*/metrics.jsonl"))) < after:
        time.sleep(0.05)
    alive = first.poll() is None
    second_log = root / f"{run_dir.name}-second.log"
    second = start(command("pipeline", run_dir, Path(), True), second_log)
    second.wait()
    first.wait()
    return {
        "run_dir": run_dir,
        "when": f"after record {after} of {records} (the first still running: {alive})",
        "second_exit": second.returncode,
        "second_refused": "in use by pid" in second_log.read_text(),
        "first_exit": first.returncode,
        "moved_aside": sorted(p.name for p in run_dir.glob("*unfinished*")),
    }


def pipeline_state(run_dir: Path) -> dict:
    """What a pipeline makes: its dataset's bytes and each phase's final checkpoint."""
    datasets = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_dir.glob("data/*")}
    phases = {n: final_digests(run_dir / n, run_dir) for n in ("pretrain", "finetune")}
    return {"datasets": datasets, **phases}


def pipeline_records(run_dir: Path) -> Counter:
    return sum((record_keys(run_dir / n) for n in ("pretrain", "finetune")), Counter())


def run_pipelines(root: Path, trials: int, rng: random.Random) -> tuple[str, list[str]]:
    reference = root / "pipeline-reference"
    run_to_end("pipeline", reference, Path())
    want, want_keys = pipeline_state(reference), pipeline_records(reference)
    records = sum(want_keys.values()) + lines_in(reference / "behaviour" / "metrics.jsonl")
    refused = identical = finished = lost = duplicated = 0
    details = []
    for index in range(trials):
        result = pipeline_trial(index, root, records, rng)
        same = result["first_exit"] == 0 and pipeline_state(result["run_dir"]) == want
        got_keys = pipeline_records(result["run_dir"]) if result["first_exit"] == 0 else Counter()
        missing, extra = sum((want_keys - got_keys).values()), sum((got_keys - want_keys).values())
        refused += result["second_refused"] and result["second_exit"] == 2
        finished += result["first_exit"] == 0
        identical, lost, duplicated = identical + same, lost + missing, duplicated + extra
        details.append(
            f"- pipeline: second `pipeline --resume` {result['when']}: exit "
            f"{result['second_exit']} (refused naming the holder: {result['second_refused']}); "
            f"the first exited {result['first_exit']}, moved aside: {result['moved_aside']} -> "
            f"datasets and checkpoints bit-identical: {same}, records lost: {missing}, "
            f"duplicated: {extra}"
        )
        print(details[-1], flush=True)
    row = (
        f"| pipeline + concurrent `--resume` | {trials} | {refused} refused | {identical} | "
        f"{lost} | {duplicated} |"
    )
    return row, details


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="trials per kind")
    parser.add_argument(
        "--kinds", nargs="*", default=["online", "pretrain", "finetune"], help="in this order"
    )
    parser.add_argument(
        "--signal", choices=["KILL", "TERM"], default="KILL", help="what each trial sends"
    )
    parser.add_argument(
        "--pipeline-trials", type=int, default=0, help="concurrent `pipeline --resume` trials"
    )
    parser.add_argument("--out", default="runs/fault_injection")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = Path(args.out).absolute()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    dataset = make_dataset(root / "dataset.npz")
    rng = random.Random(args.seed)
    expected_exit = {"KILL": -signal.SIGKILL, "TERM": 128 + signal.SIGTERM}[args.signal]
    lines = [
        f"| kind | trials | SIG{args.signal} sent | bit-identical | records lost "
        "| records duplicated |",
        "|---|---|---|---|---|---|",
    ]
    details = []
    if "finetune" in args.kinds and "pretrain" not in args.kinds:
        run_to_end("pretrain", pretrained(root), dataset)  # what finetune restores
    for kind in args.kinds:
        reference = root / f"{kind}-reference"
        run_to_end(kind, reference, dataset)
        want, want_keys = final_digests(reference), record_keys(reference)
        records = sum(want_keys.values())
        identical = lost = duplicated = killed = 0
        for index in range(args.trials):
            result = trial(kind, index, root, dataset, records, rng, args.signal)
            got_keys = record_keys(result["run_dir"])
            same = final_digests(result["run_dir"]) == want
            missing = sum((want_keys - got_keys).values())
            extra = sum((got_keys - want_keys).values())
            identical, lost, duplicated = identical + same, lost + missing, duplicated + extra
            killed += result["killed"]
            clean = result["exit"] in (expected_exit, 0)
            details.append(
                f"- {kind}: SIG{args.signal} {result['kill']} (sent: {result['killed']}; exit "
                f"{result['exit']}{'' if clean else ' UNEXPECTED'}"
                + (
                    f", said how to resume: {result['told_how_to_resume']}"
                    if result["exit"] == 128 + signal.SIGTERM
                    else ""
                )
                + f"; checkpoints on disk then: {result['checkpoints_at_kill']}) -> "
                f"bit-identical: {same}, records lost: {missing}, duplicated: {extra}"
            )
            print(details[-1], flush=True)
        lines.append(f"| {kind} | {args.trials} | {killed} | {identical} | {lost} | {duplicated} |")
    if args.pipeline_trials:
        row, more = run_pipelines(root, args.pipeline_trials, rng)
        lines.append(row)
        details += more
    report = "\n".join([*lines, "", *details])
    print("\n" + report)
    (root / "report.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
