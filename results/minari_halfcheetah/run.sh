#!/usr/bin/env bash
# Bring your own Minari dataset, end to end on CPU (README "Bring your own Minari dataset"):
#   1. a behaviour SAC trained here in the MJX twin of HalfCheetah-v5,
#   2. its policy recorded into a Minari dataset in the *native* Gymnasium HalfCheetah-v5 by
#      minari's own DataCollector,
#   3. CalQL pre-training on that dataset (env.name left empty: the twin comes from the
#      dataset's env_spec); the SAC temperature starts at 0.1 (at 1.0, the default, the entropy
#      term swamped HalfCheetah's ~1-per-step rewards and 3000 steps left a standing policy,
#      eval return -1.5),
#   4. WSRL fine-tuning in the twin (env from the checkpoint).
# Resumable: each finished phase leaves a marker and is skipped when re-run; a killed
# pretrain/finetune continues from its last checkpoint.
#   bash results/minari_halfcheetah/run.sh          (PY=python to use another interpreter)
set -euo pipefail
PY=${PY:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the scripts below import this checkout
OUT=${OUT:-runs/minari_halfcheetah}
mkdir -p "$OUT/minari"
# Absolute: minari 0.5 mangles a relative MINARI_DATASETS_PATH when it writes.
export MINARI_DATASETS_PATH=$(realpath "${MINARI_DATASETS_PATH:-$OUT/minari}")
DATASET=wsrl-mjx/halfcheetah/medium-v0
NET=(--set agent.actor_hidden=[64,64] --set agent.critic_hidden=[64,64] --set agent.num_critics=2
     --set agent.batch_size=256 --set run.tensorboard=false --set run.progress=false)
resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }

if [ ! -f "$OUT/behaviour.done" ]; then
  $PY -m wsrl_mjx.run online $(resume "$OUT/behaviour") --set env.name=HalfCheetah-v5 "${NET[@]}" \
    --set agent.critic_minibatches=1 --set agent.init_temperature=0.1 \
    --set agent.temperature_lr=3e-4 --set agent.actor_lr=3e-4 \
    --set online.num_envs=16 --set online.update_rounds=8 --set online.total_env_steps=48000 \
    --set online.warmup_steps=4000 --set online.chunk_length=50 --set online.buffer_capacity=100000 \
    --set eval.num_episodes=8 --set eval.every_env_steps=8000 \
    --set run.run_dir="$OUT/behaviour" --set run.checkpoint_every_env_steps=8000
  touch "$OUT/behaviour.done"
fi

if [ ! -f "$OUT/record.json" ]; then
  rm -rf "$MINARI_DATASETS_PATH/$DATASET"  # a killed recording is redone whole
  $PY results/minari_halfcheetah/record_minari.py "$OUT/behaviour" "$DATASET" 20000 \
    > "$OUT/record.json.tmp"
  mv "$OUT/record.json.tmp" "$OUT/record.json"
fi

if [ ! -f "$OUT/pretrain.done" ]; then
  $PY -m wsrl_mjx.run pretrain $(resume "$OUT/pretrain") "${NET[@]}" \
    --set offline.dataset="$DATASET" --set offline.algorithm=calql --set offline.steps=15000 \
    --set agent.init_temperature=0.1 --set agent.temperature_lr=1e-3 --set agent.actor_lr=3e-4 \
    --set offline.chunk_length=500 --set offline.eval_every_steps=2500 \
    --set offline.checkpoint_every_steps=2500 --set offline.max_target_backup=false \
    --set offline.cql_num_actions=5 --set eval.num_episodes=8 --set run.run_dir="$OUT/pretrain"
  touch "$OUT/pretrain.done"
fi

if [ ! -f "$OUT/finetune.done" ]; then
  $PY -m wsrl_mjx.run finetune $(resume "$OUT/finetune") --checkpoint "$OUT/pretrain" \
    --method wsrl "${NET[@]}" --set agent.critic_minibatches=4 --set agent.actor_lr=3e-4 \
    --set agent.temperature_lr=1e-3 --set online.num_envs=4 --set online.total_env_steps=20000 \
    --set online.warmup_steps=2000 --set online.update_rounds=1 --set online.chunk_length=125 \
    --set eval.num_episodes=8 --set eval.every_env_steps=2500 --set run.run_dir="$OUT/finetune" \
    --set run.checkpoint_every_env_steps=5000
  touch "$OUT/finetune.done"
fi
$PY results/minari_halfcheetah/summarize.py "$OUT" > results/minari_halfcheetah/results.json
cat results/minari_halfcheetah/results.json
