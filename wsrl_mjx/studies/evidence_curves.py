"""The evidence's curve files and what is read from them (`wsrl_mjx.studies.evidence`, step 1):
`export_curves` writes one text file per finished run and seed, `read_curve` reads one back, and
`load_task` turns a task's folder into per-seed `Run`s (score at a budget, at the switch, the
dip, the step it is back, the held-out TD)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsrl_mjx.datasets import scores
from wsrl_mjx.runtime.logger import read_metrics

COLUMNS = (
    "env_steps",
    "eval_return",
    "eval_success",
    "normalized",
    "eval_length",
    "online_q",
    "online_td",
    "offline_q",
    "offline_td",
)
PRETRAIN_COLUMNS = (
    "gradient_steps",
    "eval_return",
    "eval_success",
    "normalized",
    "eval_length",
    "q_pred",
    "alpha",
)
TRAINING_PHASES_EXCLUDED = ("eval", "warmup", "q_trace")

# --- 1. curve files ------------------------------------------------------------------------------


def _evaluation(env_name: str, record: dict) -> list[float]:
    """eval_return, eval_success, normalized of a logged evaluation (NaN where there is none)."""
    score = scores.normalized_of(env_name, record, prefix="eval_")
    return [
        record["eval_return"],
        record.get("eval_success", math.nan),
        math.nan if score is None else score,
    ]


def _last_before(records: list[dict], step: int, key: str) -> float:
    values = [r[key] for r in records if r["env_steps"] <= step and key in r]
    return float(values[-1]) if values else math.nan


def finetune_curve(run_dir: Path, env_name: str) -> tuple[int, np.ndarray]:
    """(switch env step, rows of COLUMNS): one row per evaluation of a fine-tuning run. The
    switch is the env step of the first update (0 for methods that update from the start)."""
    records = read_metrics(run_dir)
    warmup = [r for r in records if r["phase"] == "warmup"]
    train = [r for r in records if r["phase"] not in TRAINING_PHASES_EXCLUDED]
    rows = []
    for e in (r for r in records if r["phase"] == "eval"):
        step = e["env_steps"]
        rows.append(
            [
                step,
                *_evaluation(env_name, e),
                e.get("eval_length", math.nan),
                _last_before(train, step, "q_pred"),
                _last_before(train, step, "td_loss"),
                _last_before(train, step, "offline_q"),
                _last_before(train, step, "offline_td"),
            ]
        )
    return (warmup[-1]["env_steps"] if warmup else 0), np.asarray(rows, dtype=np.float64)


def pretrain_curve(run_dir: Path, env_name: str) -> np.ndarray:
    records = read_metrics(run_dir)
    train = [r for r in records if r["phase"] == "pretrain"]
    rows = [
        [
            e["env_steps"],
            *_evaluation(env_name, e),
            e.get("eval_length", math.nan),
            _last_before(train, e["env_steps"], "q_pred"),
            _last_before(train, e["env_steps"], "alpha"),
        ]
        for e in records
        if e["phase"] == "eval"
    ]
    return np.asarray(rows, dtype=np.float64)


def write_curve(path: Path, header: dict, columns: tuple[str, ...], rows: np.ndarray) -> None:
    """A tab-separated file: `# key=value` lines, the column names, one row per evaluation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {k}={v}" for k, v in header.items()] + ["\t".join(columns)]
    lines += ["\t".join(f"{x:.6g}" for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def read_curve(path: Path) -> tuple[dict, np.ndarray]:
    """(header, {column: values}) of a file `write_curve` wrote."""
    header, names, rows = {}, None, []
    for line in Path(path).read_text().splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition("=")
            header[key] = value
        elif names is None:
            names = line.split("\t")
        elif line.strip():
            rows.append([float(x) for x in line.split("\t")])
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(names))
    return header, {name: table[:, i] for i, name in enumerate(names)}


def export_curves(run_dir: Path, out_dir: Path, commit: str = "") -> list[Path]:
    """Curve files of every finished run (a `done.json`) under an experiment's run dir."""
    written = []
    for done in sorted(Path(run_dir).glob("*/seed*/done.json")):
        run = done.parent
        config = _read_yaml(run / "config.yaml")
        env_name = config["env"]["name"]
        group, seed = run.parent.name, int(run.name.removeprefix("seed"))
        # The commit the run finished at (the experiment records it), else the one given.
        made_at = _read_done(done).get("commit") or commit
        header = {"env": env_name, "run": f"{group}/{run.name}", "seed": seed, "commit": made_at}
        target = out_dir / group / f"seed{seed}.tsv"
        if group.startswith("pretrain"):
            rows = pretrain_curve(run, env_name)
            header["algorithm"] = config["offline"]["algorithm"]
            write_curve(target, header, PRETRAIN_COLUMNS, rows)
        else:
            switch, rows = finetune_curve(run, env_name)
            header.update(method=group, switch_env_steps=switch)
            write_curve(target, header, COLUMNS, rows)
        written.append(target)
    return written


def _read_done(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _read_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


# --- 2. per-seed quantities ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One fine-tuning run read back from its curve file."""

    method: str
    seed: int
    switch: int
    steps: np.ndarray
    score: np.ndarray  # normalized where the env has references, else the return
    offline_td: np.ndarray

    def at(self, budget: float) -> float:
        """The evaluation nearest `budget` env steps (the later one on a tie): methods whose
        grids are offset (256 + 5k i, 1,024 + 5k i) are read at the same budget, not one
        evaluation behind; `step_at` says which evaluation was used."""
        return float(self.score[self._nearest(budget)]) if self.steps.size else math.nan

    def step_at(self, budget: float) -> float:
        return float(self.steps[self._nearest(budget)]) if self.steps.size else math.nan

    def _nearest(self, budget: float) -> int:
        distance = np.abs(self.steps - budget)
        return int(np.flatnonzero(distance == distance.min())[-1])

    @property
    def horizon(self) -> float:
        """Env steps the run went on after its switch."""
        return float(self.steps[-1] - self.switch)

    @property
    def mean_after(self) -> float:
        """The area under the score curve after the switch over its length: the mean score
        after the switch (trapezoids, so uneven grids weigh right)."""
        keep = self.steps >= self.switch
        steps, score = self.steps[keep], self.score[keep]
        if steps.size < 2:
            return float(score[-1]) if score.size else math.nan
        return float(np.trapezoid(score, steps) / (steps[-1] - steps[0]))

    @property
    def final(self) -> float:
        return float(self.score[-1])

    @property
    def at_switch(self) -> float:
        """The last evaluation at or before the switch (the offline policy's score)."""
        before = self.score[self.steps <= self.switch]
        return float(before[-1]) if before.size else math.nan

    @property
    def after(self) -> np.ndarray:
        return self.score[self.steps > self.switch]

    @property
    def dip(self) -> float:
        """How far below its switch score the run fell afterwards (0: never below)."""
        after = self.after
        return max(self.at_switch - float(after.min()), 0.0) if after.size else math.nan

    @property
    def back_at(self) -> float:
        """Env steps after the switch until the first evaluation at or above the switch score
        that follows the lowest point after the switch; only after a dip (NaN: no dip, or
        never back)."""
        after_steps, after = self.steps[self.steps > self.switch], self.after
        if not after.size or self.dip <= 0:
            return math.nan
        lowest = int(np.argmin(after))
        back = np.nonzero(after[lowest:] >= self.at_switch)[0]
        return float(after_steps[lowest + back[0]] - self.switch) if back.size else math.inf

    @property
    def max_offline_td(self) -> float:
        td = self.offline_td[(self.steps > self.switch) & np.isfinite(self.offline_td)]
        return float(td.max()) if td.size else math.nan


def load_task(task_dir: Path) -> tuple[str, dict[str, dict[int, Run]]]:
    """(env name, {method: {seed: Run}}) from a task's curve folder."""
    runs: dict[str, dict[int, Run]] = {}
    env_name = ""
    for path in sorted(Path(task_dir).glob("*/seed*.tsv")):
        header, curve = read_curve(path)
        if "method" not in header:  # a pre-training curve
            continue
        env_name = header["env"]
        run = Run(
            method=header["method"],
            seed=int(header["seed"]),
            switch=int(float(header["switch_env_steps"])),
            steps=curve["env_steps"],
            score=task_score(env_name, curve, path),
            offline_td=curve["offline_td"],
        )
        runs.setdefault(run.method, {})[run.seed] = run
    if not runs:
        raise FileNotFoundError(f"{task_dir}: no fine-tuning curve files (*/seed*.tsv)")
    return env_name, runs


def task_score(env_name: str, curve: dict, path: Path) -> np.ndarray:
    """The normalized score of each evaluation of a curve, recomputed from its metric column
    (wsrl_mjx.datasets.scores), or the return for envs without references."""
    refs = scores.references(env_name)
    if refs is None:
        return curve["eval_return"]
    column = f"eval_{refs.metric}"
    if column not in curve:
        raise ValueError(f"{path}: {env_name} is normalized from {column}, which the file lacks")
    return np.asarray([scores.normalize(refs, x) for x in curve[column]])


def paired(runs: dict[str, dict[int, Run]], a: str, b: str) -> list[int]:
    """The seeds both methods finished."""
    return sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
