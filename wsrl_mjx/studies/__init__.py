"""Layer `studies`: what is made from many runs: experiments (methods x seeds), their evidence and
verdicts, plots, a test bed's gates. Imports any lower layer; only `wsrl_mjx.run` imports it
(tests/test_layers.py).
"""
