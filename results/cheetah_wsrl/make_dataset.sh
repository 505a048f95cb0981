#!/usr/bin/env bash
# The CheetahRun datasets of configs/experiments/cheetah_wsrl.yaml: a behaviour SAC (16 envs,
# UTD 1, 100k env steps, ~25 min on one core here), then `medium` (its snapshot nearest half its
# final return) and `expert` (its final actor), 100k transitions each, in data/cheetah/.
set -euo pipefail
PY=${PY:-.venv/bin/python}
$PY -m wsrl_mjx.run collect --set env.name=CheetahRun \
  --set agent.actor_hidden=[128,128] --set agent.critic_hidden=[128,128] --set agent.num_critics=2 \
  --set agent.batch_size=256 --set agent.critic_minibatches=1 --set agent.init_temperature=0.1 \
  --set agent.temperature_lr=3e-4 --set agent.actor_lr=3e-4 \
  --set online.num_envs=16 --set online.update_rounds=16 --set online.total_env_steps=100000 \
  --set online.warmup_steps=4000 --set online.chunk_length=50 --set online.buffer_capacity=200000 \
  --set eval.num_episodes=16 --set eval.every_env_steps=5000 \
  --set collect.kinds=[medium,expert] --set collect.size=100000 --set collect.medium_fraction=0.5 \
  --set collect.out_dir=data/cheetah --set run.run_dir=runs/behaviour/cheetah \
  --set run.checkpoint_every_env_steps=20000 --set run.tensorboard=false --set run.progress=false
