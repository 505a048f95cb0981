"""Print the markdown table of results/offline.md from `pretrain` run directories.

    python results/offline_table.py runs/offline/calql-medium runs/offline/cql-medium ...

Each run's dataset came from `collect`, whose metadata holds the behaviour policy's return; the
`random` dataset beside it gives the random policy's return.
"""

import sys
from pathlib import Path

from wsrl_mjx.config import load_config
from wsrl_mjx.datasets.data import load_dataset
from wsrl_mjx.runtime.logger import read_metrics


def behaviour_return(path: Path) -> str:
    return f"{load_dataset(path).metadata['behaviour_return']:.1f}" if path.is_file() else "n/a"


def row(run_dir: Path) -> str:
    cfg = load_config(run_dir / "config.yaml")
    dataset = Path(cfg.offline.dataset)
    kind = load_dataset(dataset).metadata["method"]
    random = dataset.with_name(dataset.name.replace(f"-{kind}.npz", "-random.npz"))
    evals = [r for r in read_metrics(run_dir) if r["phase"] == "eval"]
    curve = ", ".join(f"{e['eval_return']:.1f}" for e in evals)
    return (
        f"| {cfg.env.name} | {kind} | {cfg.offline.algorithm} | {evals[-1]['gradient_steps']} | "
        f"**{evals[-1]['eval_return']:.1f}** | {behaviour_return(dataset)} | "
        f"{behaviour_return(random)} | {curve} |"
    )


if __name__ == "__main__":
    print(
        "| env | dataset | algorithm | gradient steps | eval return | behaviour policy | "
        "random policy | eval return during pre-training |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run_dir in sys.argv[1:]:
        print(row(Path(run_dir)))
