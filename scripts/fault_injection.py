"""Kill (SIGKILL) or stop (SIGTERM) tiny `online`, `pretrain` and `finetune` runs at random
moments, resume them, and compare with an uninterrupted run: is the final state bit-identical, is
any log record lost? And start a second `pipeline --resume` beside a live pipeline: is it
refused, and does the live one finish with what an undisturbed pipeline makes?

    python scripts/fault_injection.py --trials 4 --out runs/fault_injection
    python scripts/fault_injection.py --signal TERM --trials 3 --pipeline-trials 2
    python scripts/fault_injection.py --signal INT --twice --trials 2
    python scripts/fault_injection.py --kinds --trials 0 --extras refusals integrity experiment

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
sys.path.insert(0, str(REPO))
from tests.common import TINY as TEST_TINY  # noqa: E402  (the tests' tiny run, not a copy)

# The tests' tiny PointMass run, with this script's checkpoint cadence and longer budgets.
TINY = [*TEST_TINY, "agent.critic_minibatches=1", "run.keep_checkpoints=2"]
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


def make_dataset(path: Path, seed: int = 0) -> Path:
    """400 PointMass-shaped random transitions in episodes of 20 steps."""
    from wsrl_mjx.datasets import data

    arrays = data.random_transitions(400, 4, 2, episode_length=20, seed=seed)
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
    kind: str,
    index: int,
    root: Path,
    dataset: Path,
    records: int,
    rng: random.Random,
    sig: str,
    twice: bool = False,
) -> dict:
    """Signal once the log holds a random number of records (0 = during start-up), after a
    random extra delay: moments spread over the whole run, checkpoint writes included. `twice`:
    the same signal again 0-0.5 s later, which stops the process at once."""
    run_dir = root / f"{kind}-{sig.lower()}{'-twice' if twice else ''}-trial{index}"
    after, delay = rng.randint(0, records - 1), rng.uniform(0.0, 1.5)
    log = run_dir.parent / f"{run_dir.name}.log"
    proc = start(command(kind, run_dir, dataset, False), log)
    while proc.poll() is None and lines_in(run_dir / "metrics.jsonl") < after:
        time.sleep(0.05)
    time.sleep(delay)
    signalled = proc.poll() is None
    if signalled:
        proc.send_signal(getattr(signal, f"SIG{sig}"))
        if twice:
            time.sleep(rng.uniform(0.0, 0.5))
            if proc.poll() is None:
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


def dir_hash(run_dir: Path) -> dict[str, str]:
    """sha256 of every file under a run dir, run.lock included: what "unchanged" means."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


# Refusals of a command over a finished run: (kind, --resume?, changed settings, what the
# message must name). Each must exit 2, in seconds, and leave every byte of the run dir as it was.
REFUSALS = [
    ("online", False, [], "already holds checkpoints"),
    ("online", True, ["agent.critic_lr=0.5"], "agent.critic_lr"),
    ("online", True, ["agent.num_critics=4"], "agent.num_critics"),
    ("online", True, ["online.warmup_steps=80"], "online.warmup_steps"),
    ("online", True, ["run.seed=3"], "run.seed"),
    ("online", True, ["env.reward_scale=2.0"], "env.reward_scale"),
    ("online", True, ["online.buffer_capacity=2000"], "online.buffer_capacity"),
    ("online", True, ["online.chunk_length=20"], "online.chunk_length"),
    ("pretrain", False, [], "already holds checkpoints"),
    ("pretrain", True, ["agent.critic_lr=0.5"], "agent.critic_lr"),
    ("pretrain", True, ["offline.holdout_fraction=0.2"], "offline.holdout_fraction"),
    ("pretrain", True, ["offline.algorithm=cql"], "offline.algorithm"),
    ("pretrain", True, ["other-dataset"], "pre-trained on other data"),
    ("finetune", False, [], "already holds checkpoints"),
    ("finetune", True, ["finetune.method=calql"], "finetune.method"),
    ("finetune", True, ["finetune.offline_ratio=0.5"], "finetune.offline_ratio"),
]


def refusal_trials(root: Path, dataset: Path) -> tuple[list[str], list[str]]:
    other = make_dataset(root / "other-dataset.npz", seed=1)
    rows, details = [], []
    for kind in ("online", "pretrain", "finetune"):
        reference = root / f"{kind}-reference"
        if not steps_on_disk(reference):
            run_to_end(kind, reference, dataset)
    for kind, resume, changes, named in REFUSALS:
        run_dir = root / f"{kind}-reference"
        argv = command(kind, run_dir, dataset, resume)
        for change in changes:
            argv += ["--set", f"offline.dataset={other}" if change == "other-dataset" else change]
        before, t = dir_hash(run_dir), time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        seconds, same = time.perf_counter() - t, dir_hash(run_dir) == before
        ok = proc.returncode == 2 and named in proc.stderr and "Traceback" not in proc.stderr
        what = " ".join(changes) or "(no change)"
        rows.append((ok and same, seconds))
        details.append(
            f"- `{kind}{' --resume' if resume else ''}` {what}: exit {proc.returncode}, "
            f"names {named!r}: {named in proc.stderr}, {seconds:.1f} s, run dir byte-identical "
            f"(run.lock included): {same}"
        )
        print(details[-1], flush=True)
    passed = sum(ok for ok, _ in rows)
    slowest = max(t for _, t in rows)
    row = (
        f"| refused commands over a finished run | {len(rows)} | {passed} refused, dir "
        f"unchanged (slowest {slowest:.0f} s) | - | 0 | 0 |"
    )
    return [row], details


def edit_newest_meta(run_dir: Path, drop: str) -> None:
    """Edit the newest step's env_steps (+8) and drop `drop` of its integrity record."""
    step = steps_on_disk(run_dir)[-1]
    path = run_dir / "checkpoints" / str(step) / "meta" / "metadata"
    meta = json.loads(path.read_text())
    meta["env_steps"] += 8
    if drop == "metadata digest":
        meta["integrity"].pop("__metadata__")
    elif drop == "whole record":
        meta.pop("integrity")
    path.write_text(json.dumps(meta))


def integrity_trials(root: Path, dataset: Path) -> tuple[list[str], list[str]]:
    """An online run's newest checkpoint metadata edited (env_steps), with its integrity keys
    kept, without the metadata digest, without the whole record: `--resume` must fall back to
    the older step and end bit-identical to the reference run; with every step edited it must
    be refused naming the flag, and with the flag it resumes with a note."""
    reference = root / "online-reference"
    if not steps_on_disk(reference):
        run_to_end("online", reference, dataset)
    want, want_keys = final_digests(reference), record_keys(reference)
    details, good = [], 0
    cases = ["nothing", "metadata digest", "whole record"]
    for drop in cases:
        run_dir = root / f"online-edited-{drop.replace(' ', '-')}"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(reference, run_dir)
        edit_newest_meta(run_dir, drop)
        proc = subprocess.run(
            command("online", run_dir, dataset, True), cwd=REPO, capture_output=True, text=True
        )
        fell_back = "restored the older checkpoint" in proc.stderr
        same = proc.returncode == 0 and final_digests(run_dir) == want
        got = record_keys(run_dir)
        lost, extra = sum((want_keys - got).values()), sum((got - want_keys).values())
        good += fell_back and same and not lost and not extra
        details.append(
            f"- online, newest step's env_steps edited, integrity record: {drop} removed -> "
            f"exit {proc.returncode}, fell back to the older step: {fell_back}, bit-identical: "
            f"{same}, records lost: {lost}, duplicated: {extra}"
        )
        print(details[-1], flush=True)
    # Every step without its record: refused (dir unchanged), then restored with the flag.
    run_dir = root / "online-edited-every-step"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(reference, run_dir)
    for step in steps_on_disk(run_dir):
        path = run_dir / "checkpoints" / str(step) / "meta" / "metadata"
        meta = json.loads(path.read_text())
        meta.pop("integrity")
        path.write_text(json.dumps(meta))
    before = dir_hash(run_dir)
    refused = subprocess.run(
        command("online", run_dir, dataset, True), cwd=REPO, capture_output=True, text=True
    )
    named = "run.allow_unverified_checkpoints=true" in refused.stderr
    unchanged = dir_hash(run_dir) == before
    allowed = subprocess.run(
        [*command("online", run_dir, dataset, True)]
        + ["--set", "run.allow_unverified_checkpoints=true"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    noted = "restored unverified" in allowed.stderr
    good += refused.returncode == 2 and named and unchanged and allowed.returncode == 0 and noted
    details.append(
        f"- online, every step's integrity record removed -> exit {refused.returncode}, names "
        f"the flag: {named}, run dir byte-identical: {unchanged}; with "
        f"run.allow_unverified_checkpoints=true: exit {allowed.returncode}, noted: {noted}"
    )
    print(details[-1], flush=True)
    row = (
        f"| edited checkpoint metadata, integrity keys kept / removed | {len(cases) + 1} | "
        f"{good} handled as damaged | {good} | 0 | 0 |"
    )
    return [row], details


EXPERIMENT = """
title: fault injection
seeds: [0]
base: {}
methods:
  wsrl: {}
  sac: {finetune: {method: sac}}
"""


def experiment_command(spec: Path, run_dir: Path, dataset: Path) -> list[str]:
    argv = [sys.executable, "-m", "wsrl_mjx.run", "experiment", "--config", str(spec)]
    argv += ["--dataset", str(dataset), "--workers", "2"]
    for s in [*TINY, *ONLINE, *PRETRAIN, f"run.run_dir={run_dir}"]:
        argv += ["--set", s]
    return argv


def experiment_runs(run_dir: Path) -> dict:
    return {
        str(p.parent.relative_to(run_dir)): final_digests(p.parent, run_dir)
        for p in sorted(run_dir.rglob("checkpoints"))
    }


def experiment_trial(root: Path, dataset: Path, rng: random.Random) -> tuple[list[str], list[str]]:
    """`experiment --workers 2` with one worker killed (SIGKILL, as the OOM killer would) while
    it fine-tunes: the matrix must report that run as failed, naming why (exit 1); a re-run must
    finish it and every run must end bit-identical to an undisturbed matrix."""
    spec = root / "experiment.yaml"
    spec.write_text(EXPERIMENT)
    reference = root / "experiment-reference"
    ref = subprocess.run(
        experiment_command(spec, reference, dataset), cwd=REPO, capture_output=True
    )
    if ref.returncode != 0:
        raise RuntimeError(f"the reference experiment exited {ref.returncode}")
    want = experiment_runs(reference)
    run_dir = root / "experiment-trial"
    proc = start(experiment_command(spec, run_dir, dataset), root / "experiment-trial.log")
    victim, deadline = None, time.time() + 600
    while proc.poll() is None and victim is None and time.time() < deadline:
        for lock in run_dir.glob("*/seed*/run.lock"):
            metrics = lock.parent / "metrics.jsonl"
            if "pretrain" not in str(lock) and lines_in(metrics) >= rng.randint(1, 10):
                victim = (json.loads(lock.read_text() or "{}").get("pid"), lock.parent)
        time.sleep(0.05)
    if victim and victim[0]:
        os.kill(victim[0], signal.SIGKILL)
    proc.wait()
    log = (root / "experiment-trial.log").read_text()
    named = "died" in log and str(victim[1].relative_to(run_dir)) in log if victim else False
    again = subprocess.run(
        experiment_command(spec, run_dir, dataset), cwd=REPO, capture_output=True
    )
    same = again.returncode == 0 and experiment_runs(run_dir) == want
    detail = (
        f"- experiment --workers 2: killed the worker of {victim[1].relative_to(run_dir)} "
        f"(pid {victim[0]}) -> exit {proc.returncode}, failure named: {named}; re-run exit "
        f"{again.returncode}, every run bit-identical to the undisturbed matrix: {same}"
        if victim
        else "- experiment --workers 2: no fine-tuning worker was found to kill"
    )
    print(detail, flush=True)
    ok = int(bool(victim) and proc.returncode == 1 and named and same)
    return [f"| experiment --workers 2, a worker killed | 1 | {ok} | {ok} | 0 | 0 |"], [detail]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="trials per kind")
    parser.add_argument(
        "--kinds", nargs="*", default=["online", "pretrain", "finetune"], help="in this order"
    )
    parser.add_argument(
        "--signal", choices=["KILL", "TERM", "INT"], default="KILL", help="what each trial sends"
    )
    parser.add_argument(
        "--twice", action="store_true", help="send the signal a second time 0-0.5 s later"
    )
    parser.add_argument(
        "--extras",
        nargs="*",
        default=[],
        choices=["refusals", "integrity", "experiment"],
        help="also: refused commands over finished runs (run dir byte-identical), edited "
        "checkpoint metadata with and without its integrity keys, a killed experiment worker",
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
    expected_exit = {
        "KILL": {-signal.SIGKILL},
        "TERM": {128 + signal.SIGTERM} | ({-signal.SIGTERM} if args.twice else set()),
        "INT": {128 + signal.SIGINT} | ({1, -signal.SIGINT} if args.twice else set()),
    }[args.signal]
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
            result = trial(kind, index, root, dataset, records, rng, args.signal, args.twice)
            got_keys = record_keys(result["run_dir"])
            same = final_digests(result["run_dir"]) == want
            missing = sum((want_keys - got_keys).values())
            extra = sum((got_keys - want_keys).values())
            identical, lost, duplicated = identical + same, lost + missing, duplicated + extra
            killed += result["killed"]
            clean = result["exit"] in expected_exit | {0}
            details.append(
                f"- {kind}: SIG{args.signal}{' twice' if args.twice else ''} {result['kill']} "
                f"(sent: {result['killed']}; exit "
                f"{result['exit']}{'' if clean else ' UNEXPECTED'}"
                + (
                    f", said how to resume: {result['told_how_to_resume']}"
                    if result["exit"] in (128 + signal.SIGTERM, 128 + signal.SIGINT)
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
    extras = {"refusals": refusal_trials, "integrity": integrity_trials}
    for extra in args.extras:
        rows, more = (
            experiment_trial(root, dataset, rng)
            if extra == "experiment"
            else extras[extra](root, dataset)
        )
        lines += rows
        details += more
    report = "\n".join([*lines, "", *details])
    print("\n" + report)
    (root / "report.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
