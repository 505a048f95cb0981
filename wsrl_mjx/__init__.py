"""wsrl-mjx: WSRL (warm-start RL) with MJX environments, flashbax replay and optax on device."""

import os
import sys

# XLA:CPU logs ERROR-level lines for every executable it loads from the compilation cache
# (cpu_aot_loader: CPU tuning flags such as "prefer-no-gather"); it is noise. Python exceptions
# are unaffected. "1" is what importing jax sets, so a parent process that imported jax passes it
# on: that is raised too. Set TF_CPP_MIN_LOG_LEVEL=0 (or 2) to see XLA's log.
if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1") == "1":
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

# Compiling MJX rollouts takes 20-30 s per shape on CPU; the persistent cache makes a later
# process's first call take a few seconds. WSRL_JAX_CACHE names its folder ("" disables it);
# without it an inherited JAX_COMPILATION_CACHE_DIR is kept, else ~/.cache/wsrl_mjx/jax. Set
# through JAX's own environment variable, so importing the package does not import JAX (the
# command line checks its input first); a JAX imported before this package gets it through its
# config instead.
_cache = os.environ.get("WSRL_JAX_CACHE")
if _cache is None:
    _cache = os.environ.get(
        "JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/wsrl_mjx/jax")
    )
if _cache:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_compilation_cache_dir", _cache)
else:
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

__version__ = "0.1.0"
