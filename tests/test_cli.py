"""The command line: help on every command, and bad input -> exit 2 with a message naming it."""

import pytest

from wsrl_mjx.config import DEFAULT_CONFIG
from wsrl_mjx.run import command_line as run_module
from wsrl_mjx.run import main
from wsrl_mjx.runtime.policy import load_config

COMMANDS = (
    "online",
    "pretrain",
    "collect",
    "finetune",
    "pipeline",
    "experiment",
    "evaluate",
    "plot",
    "evidence",
    "maze-datasets",
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: python -m wsrl_mjx.run " + command in capsys.readouterr().out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["online", "--set", "agent.actor_lrr=1e-3"], "unknown config key 'agent.actor_lrr'"),
        (["online", "--set", "bogus.key=1"], "valid keys: env, agent, online"),
        (["online", "--set", "agent.std_parameterization=log"], "is not one of exp, uniform"),
        (["online", "--set", "online.num_envs=1.5"], "online.num_envs: expected an integer"),
        (["online", "--set", "online.num_envs"], "--set expects key=value"),
        (["online", "--set", "online.num_envs=.inf"], "online.num_envs: expected a finite"),
        (["online", "--set", "run.seed=nan"], "run.seed: expected a finite number"),
        (["online", "--set", "agent.actor_lr=inf"], "agent.actor_lr: expected a finite"),
        (["online", "--set", "env.reward_scale=.nan"], "env.reward_scale: expected a finite"),
        (["online", "--set", "agent={1: 2, a: 3}"], "config key 1 in section 'agent' is not"),
        (["online", "--config", "no/such.yaml"], "config file not found: no/such.yaml"),
        (["pretrain"], "offline.dataset is empty"),
        (["pretrain", "--set", "offline.dataset=missing.npz"], "dataset file not found"),
        (["finetune", "--method", "wsrl"], "needs a pre-trained checkpoint"),
        (["finetune", "--checkpoint", "no/such/run"], "checkpoint not found"),
        (["online", "--set", "env.name=CheetaRun"], "Did you mean 'CheetahRun'"),
        # No command: the options are the default pipeline's, so the typo is what is named.
        (["--set", "online.num_env=8"], "unknown config key 'online.num_env'"),
        (["pipeline", "--resume"], "--resume continues one run: name it"),
        (["online", "--resume", "--set", "run.run_dir=r-{time}"], "--resume continues one run"),
        (["pipeline", "--resume", "--set", "run.run_dir=nope"], "nope does not exist"),
        (["finetune", "--method", "rlpd"], "samples offline data: pass --checkpoint"),
        (["plot", "."], "no metrics.jsonl there, nor in a pipeline phase folder"),
        (["maze-datasets", "--twin", "AntMaze_UMaze-v4"], "--twin needs --agent ant"),
        (["maze-datasets", "--layouts", "umaze", "spiral"], "--layouts: unknown ['spiral']"),
        (["maze-datasets", "--agent", "ant", "--twin", "AntMaze_Nope-v4"], "--twin: unknown"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


@pytest.mark.parametrize(
    "argv", [["evidence"], ["evidence", "plot"], ["evidence", "analyze", "curves"]]
)
def test_evidence_needs_its_step_and_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "usage: python -m wsrl_mjx.run evidence" in capsys.readouterr().err


def test_the_old_module_command_lines_are_gone():
    from wsrl_mjx.phases import maze_datasets
    from wsrl_mjx.studies import evidence

    assert not hasattr(evidence, "main") and not hasattr(maze_datasets, "main")


def test_default_pipeline_config_is_valid_and_small():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.online.total_env_steps <= 50_000  # minutes on a laptop CPU
    assert "{time}" in cfg.run.run_dir  # re-running never collides with an earlier run


def test_no_command_runs_the_default_pipeline(monkeypatch):
    called = []
    monkeypatch.setattr(run_module, "cmd_pipeline", lambda args: called.append(args) or 0)
    assert main([]) == 0
    assert len(called) == 1 and called[0].config is None and called[0].overrides == []
    assert main(["--set", "online.num_envs=8"]) == 0  # options without a command: the same job
    assert called[1].command == "pipeline" and called[1].overrides == ["online.num_envs=8"]


class _Seen(Exception):
    """Carries the config a command would have run with."""


@pytest.mark.parametrize(
    ("command", "module", "function"),
    [
        ("online", "phases.online", "run_online"),
        ("pretrain", "phases.pretrain", "run_pretrain"),
        ("collect", "phases.collect", "run_collect"),
        ("finetune", "phases.finetune", "run_finetune"),
        ("pipeline", "phases.pipeline", "run_pipeline"),
    ],
)
def test_time_in_the_run_dir_expands_in_every_command(command, module, function, monkeypatch):
    import importlib
    import re

    def seen(cfg, **kwargs):
        raise _Seen(cfg.run.run_dir)

    monkeypatch.setattr(importlib.import_module(f"wsrl_mjx.{module}"), function, seen)
    with pytest.raises(_Seen) as got:
        main([command, "--set", "run.run_dir=runs/x-{time}"])
    assert re.fullmatch(r"runs/x-\d{8}-\d{6}", str(got.value)), got.value
