"""Agents: SAC (online, WSRL's fine-tuner), CQL/CalQL and IQL (offline and baselines).

Each satisfies the `Agent` protocol; `wsrl_mjx.methods` registers them by name.
"""

from wsrl_mjx.agents.base import ActorCritic, Agent
from wsrl_mjx.agents.cql import CQLAgent, CQLExtras, make_cql
from wsrl_mjx.agents.iql import IQLAgent, IQLExtras, make_iql
from wsrl_mjx.agents.sac import SACAgent, make_sac

__all__ = [
    "ActorCritic",
    "Agent",
    "CQLAgent",
    "CQLExtras",
    "IQLAgent",
    "IQLExtras",
    "SACAgent",
    "make_cql",
    "make_iql",
    "make_sac",
]
