"""The rules that turn per-seed numbers into a verdict on a claim: holds / does not hold /
cannot tell / cannot tell at this budget. Small pure functions, each tested on hand-made numbers
(tests/test_evidence.py), with every threshold stated here, in advance of any run.

- Per-seed claims (a property of each run, or of each pair of runs on one seed): holds when it
  is true on at least 80 % of the seeds (4 of 5) of every task, does not hold when it is true on
  at most 20 % (1 of 5) of some task, cannot tell otherwise.
- A claim about a recovery after the switch can only fail on runs that went on for the paper's
  recovery window: a run shorter than `RECOVERY_HORIZON` env steps after the switch that has not
  recovered says "cannot tell at this budget", never "does not hold".
- Comparisons are paired: per seed (and task) the difference WSRL - other of the final
  normalized score, its mean over tasks x seeds with a percentile bootstrap CI that resamples the
  seed pairs within each task (so the pairing is kept). "Better" is superiority (the CI above 0);
  "at least as good" is non-inferiority with `MARGIN` (the CI's lower end above -MARGIN; does not
  hold when its upper end is below -MARGIN); "about equal" is equivalence (the CI inside
  [-MARGIN, MARGIN]; does not hold when the CI lies wholly outside it). Each says cannot tell
  otherwise, so a wide CI shows nothing either way.
"""

from __future__ import annotations

import math

import numpy as np

HOLDS, FAILS, CANNOT = "holds", "does not hold", "cannot tell"
CANNOT_AT_BUDGET = "cannot tell at this budget"
HOLD_SHARE, FAIL_SHARE = 0.8, 0.2
MARGIN = 5.0  # normalized points (of D4RL's 0-100 range): the non-inferiority / equivalence margin
# Env steps after the switch a recovery needs before its absence counts: the paper's recoveries
# take tens to hundreds of thousands (door-binary: back above its offline score from ~120k).
RECOVERY_HORIZON = 100_000
BOOTSTRAP_REPS = 10_000
CONFIDENCE = 0.95


def per_seed(count: int, total: int) -> str:
    """A per-seed claim true on `count` of `total` seeds of one task."""
    if total == 0:
        return CANNOT
    share = count / total
    return HOLDS if share >= HOLD_SHARE else FAILS if share <= FAIL_SHARE else CANNOT


def combine(verdicts: list[str]) -> str:
    """Over tasks (or parts of a claim): fails if any part fails, holds if every part holds;
    otherwise the budget is named when a part could not be decided at it."""
    if FAILS in verdicts:
        return FAILS
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return CANNOT_AT_BUDGET if CANNOT_AT_BUDGET in verdicts else CANNOT


def within_budget(verdict: str, horizon: float) -> str:
    """A recovery claim that did not hold on runs shorter than the recovery window: undecided."""
    if verdict != HOLDS and horizon < RECOVERY_HORIZON:
        return CANNOT_AT_BUDGET
    return verdict


def paired_bootstrap(
    differences: np.ndarray, reps: int | None = None, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a [seeds, tasks] matrix of paired differences and its percentile bootstrap CI,
    resampling seeds (the pairs) with replacement within each task."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    n = d.shape[0]
    if n == 0:
        return math.nan, math.nan, math.nan
    reps = reps or BOOTSTRAP_REPS
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(reps, n, d.shape[1]))
    means = np.take_along_axis(np.broadcast_to(d, (reps, *d.shape)), picks, axis=1).mean((1, 2))
    alpha = (1.0 - CONFIDENCE) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(d.mean()), float(lo), float(hi)


def win_rate(differences: np.ndarray, reps: int | None = None, seed: int = 0):
    """The share of paired seeds where WSRL is higher (ties count half), with its paired
    bootstrap CI: the paired counterpart of a probability of improvement."""
    d = np.asarray(differences, dtype=np.float64)
    wins = (d > 0).astype(np.float64) + 0.5 * (d == 0)
    return paired_bootstrap(wins, reps, seed)


def superiority(lo: float, hi: float) -> str:
    """WSRL better: the CI of the paired difference lies above 0 (below: the other is)."""
    return HOLDS if lo > 0 else FAILS if hi < 0 else CANNOT


def non_inferiority(lo: float, hi: float, margin: float = MARGIN) -> str:
    """WSRL at least as good, up to `margin`."""
    return HOLDS if lo > -margin else FAILS if hi < -margin else CANNOT


def equivalence(lo: float, hi: float, margin: float = MARGIN) -> str:
    """About equal, within +-`margin`."""
    if -margin < lo and hi < margin:
        return HOLDS
    return FAILS if lo > margin or hi < -margin else CANNOT
