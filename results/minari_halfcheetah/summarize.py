"""Numbers of one `run.sh` output folder as JSON: python summarize.py RUN_ROOT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wsrl_mjx.runtime.logger import read_metrics


def evals(run_dir: Path) -> list[dict]:
    keep = ("env_steps", "gradient_steps", "label", "eval_return", "return")
    return [
        {k: r[k] for k in keep if k in r} for r in read_metrics(run_dir) if r["phase"] == "eval"
    ]


def main() -> None:
    root = Path(sys.argv[1])
    record = json.loads((root / "record.json").read_text())
    summary = {
        "behaviour_sac_in_twin": evals(root / "behaviour"),
        "minari_dataset": {
            "id": record["dataset_id"],
            "total_steps": record["total_steps"],
            "episodes": record["episodes"],
            "mean_native_return": record["mean_native_return"],
        },
        "pretrain_calql": evals(root / "pretrain"),
        "finetune_wsrl": evals(root / "finetune"),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
