#!/usr/bin/env bash
# The locomotion evidence, per task: its datasets (skipped once made), the methods x seeds
# matrix of configs/experiments/locomotion_wsrl.yaml on the task's dataset (resumable: re-run
# after a kill), then the per-seed curve files in results/locomotion_wsrl/curves/<task>/.
# Usage: bash results/locomotion_wsrl/run.sh TASK:DATASET ...
#   e.g. bash results/locomotion_wsrl/run.sh HalfCheetah-v5:medium-replay Hopper-v5:medium
set -euo pipefail
PY=${PY:-.venv/bin/python}
for ITEM in "$@"; do
  ENV=${ITEM%%:*}
  KIND=${ITEM#*:}
  [ "$KIND" = "$ITEM" ] && KIND=medium-replay
  bash results/locomotion_wsrl/make_datasets.sh "$ENV"
  $PY -m wsrl_mjx.run experiment --config configs/experiments/locomotion_wsrl.yaml \
    --set env.name="$ENV" --dataset "data/locomotion/$ENV-$KIND.npz" \
    --set run.run_dir="runs/locomotion/$ENV-$KIND" --vmap-seeds --seed-devices 5
  $PY -m wsrl_mjx.evidence export "runs/locomotion/$ENV-$KIND" \
    "results/locomotion_wsrl/curves/$ENV-$KIND"
done
