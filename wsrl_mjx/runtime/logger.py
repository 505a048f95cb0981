"""Metrics to JSONL (always) and TensorBoard (optional), plus a tqdm progress bar."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

from tqdm import tqdm

from wsrl_mjx.runtime.rundir import atomic_write


class Logger:
    """`resume_step=None` starts metrics.jsonl afresh; a resumed run keeps the records up to
    the step it restored, so the curves never show the killed run's lost tail twice."""

    def __init__(
        self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "metrics.jsonl"
        kept = []
        if resume_step is not None and path.is_file():
            kept = [r for r in read_metrics(self.run_dir) if r["env_steps"] <= resume_step]
        # Atomic: a kill during this rewrite must not leave an empty or half-written log.
        text = "".join(json.dumps(r) + "\n" for r in kept).encode()
        atomic_write(path, lambda f: f.write(text))
        self._jsonl = open(path, "a", buffering=1)  # noqa: SIM115
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def log_image(self, step: int, tag: str, image) -> None:
        """An [H, W, 3] uint8 image in TensorBoard (when it is on)."""
        if self._tb is not None:
            self._tb.add_image(tag, image, step, dataformats="HWC")

    def log(self, env_steps: int, phase: str, metrics: dict) -> None:
        record = {"env_steps": int(env_steps), "phase": phase, "time": time.time(), **metrics}
        self._jsonl.write(json.dumps(record, default=_jsonable) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self._tb.add_scalar(f"{phase}/{key}", value, env_steps)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def _jsonable(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def _is_record(record: object) -> bool:
    """A metrics line: an object with an integer env_steps and a phase name."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("env_steps"), int)
        and not isinstance(record.get("env_steps"), bool)
        and isinstance(record.get("phase"), str)
    )


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}: is it a run directory?")
    records, torn = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # a write cut short by a kill or a full disk
            torn.append(number)
            continue
        if _is_record(record):
            records.append(record)
        else:  # valid JSON, but not a line this project writes (an edit, another tool)
            torn.append(number)
    if torn:
        warnings.warn(
            f"{path}: dropped {len(torn)} unreadable or foreign line(s) (line "
            f"{', '.join(map(str, torn))}; a write cut short by a kill, or an edit?)",
            stacklevel=2,
        )
    return records


class Progress:
    """Progress over env steps with env steps/s and updates/s, measured between chunks."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train"):
        self._bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            desc=desc,
            unit="step",
            dynamic_ncols=True,
        )
        self._last = (time.perf_counter(), initial, 0)

    def update(self, env_steps: int, updates: int, **postfix) -> dict:
        now = time.perf_counter()
        t0, steps0, updates0 = self._last
        dt = max(now - t0, 1e-9)
        rates = {
            "env_steps_per_s": (env_steps - steps0) / dt,
            "updates_per_s": (updates - updates0) / dt,
        }
        self._last = (now, env_steps, updates)
        self._bar.update(env_steps - self._bar.n)
        self._bar.set_postfix(
            sps=f"{rates['env_steps_per_s']:.0f}", ups=f"{rates['updates_per_s']:.1f}", **postfix
        )
        return rates

    def close(self) -> None:
        self._bar.close()


def read_evals(run_dir: str | Path, drop: tuple[str, ...] = ()) -> list[dict]:
    """The evaluation records a run logged (a resumed run's summary keeps those made before the
    kill), without their phase, time stamp and the `drop` keys."""
    drop = ("phase", "time", *drop)
    return [
        {k: v for k, v in r.items() if k not in drop}
        for r in read_metrics(run_dir)
        if r["phase"] == "eval"
    ]
