"""The registry: every loss (`ALGORITHMS`) and every fine-tuning method (`METHODS`) is one entry.

The config's choices for `offline.algorithm` and `finetune.method`, the command line's help and
fine-tuning (`wsrl_mjx.phases.finetune`) all read these dicts; nothing else names a method. Adding
one:

- a method that reuses a loss: one `Method` entry here (or `register_method` from your own code);
- a new loss: its agent module in `wsrl_mjx/agents/`, an `Algorithm` entry here, and its
  hyperparameters in `config.py` (CONTRIBUTING.md walks through each).

| method | starts from         | online loss | offline rows per batch | acting           |
|--------|---------------------|-------------|------------------------|------------------|
| wsrl   | pre-trained agent   | SAC         | 0                      | policy (+warmup) |
| calql  | pre-trained agent   | CalQL       | 0 (online MC bound)    | policy           |
| cql    | pre-trained agent   | CQL         | 0                      | policy           |
| iql    | pre-trained agent   | IQL         | 0                      | policy           |
| rlpd   | random init         | SAC         | 50 %                   | policy           |
| jsrl   | random-init learner | SAC         | 0                      | guide roll-in    |
| sac    | random init         | SAC         | 0                      | policy           |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wsrl_mjx.config import AgentConfig, Config, ConfigError, OfflineConfig
from wsrl_mjx.runtime.errors import CheckpointError

if TYPE_CHECKING:  # the registry is read (names, help) before JAX is imported: agents load lazily
    from envs import Env
    from wsrl_mjx.agents.base import Agent
    from wsrl_mjx.core.loops import ActionRule
    from wsrl_mjx.types import AgentState

AgentFactory = Callable[[AgentConfig, OfflineConfig, int, int], "Agent"]
# (online agent, config, env, pre-trained agent state) -> the method's action rule
ActingFactory = Callable[["Agent", "Config", "Env", "AgentState"], "ActionRule"]


@dataclass(frozen=True)
class Algorithm:
    """A loss: `make(agent_cfg, offline_cfg, observation_size, action_size) -> Agent`."""

    name: str
    make: AgentFactory
    summary: str
    offline: bool = True  # valid as offline.algorithm (pre-training)


@dataclass(frozen=True)
class Method:
    """A fine-tuning method: which loss runs online, what it starts from, what it samples and
    how it acts."""

    name: str
    summary: str
    loss: str  # an ALGORITHMS key
    restores: bool = False  # start from the pre-trained agent (else a random init)
    offline_ratio: float = 0.0  # default share of offline rows in each critic minibatch
    # An action rule other than the learner's policy; it gets the pre-trained agent's state.
    acting: ActingFactory | None = None
    # Online CalQL: online rows get MC returns when their episode ends (finetune.online_mc_bound).
    online_mc_bound: bool = False

    @property
    def needs_pretrained(self) -> bool:
        return self.restores or self.acting is not None


def _cql_family(algorithm: str) -> AgentFactory:
    def make(agent: AgentConfig, offline: OfflineConfig, obs: int, act: int) -> Agent:
        from wsrl_mjx.agents.cql import make_cql

        return make_cql(agent, dataclasses.replace(offline, algorithm=algorithm), obs, act)

    return make


def _make_sac(agent: AgentConfig, offline: OfflineConfig, obs: int, act: int) -> Agent:
    from wsrl_mjx.agents.sac import make_sac

    return make_sac(agent, obs, act)


def _make_iql(agent: AgentConfig, offline: OfflineConfig, obs: int, act: int) -> Agent:
    from wsrl_mjx.agents.iql import make_iql

    return make_iql(agent, offline, obs, act)


def _jsrl_guide(agent: Agent, cfg: Config, env: Env, pretrained: AgentState) -> ActionRule:
    """The frozen pre-trained actor guides the first h ~ U{0..H} steps of each episode."""
    import jax.numpy as jnp

    from wsrl_mjx.core.loops import ActionRule, guided_actions

    horizon = cfg.finetune.jsrl_max_guide_steps or env.episode_length
    return ActionRule(
        act=guided_actions(agent, horizon),
        aux=pretrained.actor.params,
        state=jnp.zeros((cfg.online.num_envs,), jnp.int32),
    )


ALGORITHMS: dict[str, Algorithm] = {
    "sac": Algorithm("sac", _make_sac, "high-UTD SAC", offline=False),
    "cql": Algorithm("cql", _cql_family("cql"), "CQL(H) on SAC's networks"),
    "calql": Algorithm("calql", _cql_family("calql"), "CQL with the Monte-Carlo lower bound"),
    "iql": Algorithm("iql", _make_iql, "expectile V, AWR actor"),
}

METHODS: dict[str, Method] = {
    "wsrl": Method(
        "wsrl", "warmup, then SAC from the pre-trained agent; no offline data", "sac", restores=True
    ),
    "calql": Method(
        "calql", "keep fine-tuning with CalQL", "calql", restores=True, online_mc_bound=True
    ),
    "cql": Method("cql", "keep fine-tuning with CQL", "cql", restores=True),
    "iql": Method("iql", "keep fine-tuning with IQL", "iql", restores=True),
    "rlpd": Method(
        "rlpd", "SAC from scratch, half of each batch offline", "sac", offline_ratio=0.5
    ),
    "jsrl": Method("jsrl", "SAC learner, pre-trained guide rolls in", "sac", acting=_jsrl_guide),
    "sac": Method("sac", "SAC from scratch, no offline data", "sac"),
}


def register_algorithm(algorithm: Algorithm) -> None:
    """Add a loss from outside the package (e.g. a test or a user's module)."""
    _register(ALGORITHMS, algorithm.name, algorithm, "algorithm")


def register_method(method: Method) -> None:
    """Add a fine-tuning method from outside the package; its loss must be registered."""
    if method.loss not in ALGORITHMS:
        raise ValueError(f"method {method.name!r}: unknown loss {method.loss!r}")
    _register(METHODS, method.name, method, "method")


def _register(registry: dict, name: str, entry: Any, kind: str) -> None:
    if name in registry:
        raise ValueError(f"{kind} {name!r} is already registered")
    registry[name] = entry


def choices(registry: str) -> tuple[str, ...]:
    """The valid config values: `offline.algorithm` ("offline") or `finetune.method`."""
    if registry == "offline":
        return tuple(name for name, a in ALGORITHMS.items() if a.offline)
    return tuple(METHODS)


def check_registered(cfg: Config) -> Config:
    """`cfg` itself when offline.algorithm and finetune.method name registered entries (the
    config schema sits below the registry, so the command line and experiment files check them
    here, before anything runs); else a ConfigError listing the valid names."""
    for key, value, registry in (
        ("offline.algorithm", cfg.offline.algorithm, "offline"),
        ("finetune.method", cfg.finetune.method, "method"),
    ):
        valid = choices(registry)
        if value not in valid:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(valid)}")
    return cfg


def make_agent(
    algorithm: str,
    agent_cfg: AgentConfig,
    offline_cfg: OfflineConfig,
    observation_size: int,
    action_size: int,
) -> Agent:
    """The agent of a registered loss."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algorithm].make(agent_cfg, offline_cfg, observation_size, action_size)


def offline_rows(method: str | Method, ratio: float | None, batch_size: int) -> int:
    """Offline rows per critic minibatch: the method's default share unless set explicitly."""
    method = METHODS[method] if isinstance(method, str) else method
    ratio = method.offline_ratio if ratio is None else ratio
    rows = int(round(ratio * batch_size))
    if not 0.0 <= ratio < 1.0 or rows >= batch_size:
        raise ConfigError(
            f"finetune.offline_ratio={ratio} leaves no online rows in a batch of {batch_size}; "
            "use a value in [0, 1)"
        )
    return rows


def check_finetune_inputs(cfg: Config, method: Method, rows: int) -> None:
    """A method that starts from or acts with the pre-trained agent needs its checkpoint; one
    that samples offline rows needs data (the checkpoint's dataset, or finetune.dataset)."""
    ft = cfg.finetune
    if ft.checkpoint:
        return
    if method.needs_pretrained:
        raise CheckpointError(
            f"finetune.method={method.name} needs a pre-trained checkpoint: pass --checkpoint DIR"
        )
    if rows and not ft.dataset:
        raise CheckpointError(
            f"finetune.method={method.name} samples offline data: pass --checkpoint DIR (its "
            "dataset is used) or finetune.dataset"
        )


def online_mc_bound(cfg: Config) -> bool:
    """Whether `finetune.method` keeps CalQL's bound online (its online episodes are stored
    with their Monte-Carlo returns, a buffer that runs on one device)."""
    return METHODS[cfg.finetune.method].online_mc_bound and cfg.finetune.online_mc_bound


def method_loss(method: str) -> str:
    """The loss a checkpoint's run trained with online (an online run without a method: SAC)."""
    return METHODS[method].loss if method in METHODS else "sac"


def help_text(registry: str) -> str:
    """One line per entry, for the command line's help."""
    if registry == "offline":
        entries = [(n, ALGORITHMS[n].summary) for n in choices("offline")]
    else:
        entries = [(n, m.summary) for n, m in METHODS.items()]
    return "; ".join(f"{name}: {summary}" for name, summary in entries)
