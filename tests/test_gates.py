"""The test-bed gates: levels read from dataset episodes, and each gate's verdict on hand-made
levels (a balancing medium, a trivial controller within the margin, a sound test bed)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from wsrl_mjx.studies.gates import EPISODES, MARGIN, MIN_SPEED, Level, dataset_episodes, judge

CONFIG = {"healthy_reward": 1.0, "ctrl_cost_weight": 0.1, "forward_reward_weight": 1.0}


def _rows(speeds, terminal_last, actions):
    """One episode's rows whose rewards a Hopper-like task would give."""
    n = len(speeds)
    terminals = np.zeros(n, bool)
    terminals[-1] = terminal_last
    healthy = 1.0 * ~terminals
    rewards = healthy + np.asarray(speeds) - 0.1 * np.square(actions).sum(-1)
    return rewards, terminals


def test_complete_episodes_and_their_forward_speed_are_read_back_from_the_rewards():
    rng = np.random.default_rng(0)
    pieces = [([0.5, 0.7, 0.9], True), ([1.0, 1.0, 2.0, 2.0], False), ([3.0, 3.0], False)]
    rewards, terminals, timeouts, actions = [], [], [], []
    for speeds, terminal in pieces:  # a fall, a time limit (length 4), a stream's cut tail
        a = rng.uniform(-1, 1, (len(speeds), 3))
        r, t = _rows(speeds, terminal, a)
        rewards.append(r)
        terminals.append(t)
        timeouts.append(np.eye(len(speeds), dtype=bool)[-1] & ~t)
        actions.append(a)
    arrays = {
        "rewards": np.concatenate(rewards),
        "terminals": np.concatenate(terminals),
        "timeouts": np.concatenate(timeouts),
        "actions": np.concatenate(actions),
    }
    returns, speeds = dataset_episodes(arrays, CONFIG, lambda a: a, episode_length=4)
    np.testing.assert_allclose(returns, [rewards[0].sum(), rewards[1].sum()])
    np.testing.assert_allclose(speeds, [0.7, 1.5])  # the cut tail is no episode


def _level(name, value, speed=1.0, episodes=EPISODES, width=2.0):
    return Level(name, episodes, value, value - width, value + width, speed)


def _bed(medium=45.0, medium_speed=1.0, zero=5.0, pretrain=(50.0,), expert=100.0):
    levels = {
        "random": _level("random", 1.0, 0.0),
        "medium": _level("medium", medium, medium_speed),
        "expert": _level("expert", expert),
        "standing still": Level("standing still", 1000, 31.3, 31.3, 31.3, 0.0),
    }
    trivial = [levels["random"], _level("constant zero", zero, 0.0), levels["standing still"]]
    runs = [_level(f"pretrain {i}", v, 0.8, episodes=0, width=0.0) for i, v in enumerate(pretrain)]
    return {g.name: g.passed for g in judge(levels, trivial, runs)}


def test_a_sound_test_bed_passes_every_gate():
    gates = _bed()
    assert all(gates.values()), [name for name, ok in gates.items() if not ok]


def test_a_balancing_medium_fails_on_standing_and_speed():
    gates = _bed(medium=33.0, medium_speed=0.07)
    assert not gates[f"medium: >= {MARGIN:g} above standing"]
    assert not gates[f"medium: moves forward at >= {MIN_SPEED:g} m/s"]
    assert not gates[f"standing still fails (>= {MARGIN:g} below medium's lower bound)"]


def test_a_trivial_controller_within_the_margin_fails_the_bed():
    gates = _bed(zero=40.0)
    assert not gates[f"constant zero fails (>= {MARGIN:g} below medium's lower bound)"]
    assert sum(not ok for ok in gates.values()) == 1


def test_a_pretraining_seed_at_the_standing_level_or_at_expert_fails():
    gates = _bed(pretrain=(50.0, 32.0, 95.0))
    assert gates[f"pretrain 0: >= {MARGIN:g} above standing"]
    assert not gates[f"pretrain 1: >= {MARGIN:g} above standing"]
    assert not gates[f"pretrain 2: >= {MARGIN:g} below expert"]


def test_too_few_episodes_fail_the_level_gate():
    levels = {k: _level(k, v) for k, v in (("random", 1.0), ("medium", 45.0), ("expert", 100.0))}
    levels["medium"] = _level("medium", 45.0, episodes=16)
    levels["standing still"] = Level("standing still", 1000, 31.3, 31.3, 31.3, 0.0)
    gates = {g.name: g.passed for g in judge(levels, [], [])}
    assert not gates[f"medium holds over >= {EPISODES} episodes"]
    assert gates[f"expert holds over >= {EPISODES} episodes"]


def test_gates_command_names_missing_datasets(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "wsrl_mjx.run", "gates", "--env", "Hopper-v5"]
        + ["--data", str(tmp_path), "--out", str(tmp_path / "gates")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "Hopper-v5-medium.npz" in out.stderr and "Hopper-v5-expert.npz" in out.stderr
    assert not (tmp_path / "gates.md").exists()


@pytest.mark.parametrize("speed", [0.0, MIN_SPEED - 0.01])
def test_a_pretraining_that_does_not_move_fails(speed):
    levels = {k: _level(k, v) for k, v in (("random", 1.0), ("medium", 45.0), ("expert", 100.0))}
    levels["standing still"] = Level("standing still", 1000, 31.3, 31.3, 31.3, 0.0)
    run = Level("pretrain 0", 0, 50.0, 50.0, 50.0, speed)
    gates = {g.name: g.passed for g in judge(levels, [], [run])}
    assert not gates[f"pretrain 0: moves forward at >= {MIN_SPEED:g} m/s"]


def _gates(tmp_path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "wsrl_mjx.run", "gates", "--env", "Hopper-v5"]
        + ["--data", str(tmp_path), "--out", str(tmp_path / "gates"), *extra],
        capture_output=True,
        text=True,
    )


def test_a_level_recorded_by_an_earlier_gate_run_stands_in_for_a_missing_dataset(tmp_path):
    from pathlib import Path

    from wsrl_mjx.studies.gates import recorded_levels

    record = Path(__file__).parents[1] / "results/locomotion_100k/gates/Hopper-v5.json"
    levels = recorded_levels(record, "Hopper-v5")
    expert, provenance = levels["expert"]
    assert expert.episodes >= EPISODES and expert.low > 100.0  # the committed 1M-step expert
    assert provenance["recorded_in"] == str(record) and provenance["method"] == "expert"
    only_expert = json.loads(record.read_text())
    only_expert["levels"] = {"expert": only_expert["levels"]["expert"]}
    (tmp_path / "expert.json").write_text(json.dumps(only_expert))
    out = _gates(tmp_path, "--levels-from", str(tmp_path / "expert.json"))
    assert out.returncode == 2  # the datasets not recorded are still needed, and named
    assert "Hopper-v5-medium.npz" in out.stderr and "Hopper-v5-expert.npz" not in out.stderr
    wrong = tmp_path / "walker.json"
    wrong.write_text(record.read_text().replace('"env": "Hopper-v5"', '"env": "Walker2d-v5"'))
    out = _gates(tmp_path, "--levels-from", str(wrong))
    assert out.returncode == 2 and "a record of Walker2d-v5, not Hopper-v5" in out.stderr
    (tmp_path / "junk.json").write_text("[1, 2]")
    out = _gates(tmp_path, "--levels-from", str(tmp_path / "junk.json"))
    assert out.returncode == 2 and "not a gate record" in out.stderr
