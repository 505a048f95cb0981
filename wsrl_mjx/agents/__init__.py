"""Agents: SAC (online, WSRL's fine-tuner), CQL/CalQL and IQL (offline and baselines)."""

from wsrl_mjx.agents.cql import CQLAgent, make_cql
from wsrl_mjx.agents.iql import IQLAgent, make_iql
from wsrl_mjx.agents.sac import SACAgent, make_sac
from wsrl_mjx.config import AgentConfig, OfflineConfig

ALGORITHMS = ("sac", "cql", "calql", "iql")


def method_loss(method: str) -> str:
    """The loss a fine-tuning method (or an online run, "sac") trains with online: the
    offline algorithms keep their own, every other method is SAC."""
    return method if method in ("cql", "calql", "iql") else "sac"


def make_agent(
    algorithm: str,
    agent_cfg: AgentConfig,
    offline_cfg: OfflineConfig,
    observation_size: int,
    action_size: int,
) -> SACAgent:
    """One entry point for every loss: `sac`, `cql`, `calql` or `iql`."""
    if algorithm == "sac":
        return make_sac(agent_cfg, observation_size, action_size)
    if algorithm in ("cql", "calql"):
        offline = offline_cfg.__class__(**{**offline_cfg.__dict__, "algorithm": algorithm})
        return make_cql(agent_cfg, offline, observation_size, action_size)
    if algorithm == "iql":
        return make_iql(agent_cfg, offline_cfg, observation_size, action_size)
    raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


__all__ = [
    "ALGORITHMS",
    "method_loss",
    "CQLAgent",
    "IQLAgent",
    "SACAgent",
    "make_agent",
    "make_cql",
    "make_iql",
    "make_sac",
]
