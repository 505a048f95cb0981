# The package first, before any test module imports jax: it sets XLA's log level (its cache's
# cpu_aot_loader lines) and the persistent compilation cache, which XLA reads once.
import wsrl_mjx  # noqa: F401
