"""The locomotion datasets' provenance: what made each file, its checksum, and the behaviour
SAC's evaluation curve (the medium snapshot is picked from it).

    python results/locomotion_wsrl/provenance.py --data data/locomotion \
        --behaviour runs/locomotion/behaviour --commit <commit the datasets were made at>

Writes results/locomotion_wsrl/datasets.md and behaviour/<task>.tsv.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from wsrl_mjx.datasets import readers, scores
from wsrl_mjx.runtime.logger import read_metrics

HERE = Path(__file__).parent
KINDS = ("random", "medium", "medium-replay", "expert")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def behaviour_curve(run_dir: Path, env_name: str, out: Path) -> list[tuple[int, float]]:
    evals = [
        (r["env_steps"], r["eval_return"]) for r in read_metrics(run_dir) if r["phase"] == "eval"
    ]
    lines = ["env_steps\teval_return\tnormalized"]
    lines += [f"{s}\t{r:.2f}\t{scores.normalized_score(env_name, r):.2f}" for s, r in evals]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return evals


def _cell(env_name: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} ({scores.normalized_score(env_name, value):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/locomotion"))
    parser.add_argument("--behaviour", type=Path, default=Path("runs/locomotion/behaviour"))
    parser.add_argument("--commit", required=True)
    parser.add_argument("--env", action="append", required=True)
    args = parser.parse_args()
    lines = [
        "# The locomotion datasets: provenance",
        "",
        f"Made at commit `{args.commit}` by `bash results/locomotion_wsrl/make_datasets.sh "
        f"{' '.join(args.env)}` (behaviour SAC: `configs/locomotion/behaviour.yaml`; 16 envs, "
        "2 critics of 256x256, UTD 0.5, 300k env steps, an evaluation of 16 deterministic "
        "episodes every 10k steps). `medium` rolls out (stochastic actions, 50 envs) the "
        "snapshot whose evaluation is nearest one third of D4RL's normalized range; "
        "`medium-replay` is the behaviour run's replay buffer up to that snapshot; `expert` "
        "rolls out the final actor; `random` takes uniform actions. Normalized with D4RL's "
        "reference returns (`wsrl_mjx/datasets/scores.py`). The files are not committed "
        "(63 MB per task): "
        "the command above makes them again; the checksums say whether a copy is the same. "
        "`expert` is the behaviour run's final actor, not its best, and is not what scores are "
        "normalized by (D4RL's expert reference is).",
        "",
    ]
    for env_name in args.env:
        lines += [
            f"## {env_name}",
            "",
            "| dataset | transitions | snapshot (env steps) | snapshot eval return (normalized) "
            "| mean episode return of the data (normalized) | sha256 |",
            "|---|---|---|---|---|---|",
        ]
        for kind in KINDS:
            path = args.data / f"{env_name}-{kind}.npz"
            meta = readers.load_any(path).metadata
            snap = meta.get("snapshot_env_steps", "")
            ev = meta.get("behaviour_return") if kind != "random" else None
            rollout = meta.get(
                "rollout_return", meta.get("behaviour_return") if kind == "random" else None
            )

            lines.append(
                f"| {path.name} | {meta['size']:,} | {snap} | {_cell(env_name, ev)} | "
                f"{_cell(env_name, rollout)} "
                f"| `{sha256(path)[:16]}` |"
            )
        evals = behaviour_curve(
            args.behaviour / env_name, env_name, HERE / "behaviour" / f"{env_name}.tsv"
        )
        best = max(evals, key=lambda e: e[1])
        lines += [
            "",
            f"{env_name} behaviour SAC: final evaluation {evals[-1][1]:.1f} "
            f"({scores.normalized_score(env_name, evals[-1][1]):.1f} normalized), best "
            f"{best[1]:.1f} at {best[0]:,} env steps; curve in `behaviour/{env_name}.tsv`.",
            "",
        ]
    (HERE / "datasets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
