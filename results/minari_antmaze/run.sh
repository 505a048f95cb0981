#!/usr/bin/env bash
# A Minari antmaze dataset recorded in the *native* AntMaze_UMaze-v4, end to end in its MJX twin
# (smoke-sized, CPU): record (minari DataCollector, random actions) -> pretrain (CalQL; env from
# the dataset's env_spec: the twin AntMaze_UMaze-v4) -> finetune --method wsrl in the twin ->
# evaluate the fine-tuned policy in the twin and in the native env.
#   bash results/minari_antmaze/run.sh        (PY=python to use another interpreter)
set -euo pipefail
PY=${PY:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-runs/minari_antmaze}
mkdir -p "$OUT/minari"
export MINARI_DATASETS_PATH=$(realpath "$OUT/minari")
DATASET=wsrl-mjx/antmaze/umaze-random-v0
LEN=50  # episode length of evaluation and fine-tuning (smoke size; the env's own is 700)
NET=(--set agent.actor_hidden=[32,32] --set agent.critic_hidden=[32,32] --set agent.num_critics=2
     --set agent.batch_size=64 --set run.tensorboard=false --set run.progress=false
     --set env.episode_length=$LEN --set eval.num_episodes=2)

[ -d "$MINARI_DATASETS_PATH/$DATASET" ] || $PY results/minari_antmaze/record_random.py "$DATASET" 4 100
[ -f "$OUT/pretrain.done" ] || { $PY -m wsrl_mjx.run pretrain "${NET[@]}" --set offline.dataset="$DATASET" \
  --set offline.algorithm=calql --set offline.steps=200 --set offline.chunk_length=100 \
  --set offline.eval_every_steps=200 --set offline.checkpoint_every_steps=200 \
  --set offline.cql_num_actions=2 --set offline.terminals_from_reward=true \
  --set run.run_dir="$OUT/pretrain" && touch "$OUT/pretrain.done"; }
$PY -m wsrl_mjx.run finetune --checkpoint "$OUT/pretrain" --method wsrl "${NET[@]}" \
  --set online.num_envs=2 --set online.total_env_steps=500 --set online.warmup_steps=100 \
  --set online.chunk_length=10 --set online.update_rounds=1 --set eval.every_env_steps=500 \
  --set run.run_dir="$OUT/finetune"
$PY -m wsrl_mjx.run evaluate "$OUT/finetune" --episodes 5 \
  --out results/native_evaluation/AntMaze_UMaze-v4-minari-random-wsrl-smoke.json
