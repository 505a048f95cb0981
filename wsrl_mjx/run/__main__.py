"""`python -m wsrl_mjx.run <command>`."""

from wsrl_mjx.run.command_line import cli

cli()
