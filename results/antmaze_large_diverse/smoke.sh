#!/usr/bin/env bash
# Smoke-sized run of configs/antmaze_large_diverse_gr.yaml (the paper's antmaze-large-diverse
# experiment on the AntMaze_Large_Diverse_GR-v4 twin) on a CPU: a tiny dataset made in the twin
# by the bundled ant policy, CalQL pre-training, WSRL warmup + fine-tuning, all with the config's
# settings except the sizes below (nets, critics, steps, episodes). Output: smoke_output.txt.
#   bash results/antmaze_large_diverse/smoke.sh        (PY=python to use another interpreter)
set -euo pipefail
PY=${PY:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-runs/antmaze_large_diverse_smoke}
ID=AntMaze_Large_Diverse_GR-v4
CONFIG=configs/antmaze_large_diverse_gr.yaml
SMALL=(--set agent.actor_hidden=[32,32] --set agent.critic_hidden=[32,32] --set agent.num_critics=2
       --set agent.num_backup_actions=2 --set agent.batch_size=64 --set env.episode_length=50
       --set eval.num_episodes=2 --set run.tensorboard=false --set run.progress=false)

[ -f "$OUT/data/$ID.npz" ] || $PY -m wsrl_mjx.run maze-datasets --agent ant --twin $ID \
  --num-transitions 2000 --num-envs 4 --save "$OUT/data"
[ -f "$OUT/pretrain.done" ] || { $PY -m wsrl_mjx.run pretrain --config $CONFIG "${SMALL[@]}" \
  --set offline.dataset="$OUT/data/$ID.npz" --set offline.steps=200 \
  --set offline.chunk_length=100 --set offline.eval_every_steps=200 \
  --set offline.checkpoint_every_steps=200 --set offline.cql_num_actions=2 \
  --set run.run_dir="$OUT/pretrain" && touch "$OUT/pretrain.done"; }
$PY -m wsrl_mjx.run finetune --config $CONFIG --checkpoint "$OUT/pretrain" "${SMALL[@]}" \
  --set online.num_envs=2 --set online.total_env_steps=300 --set online.warmup_steps=100 \
  --set online.chunk_length=10 --set online.update_rounds=2 --set online.buffer_capacity=10000 \
  --set eval.every_env_steps=300 --set run.checkpoint_every_env_steps=300 \
  --set run.run_dir="$OUT/finetune"
