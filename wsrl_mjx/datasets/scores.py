"""Normalized scores: 100 x (x - x_random) / (x_expert - x_random), D4RL's convention, where x is
the evaluation number the env's references are for (`References.metric`).

- Locomotion twins (`HalfCheetah-v5`, `Hopper-v5`, `Walker2d-v5`, `Ant-v5`): x is the episode
  return. The references are D4RL's published ones (`d4rl/infos.py`: REF_MIN_SCORE,
  REF_MAX_SCORE), returns of D4RL policies in the v2 env, whose reward the v5 twins keep term
  for term (forward velocity, healthy bonus and control cost with the same weights, 1000-step
  episodes); the twins themselves are described in docs/gymnasium_twins.md.
- Gymnasium-Robotics AntMaze twins (every `AntMaze_*-v4` id, Dense variants included): x is the
  success rate (the share of evaluation episodes that reached the goal, 0-1), references 0 and 1,
  so the score is 100 x success rate. D4RL's antmaze references are also 0 and 1, but applied to
  the return, which there *is* success: a sparse reward that ends the episode at the goal. In
  Gymnasium-Robotics the default `continuing_task=True` keeps the episode running and rewarding
  each step at the goal, and the Dense variants reward exp(-distance), so their returns are not
  success rates; success is, whatever the reward, and it is what the literature's antmaze
  numbers mean.

`normalized_of(env, record)` is the one way reports get a score: it reads the env's metric from
an evaluation record, so a report cannot normalize the wrong number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

import envs

Metric = Literal["return", "success"]


class References(NamedTuple):
    random: float  # the metric's value for random behaviour (score 0)
    expert: float  # ... and for expert behaviour (score 100)
    metric: Metric = "return"  # which evaluation number they normalize


D4RL_REFERENCES: dict[str, References] = {
    # mean return of uniform random actions / of D4RL's expert (fully trained SAC) policy
    "HalfCheetah-v5": References(random=-280.178953, expert=12135.0),
    "Hopper-v5": References(random=-20.272305, expert=3234.3),
    "Walker2d-v5": References(random=1.629008, expert=4592.3),
    "Ant-v5": References(random=-325.6, expert=3879.7),
}
SUCCESS_REFERENCES = References(random=0.0, expert=1.0, metric="success")
# The normalized score of D4RL's own `medium` datasets (their episodes' mean return, v2): what a
# medium dataset made here aims at with collect.medium_target=d4rl. D4RL stopped its SAC at
# "about a third of expert" by return, which is not a third of the normalized range: on Hopper a
# third of the range (33.3) is what standing still earns (31.3), D4RL's medium hops at 44.
D4RL_MEDIUM_SCORES: dict[str, float] = {
    "HalfCheetah-v5": 40.7,
    "Hopper-v5": 44.3,
    "Walker2d-v5": 62.1,
}


def references(env_name: str) -> References | None:
    """The env's references, or None for envs without a published normalization."""
    if envs.native_family(env_name) == "antmaze":  # the registry owns which ids are AntMaze's
        return SUCCESS_REFERENCES
    return D4RL_REFERENCES.get(env_name)


def _refs(env_name: str) -> References:
    refs = references(env_name)
    if refs is None:
        raise ValueError(
            f"no reference returns for env {env_name!r}: normalized scores exist for "
            f"{', '.join(sorted(D4RL_REFERENCES))} and the AntMaze_*-v4 twins"
        )
    return refs


def normalize(refs: References, value: float) -> float:
    """100 x (value - random) / (expert - random); `value` is the metric `refs` are for."""
    return 100.0 * (value - refs.random) / (refs.expert - refs.random)


def normalized_of(env_name: str, record: Mapping, prefix: str = "") -> float | None:
    """The normalized score of an evaluation record, from its `prefix + metric` entry (e.g.
    `eval_success` of a logged AntMaze evaluation with prefix "eval_"); None when the env has no
    references or the record lacks that metric (None or NaN)."""
    refs = references(env_name)
    value = None if refs is None else record.get(prefix + refs.metric)
    if value is None or value != value:  # NaN: no such measurement
        return None
    return normalize(refs, float(value))


def normalized_score(env_name: str, episode_return: float) -> float:
    """The normalized score of a mean return (ValueError for an env without return references,
    e.g. AntMaze, whose score comes from the success rate: use `normalized_of`)."""
    return normalize(_return_refs(env_name), episode_return)


def return_at(env_name: str, score: float) -> float:
    """The return whose normalized score is `score` (the inverse of `normalized_score`)."""
    refs = _return_refs(env_name)
    return refs.random + score / 100.0 * (refs.expert - refs.random)


def _return_refs(env_name: str) -> References:
    refs = _refs(env_name)
    if refs.metric != "return":
        raise ValueError(
            f"env {env_name!r} is normalized from its {refs.metric} rate, not its return "
            "(wsrl_mjx.datasets.scores.normalized_of)"
        )
    return refs
