"""Importing wsrl_mjx first enables the persistent compilation cache and quiets XLA's logs."""

import wsrl_mjx  # noqa: F401
