"""Normalized scores: 100 x (R - R_random) / (R_expert - R_random), D4RL's convention.

The reference returns are D4RL's published ones (`d4rl/infos.py`: REF_MIN_SCORE, REF_MAX_SCORE)
for the Gymnasium v5 twins whose reward is D4RL's v2 reward term for term (forward velocity,
healthy bonus and control cost with the same weights, 1000-step episodes), so a normalized
score here is on the same scale as the offline-to-online literature's. Each reference is a
return of a D4RL policy in the v2 env; docs/locomotion.md says what differs in v5.
"""

from __future__ import annotations

from typing import NamedTuple


class References(NamedTuple):
    random: float  # mean return of uniform random actions
    expert: float  # mean return of D4RL's expert (fully trained SAC) policy


D4RL_REFERENCES: dict[str, References] = {
    "HalfCheetah-v5": References(random=-280.178953, expert=12135.0),
    "Hopper-v5": References(random=-20.272305, expert=3234.3),
    "Walker2d-v5": References(random=1.629008, expert=4592.3),
    "Ant-v5": References(random=-325.6, expert=3879.7),
}


def references(env_name: str) -> References | None:
    """The env's reference returns, or None for envs without a published normalization."""
    return D4RL_REFERENCES.get(env_name)


def normalized_score(env_name: str, episode_return: float) -> float:
    """100 x (R - R_random) / (R_expert - R_random); ValueError for an env without references."""
    refs = references(env_name)
    if refs is None:
        raise ValueError(
            f"no reference returns for env {env_name!r}: normalized scores exist for "
            f"{', '.join(sorted(D4RL_REFERENCES))}"
        )
    return 100.0 * (episode_return - refs.random) / (refs.expert - refs.random)


def normalized_or_none(env_name: str, episode_return: float | None) -> float | None:
    """`normalized_score`, or None for an env without references (or no return)."""
    if episode_return is None or references(env_name) is None:
        return None
    return normalized_score(env_name, episode_return)


def return_at(env_name: str, score: float) -> float:
    """The return whose normalized score is `score` (the inverse of `normalized_score`)."""
    refs = references(env_name)
    if refs is None:
        raise ValueError(f"no reference returns for env {env_name!r}")
    return refs.random + score / 100.0 * (refs.expert - refs.random)
