#!/usr/bin/env bash
# Rebuild a locomotion test-bed task's random / medium / medium-replay datasets from the code
# alone: the behaviour SAC (configs/locomotion/behaviour.yaml) re-run one evaluation past
# medium's snapshot, then `collect`; prints the sha256 of each file to compare with
# results/locomotion_100k/gates/<task>-datasets.json (on this CPU they match bit for bit).
#   scripts/regen_locomotion.sh Hopper-v5 160000 data/locomotion runs/behaviour   # ~25 min
#   scripts/regen_locomotion.sh Walker2d-v5 410000 data/locomotion runs/behaviour # ~55 min
# STEPS = medium's snapshot (151,008 / 401,008) + one 10k evaluation, as online.total_env_steps
# (the final snapshot is never medium). Resumable: re-run the same command after a stop.
set -euo pipefail
ENV=$1; STEPS=$2; OUT=${3:-data/locomotion}; RUNS=${4:-runs/behaviour}
cd "$(dirname "$0")/.."
RESUME=$([ -d "$RUNS/$ENV/checkpoints" ] && echo --resume || true)
python -m wsrl_mjx.run collect --config configs/locomotion/behaviour.yaml \
  --set env.name="$ENV" --set collect.out_dir="$OUT" --set run.run_dir="$RUNS/$ENV" \
  --set online.total_env_steps="$STEPS" --set "collect.kinds=[random,medium,medium-replay]" $RESUME
sha256sum "$OUT/$ENV"-*.npz
