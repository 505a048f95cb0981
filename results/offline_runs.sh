#!/usr/bin/env bash
# Offline pre-training on datasets made by `collect` (issue 3): CheetahRun, CPU-sized.
# Usage: bash results/offline_runs.sh [ROOT]   (default runs/offline); then see results/offline.md
set -euo pipefail
ROOT=${1:-runs/offline}
PY=${PY:-.venv/bin/python}
COMMON=(--set env.name=CheetahRun --set agent.actor_hidden=[128,128] --set agent.critic_hidden=[128,128]
  --set agent.num_critics=2 --set agent.batch_size=128 --set agent.critic_minibatches=1
  --set agent.init_temperature=0.1 --set agent.temperature_lr=3e-4 --set agent.actor_lr=3e-4
  --set eval.num_episodes=16 --set run.tensorboard=false --set run.progress=false)
# Behaviour SAC (16 envs, UTD 1) then random / medium / expert datasets of 50k transitions.
$PY -m wsrl_mjx.run collect "${COMMON[@]}" --set online.num_envs=16 --set online.update_rounds=16 \
  --set online.total_env_steps=60000 --set online.warmup_steps=4000 --set online.chunk_length=50 \
  --set eval.every_env_steps=10000 --set collect.kinds=[random,medium,expert] --set collect.size=50000 \
  --set collect.out_dir=$ROOT/data --set run.run_dir=$ROOT/behaviour --set run.checkpoint_every_env_steps=100000
for algo in calql cql; do for kind in medium expert; do
  $PY -m wsrl_mjx.run pretrain "${COMMON[@]}" --set offline.algorithm=$algo \
    --set offline.dataset=$ROOT/data/CheetahRun-$kind.npz --set offline.steps=10000 \
    --set offline.eval_every_steps=2500 --set run.run_dir=$ROOT/$algo-$kind
done; done
