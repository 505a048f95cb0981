#!/usr/bin/env bash
# The locomotion evidence, per task: its datasets (skipped once made), the methods x seeds
# matrix of configs/experiments/locomotion_wsrl.yaml (resumable: re-run after a kill), then the
# per-seed curve files in results/locomotion_wsrl/curves/<task>/.
# Usage: bash results/locomotion_wsrl/run.sh HalfCheetah-v5 [Hopper-v5 ...]
set -euo pipefail
PY=${PY:-.venv/bin/python}
for ENV in "$@"; do
  bash results/locomotion_wsrl/make_datasets.sh "$ENV"
  $PY -m wsrl_mjx.run experiment --config configs/experiments/locomotion_wsrl.yaml \
    --set env.name="$ENV" --vmap-seeds --seed-devices 5
  $PY -m wsrl_mjx.evidence export "runs/locomotion/$ENV" "results/locomotion_wsrl/curves/$ENV"
done
