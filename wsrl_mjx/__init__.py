"""wsrl-mjx: WSRL (warm-start RL) with MJX environments, flashbax replay and optax on device."""

import os

# XLA:CPU logs an ERROR-level line per cached executable about CPU tuning flags
# ("prefer-no-gather"); it is noise. Python exceptions are unaffected. Set it to 0 to see all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

# Compiling MJX rollouts takes 20-30 s per shape on CPU; the persistent cache makes a later
# process's first call take a few seconds. WSRL_JAX_CACHE="" disables it.
_cache = os.environ.get("WSRL_JAX_CACHE", os.path.expanduser("~/.cache/wsrl_mjx/jax"))
if _cache:
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

__version__ = "0.1.0"
