#!/usr/bin/env bash
# The locomotion datasets, made the D4RL way by the project's own behaviour SAC
# (configs/locomotion/behaviour.yaml): random, medium (snapshot nearest one third of D4RL's
# normalized range), medium-replay (its buffer up to that snapshot) and expert, 100k
# transitions each (medium-replay: what the buffer held), in data/locomotion/.
# Usage: bash results/locomotion_wsrl/make_datasets.sh HalfCheetah-v5 [Hopper-v5 ...]
# A task whose four datasets exist is skipped; a behaviour run cut short starts again.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-data/locomotion}
for ENV in "$@"; do
  if ls "$OUT/$ENV"-{random,medium,medium-replay,expert}.npz >/dev/null 2>&1; then
    echo "[datasets] $ENV: all four datasets exist in $OUT, skipped"; continue
  fi
  RUN=runs/locomotion/behaviour/$ENV
  if [ -e "$RUN" ]; then mv "$RUN" "$RUN.unfinished-$(date +%Y%m%d-%H%M%S)"; fi
  $PY -m wsrl_mjx.run collect --config configs/locomotion/behaviour.yaml \
    --set env.name="$ENV" --set collect.out_dir="$OUT" --set run.run_dir="$RUN"
done
