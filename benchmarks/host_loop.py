"""The conventional host-driven SAC loop the fused on-device loop is compared against.

Per vector step Python calls a jitted policy, the jitted `BatchEnv.step`, pulls the transition
to host NumPy, adds it to a NumPy ring buffer, samples U batches there and makes one jitted
(donated) `agent.update` call per batch. The loop gets the benefit of the doubt: observations
and env state stay on device for the policy and env calls, and losses are never pulled to the
host.
"""

from __future__ import annotations

import jax
import numpy as np

import envs
from wsrl_mjx.agents.base import Agent
from wsrl_mjx.core.loops import strong_copy
from wsrl_mjx.core.replay import example_transition
from wsrl_mjx.types import TRANSITION_FIELDS, Transition


class HostReplay:
    """A FIFO ring buffer of transitions in host NumPy, uniform sampling with replacement
    (what flashbax's item buffer does on device)."""

    def __init__(self, capacity: int, observation_size: int, action_size: int, seed: int):
        example = example_transition(observation_size, action_size)
        shapes = {k: getattr(example, k).shape for k in TRANSITION_FIELDS}
        self.capacity = capacity
        self.data = {k: np.zeros((capacity, *s), np.float32) for k, s in shapes.items()}
        self.index = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in self.data.values())

    def add(self, batch: dict[str, np.ndarray]) -> None:
        n = len(batch["reward"])
        rows = (self.index + np.arange(n)) % self.capacity
        for k, v in batch.items():
            self.data[k][rows] = v
        self.index = (self.index + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int) -> Transition:
        rows = self.rng.integers(0, self.size, n)
        return Transition(**{k: v[rows] for k, v in self.data.items()})


class HostLoop:
    """SAC driven from Python, one vector step of `batch_env` and `update_rounds` jitted
    updates (of `critic_minibatches` x `batch_size` rows each) per iteration."""

    def __init__(
        self,
        agent: Agent,
        batch_env: envs.BatchEnv,
        *,
        update_rounds: int,
        buffer_capacity: int,
        reward_scale: float = 1.0,
        reward_bias: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.agent, self.update_rounds = agent, update_rounds
        self.rows = agent.cfg.critic_minibatches * agent.cfg.batch_size
        self.reward_scale, self.reward_bias = reward_scale, reward_bias
        self._act = jax.jit(lambda p, obs, k, i: agent.act(p, obs, jax.random.fold_in(k, i)))
        self._random = jax.jit(
            lambda k, i: jax.random.uniform(
                jax.random.fold_in(k, i),
                (batch_env.num_envs, agent.action_size),
                minval=-1.0,
                maxval=1.0,
            )
        )
        self._env_step = jax.jit(batch_env.step)
        self._update = jax.jit(
            lambda s, batch, k, i: agent.update(s, batch, jax.random.fold_in(k, i)),
            donate_argnums=0,
        )
        self.batch_env, self.buffer_capacity = batch_env, buffer_capacity
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Fresh agent, envs and empty buffer; the compiled functions are kept."""
        key = jax.random.PRNGKey(seed)
        self.act_key, self.update_key = jax.random.split(jax.random.fold_in(key, 1))
        agent = self.agent
        self.replay = HostReplay(
            self.buffer_capacity, agent.observation_size, agent.action_size, seed
        )
        self.agent_state = strong_copy(agent.init(jax.random.fold_in(key, 2)))
        self.env_state = strong_copy(self.batch_env.reset(jax.random.fold_in(key, 3)))
        self.iterations = 0
        self.updates = 0

    def run(self, iterations: int, *, learn: bool = True) -> jax.Array:
        """`iterations` vector steps; `learn=False`: uniform random actions and no updates (the
        random warmup). Returns the agent's step counter (to wait on)."""
        agent_state, env_state = self.agent_state, self.env_state
        for _ in range(iterations):
            if learn:
                action = self._act(
                    agent_state.actor.params, env_state.obs, self.act_key, self.iterations
                )
            else:
                action = self._random(self.act_key, self.iterations)
            env_state, step = self._env_step(env_state, action)
            transition = jax.device_get({k: getattr(step, k) for k in TRANSITION_FIELDS})
            transition["reward"] = transition["reward"] * self.reward_scale + self.reward_bias
            self.replay.add(transition)
            for _ in range(self.update_rounds if learn else 0):
                batch = self.replay.sample(self.rows)
                agent_state, _ = self._update(agent_state, batch, self.update_key, self.updates)
                self.updates += 1
            self.iterations += 1
        self.agent_state, self.env_state = agent_state, env_state
        return agent_state.step
