"""A fixed-seed tiny run of every phase and method, for before/after comparisons of a refactor.

    python scripts/fixed_seed_run.py OUT.json [--root runs/fixed_seed]

Runs through the command line only (so any version of the code can run it): online SAC,
pre-training (CalQL with the Lagrange multiplier, IQL), fine-tuning with every method of
the registry (`wsrl_mjx.methods.METHODS` of the code under test), and two seeds in one vmapped
program (online SAC, WSRL fine-tuning). It
writes every logged metric except wall-clock rates to OUT.json; two versions behave the same when
their files are equal (`python scripts/fixed_seed_run.py --compare A.json B.json`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.common import TINY as COMMON_TINY  # noqa: E402

TINY = [
    *COMMON_TINY,
    "agent.critic_minibatches=2",
    "offline.steps=100",
    "offline.chunk_length=50",
    "offline.eval_every_steps=50",
    "offline.checkpoint_every_steps=50",
]
TIMING = ("per_s", "seconds", "_time", "wall")  # wall-clock rates, and the "time" stamp


def _is_timing(key: str) -> bool:
    return key == "time" or any(t in key for t in TIMING)


REGISTRY = (
    "import json; from wsrl_mjx.methods import METHODS; "
    "print(json.dumps({name: m.loss for name, m in METHODS.items()}))"
)


def registered_methods() -> dict[str, str]:
    """{method: its online loss} from the registry of the code under test, so a method added
    later is compared too."""
    out = subprocess.run(
        [sys.executable, "-c", REGISTRY], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def _run(command: str, run_dir: Path, *extra: str) -> None:
    args = [sys.executable, "-m", "wsrl_mjx.run", command]
    args += [a for s in [*TINY, f"run.run_dir={run_dir}", *extra] for a in ("--set", s)]
    print(" ".join(args[2:5]), run_dir.name, flush=True)
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def _metrics(run_dir: Path) -> list[dict]:
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows.append({k: v for k, v in row.items() if not _is_timing(k)})
    return rows


def run_all(root: Path) -> dict:
    shutil.rmtree(root, ignore_errors=True)
    out: dict[str, list[dict]] = {}
    _run("online", root / "online")
    out["online"] = _metrics(root / "online")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wsrl_mjx.run",
            "collect",
            *[a for s in TINY for a in ("--set", s)],
            "--set",
            f"collect.out_dir={root}",
            "--set",
            "collect.kinds=[medium]",
            "--set",
            "collect.size=400",
            "--set",
            f"run.run_dir={root / 'collect'}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    data = next(root.glob("*medium*.npz"))
    for algorithm, extra in (("calql", ["offline.cql_lagrange=true"]), ("iql", [])):
        run_dir = root / f"pretrain-{algorithm}"
        _run(
            "pretrain", run_dir, f"offline.algorithm={algorithm}", f"offline.dataset={data}", *extra
        )
        out[f"pretrain-{algorithm}"] = _metrics(run_dir)
    for method, loss in registered_methods().items():
        # IQL's value network comes from an IQL pre-training; every other method restores CalQL.
        pretrained = root / ("pretrain-iql" if loss == "iql" else "pretrain-calql")
        extra = ["offline.cql_lagrange=true"] if loss in ("calql", "cql") else []
        if loss == "iql":
            extra = ["offline.algorithm=iql"]
        run_dir = root / f"finetune-{method}"
        _run(
            "finetune",
            run_dir,
            f"finetune.method={method}",
            f"finetune.checkpoint={pretrained}",
            *extra,
        )
        out[f"finetune-{method}"] = _metrics(run_dir)
    # Seeds in one program (vmapped): online SAC and WSRL fine-tuning, two seeds each.
    _run("online", root / "online-seeds", "run.num_seeds=2")
    _run(
        "finetune",
        root / "finetune-wsrl-seeds",
        "run.num_seeds=2",
        "finetune.method=wsrl",
        f"finetune.checkpoint={root / 'pretrain-calql'}",
        "offline.cql_lagrange=true",
    )
    for name in ("online-seeds", "finetune-wsrl-seeds"):
        for seed in (0, 1):
            out[f"{name}/seed{seed}"] = _metrics(root / name / f"seed{seed}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?")
    parser.add_argument("--root", default="runs/fixed_seed")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        a, b = (
            {
                run: [{k: v for k, v in row.items() if not _is_timing(k)} for row in rows]
                for run, rows in json.loads(Path(p).read_text()).items()
            }
            for p in args.compare
        )
        differing = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        for run in sorted(set(a) | set(b)):
            rows_a, rows_b = a.get(run, []), b.get(run, [])
            keys = sorted(
                {
                    k
                    for x, y in zip(rows_a, rows_b, strict=False)
                    for k in x | y
                    if x.get(k) != y.get(k)
                }
            )
            verdict = (
                "identical" if run not in differing else f"DIFFERS in {', '.join(keys) or 'rows'}"
            )
            print(f"{run}: {verdict} ({len(rows_a)} vs {len(rows_b)} rows)")
        return 1 if differing else 0
    Path(args.out).write_text(json.dumps(run_all(Path(args.root)), indent=1, sort_keys=True))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
