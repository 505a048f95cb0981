"""The one entry point, `python -m wsrl_mjx.run <command>`: `wsrl_mjx.run.command_line`."""

from wsrl_mjx.run.command_line import build_parser, cli, main

__all__ = ["build_parser", "cli", "main"]
