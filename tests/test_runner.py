"""The online phase loop (`wsrl_mjx.phases.online.run_phase`) and the runner's services it calls
(`wsrl_mjx.runtime.runner.HostLoop`) on a host-only toy run: which chunks run, when it evaluates
and checkpoints, and how a stop request ends it (no JAX program involved)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from wsrl_mjx.phases.online import Phase, run_phase
from wsrl_mjx.runtime.runner import Cadence, HostLoop
from wsrl_mjx.runtime.signals import StopRequested, graceful_stop

STEP = 10  # toy steps per chunk


@dataclass
class ToyRun:
    """An `OnlineRun` stand-in whose state is its step count; it notes what the loop asks of it."""

    total: int
    every_eval: int = 20
    every_checkpoint: int = 30
    stop_at: int | None = None  # SIGTERM while the chunk that ends here is recorded
    records: list[tuple[str, int, int]] = field(default_factory=list)  # (phase, start, step)
    evals: list[tuple[int, str]] = field(default_factory=list)
    saves: list[int] = field(default_factory=list)
    loops: list[HostLoop] = field(init=False)

    def __post_init__(self) -> None:
        self.loops = [
            HostLoop(
                logger=None,
                checkpointer=SimpleNamespace(directory=Path("toy/checkpoints")),
                progress=None,
                evaluation=Cadence.after(0, self.every_eval),
                checkpoints=Cadence.after(0, self.every_checkpoint),
            )
        ]

    def step(self, state: int) -> int:
        return state

    def record(self, state: int, metrics: dict, phase: str, start: int) -> None:
        self.records.append((phase, start, state))
        if state == self.stop_at:
            signal.raise_signal(signal.SIGTERM)

    def evaluate(self, state: int, step: int, label: str) -> None:
        self.evals.append((step, label))

    def save(self, state: int, step: int) -> None:
        self.saves.append(step)


def toy_phase(name: str, end: int, **kw) -> Phase:
    return Phase(name, lambda s: (s + STEP, {}), end=end, timer=f"{name}_s", **kw)


def test_a_phase_runs_whole_chunks_and_evaluates_and_checkpoints_on_cadence_and_at_the_end():
    run = ToyRun(total=50)
    assert run_phase(run, toy_phase("online", 50), 0) == 50
    assert [r[1:] for r in run.records] == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
    assert run.evals == [(20, "online"), (40, "online"), (50, "online")]  # + the run's end
    assert run.saves == [30, 50]
    assert run.loops[0].times["online_s"] >= 0.0


def test_warmup_then_online_the_warmup_is_evaluated_at_its_end_and_skipped_once_past_it():
    run = ToyRun(total=40, every_eval=100, every_checkpoint=100)
    warmup = toy_phase("warmup", 10, evaluate_at_end=True, eval_label="after_warmup")
    state = run_phase(run, warmup, 0)
    state = run_phase(run, toy_phase("online", 40), state)
    assert run.evals == [(10, "after_warmup"), (40, "online")]
    assert [r[0] for r in run.records] == ["warmup", "online", "online", "online"]
    assert run_phase(run, warmup, state) == state  # resumed past the warmup: nothing runs
    assert len(run.records) == 4


def test_a_stop_request_checkpoints_the_chunk_it_arrived_in_and_stops():
    run = ToyRun(total=100, stop_at=20)
    with graceful_stop(), pytest.raises(StopRequested) as stop:
        run_phase(run, toy_phase("online", 100), 0)
    assert "stopped by SIGTERM at env step 20; checkpoint in toy/checkpoints" in str(stop.value)
    assert run.saves == [20]  # off the 30-step cadence: forced by the stop
    assert run.records[-1][2] == 20


def test_no_stop_check_after_the_last_chunk_the_run_finishes_with_its_final_checkpoint():
    run = ToyRun(total=30, stop_at=30)
    with graceful_stop():
        assert run_phase(run, toy_phase("online", 30), 0) == 30
    assert run.saves == [30]


def test_seeds_killed_between_their_saves_resume_from_the_newest_step_they_all_hold(tmp_path):
    import numpy as np

    from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
    from wsrl_mjx.runtime.runner import align_seeds

    def saved(name: str, steps: list[int]) -> Checkpointer:
        ckpt = Checkpointer(tmp_path / name, keep=3)
        for step in steps:
            ckpt.save(step, {"x": np.full(2, step, np.float32)}, {"env_steps": step})
        return ckpt

    behind, ahead = saved("seed0", [10, 20]), saved("seed1", [10, 20, 30])
    assert align_seeds([behind, ahead]) == 20
    assert ahead.all_steps() == [10, 20] and behind.all_steps() == [10, 20]
    assert align_seeds([behind, ahead]) is None  # they agree now
    state, meta = ahead.restore({"x": np.zeros(2, np.float32)})
    assert meta["env_steps"] == 20 and state["x"].tolist() == [20.0, 20.0]
    with pytest.raises(CheckpointError, match="no step in common"):
        align_seeds([saved("seed2", [10]), saved("seed3", [20])])
    for ckpt in (behind, ahead):
        ckpt.close()
