"""Layer `phases`: each phase of a run, top to bottom (collect, pretrain, online, finetune, the
pipeline) and what acts with a finished run's policy (checkpoint -> agent, native-env evaluation,
videos, Minari export, maze datasets). Imports the registry (`wsrl_mjx.methods`) and below
(tests/test_layers.py).
"""
