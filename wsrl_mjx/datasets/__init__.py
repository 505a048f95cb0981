"""Layer `datasets`: offline datasets (the project's format, D4RL HDF5, Minari) and normalized
scores. Imports `runtime` and the top level's `config` and `types` (tests/test_layers.py).
"""
