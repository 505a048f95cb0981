"""Layer `runtime`: the host side of any run, knowing nothing of agents or data. Errors a command
reports, run directories, checkpoints, logs, the host loop between chunks, devices and memory.

Imports only the top level's `config` and `types` (tests/test_layers.py, docs/layout.md).
"""
