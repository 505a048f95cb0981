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
  # XLA:CPU aborts (SIGABRT, exit 134) when one device thread of the seeds' program waits more
  # than 40 s for the others at a collective: seen here with the 2 cores oversubscribed. Every
  # run resumes from its last checkpoint, so such an abort is retried (at most 20 times).
  for ATTEMPT in $(seq 1 20); do
    set +e
    $PY -m wsrl_mjx.run experiment --config configs/experiments/locomotion_wsrl.yaml \
      --set env.name="$ENV" --dataset "data/locomotion/$ENV-$KIND.npz" \
      --set run.run_dir="runs/locomotion/$ENV-$KIND" --vmap-seeds --seed-devices 5
    CODE=$?
    set -e
    [ "$CODE" -ne 134 ] && break
    echo "[run.sh] $ENV: XLA aborted (attempt $ATTEMPT); resuming" >&2
  done
  [ "$CODE" -ne 0 ] && exit "$CODE"
  $PY -m wsrl_mjx.run evidence export "runs/locomotion/$ENV-$KIND" \
    "results/locomotion_wsrl/curves/$ENV-$KIND"
done
