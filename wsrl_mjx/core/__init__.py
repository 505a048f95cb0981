"""Layer `core`: what compiles. The env a config names, the chunks (`lax.scan` over env steps and
updates), replay buffers, evaluation, an online run's schedule. Imports `agents` and below
(tests/test_layers.py).
"""
