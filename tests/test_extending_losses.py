"""Two losses of other shapes than SAC's, registered from this file and trained end to end through
the command line:

- a TD3-style online method fine-tuned from a CalQL checkpoint: a deterministic actor with a
  target actor of its own, handed over from the pre-trained agent by its own `from_pretrained`;
- a faithful ReBRAC offline loss: its critic target penalises the policy's action at s' against
  the dataset's next action (`OfflineTransition.next_action`), then WSRL fine-tunes from it.

Inside the package each would be three files (CONTRIBUTING.md): `agents/<name>.py` (the classes
below), its `Algorithm` / `Method` entries in `methods.py`, its hyperparameters in `config.py`
(constants here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from tests.common import TINY, leaves_equal
from wsrl_mjx import methods
from wsrl_mjx.agents.base import apply_gradients, polyak
from wsrl_mjx.agents.networks import make_networks
from wsrl_mjx.agents.sac import SACAgent
from wsrl_mjx.datasets import data
from wsrl_mjx.phases.bridge import restore_pretrained
from wsrl_mjx.phases.finetune import plan_finetune
from wsrl_mjx.phases.setup import setup_finetune
from wsrl_mjx.run import main
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.policy import load_config
from wsrl_mjx.types import AgentState

EXPLORATION_NOISE = 0.1  # TD3's Gaussian noise on the deterministic action while acting
TARGET_NOISE, TARGET_NOISE_CLIP = 0.2, 0.5  # TD3's target policy smoothing
REBRAC_ACTOR_BC, REBRAC_CRITIC_BC = 1.0, 0.5  # ReBRAC's two behaviour penalties (beta_1, beta_2)


def _policy(agent: SACAgent, actor_params, obs: jax.Array) -> jax.Array:
    """The deterministic policy both losses use: tanh of the actor's mean (its std is unused)."""
    mean, _ = agent.networks.actor.apply(actor_params, obs)
    return jnp.tanh(mean)


def _smoothed(agent: SACAgent, actor_params, obs: jax.Array, rng: jax.Array) -> jax.Array:
    action = _policy(agent, actor_params, obs)
    noise = jnp.clip(
        TARGET_NOISE * jax.random.normal(rng, action.shape), -TARGET_NOISE_CLIP, TARGET_NOISE_CLIP
    )
    return jnp.clip(action + noise, -1.0, 1.0)


def _min_target_q(agent: SACAgent, state: AgentState, obs, action, rng) -> jax.Array:
    index = jax.random.randint(rng, (agent.cfg.num_target_critics,), 0, agent.networks.num_critics)
    pair = agent.networks.critic_subset(state.target_critic_params, index)
    return agent.target_critic_subset.apply(pair, obs, action).min(0)


# --- TD3 (online) --------------------------------------------------------------------------------


@struct.dataclass
class TD3Extras:
    target_actor: dict  # TD3's own target policy


@dataclass(frozen=True)
class TD3Agent(SACAgent):
    """TD3 on the project's networks: deterministic tanh(mean) actor, target policy smoothing,
    clipped double Q from two sampled target critics, a target actor, no temperature."""

    def init(self, rng: jax.Array) -> AgentState:
        state = super().init(rng)
        return state.replace(extras=TD3Extras(jax.tree.map(jnp.copy, state.actor.params)))

    def from_pretrained(self, pretrained: AgentState, fresh: AgentState, what: str) -> AgentState:
        """Actor, critics and targets from the checkpoint (any offline loss's); the target
        actor starts as the pre-trained actor; the offline loss's own state stays behind."""
        target_actor = jax.tree.map(jnp.copy, pretrained.actor.params)
        return pretrained.replace(extras=TD3Extras(target_actor))

    def act(self, actor_params, obs, rng, deterministic: bool = False) -> jax.Array:
        action = _policy(self, actor_params, obs)
        if deterministic:
            return action
        noise = EXPLORATION_NOISE * jax.random.normal(rng, action.shape)
        return jnp.clip(action + noise, -1.0, 1.0)

    def td_target(self, state: AgentState, batch, rng: jax.Array) -> jax.Array:
        action_key, index_key = jax.random.split(rng)
        next_action = _smoothed(self, state.extras.target_actor, batch.next_obs, action_key)
        next_q = _min_target_q(self, state, batch.next_obs, next_action, index_key)
        return batch.reward + self.cfg.discount * (1.0 - batch.terminated) * next_q

    def actor_loss(self, actor_params, state: AgentState, batch, rng: jax.Array):
        q = self.q_values(state.critic.params, batch.obs, _policy(self, actor_params, batch.obs))
        loss = -q.mean()
        return loss, {"td3_actor_loss": loss, "td3_actor_q": q.mean()}

    def actor_step(self, state: AgentState, batch, rng: jax.Array):
        grads, metrics = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, rng
        )
        actor = apply_gradients(state.actor, grads, self.actor_optimizer)
        target = polyak(state.extras.target_actor, actor.params, self.cfg.tau)
        return state.replace(actor=actor, extras=TD3Extras(target)), metrics


def make_td3(agent_cfg, offline_cfg, observation_size, action_size) -> TD3Agent:
    return TD3Agent(agent_cfg, make_networks(agent_cfg, action_size), observation_size, action_size)


# --- ReBRAC (offline) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReBRACAgent(SACAgent):
    """ReBRAC: TD3+BC's deterministic actor with a behaviour penalty on the actor (beta_1) and,
    in the critic's target, on the policy's action at s' against the dataset's next action
    (beta_2); LayerNorm critics and the large batch come from the config."""

    def act(self, actor_params, obs, rng, deterministic: bool = False) -> jax.Array:
        return _policy(self, actor_params, obs)

    def critic_penalty(self, next_action: jax.Array, dataset_next_action: jax.Array):
        return REBRAC_CRITIC_BC * jnp.sum((next_action - dataset_next_action) ** 2, axis=-1)

    def td_target(self, state: AgentState, batch, rng: jax.Array) -> jax.Array:
        action_key, index_key = jax.random.split(rng)
        next_action = _smoothed(self, state.actor.params, batch.next_obs, action_key)
        next_q = _min_target_q(self, state, batch.next_obs, next_action, index_key)
        next_q = next_q - self.critic_penalty(next_action, batch.next_action)
        return batch.reward + self.cfg.discount * (1.0 - batch.terminated) * next_q

    def actor_loss(self, actor_params, state: AgentState, batch, rng: jax.Array):
        action = _policy(self, actor_params, batch.obs)
        q = self.q_values(state.critic.params, batch.obs, action).min(0)
        bc = jnp.sum((action - batch.action) ** 2, axis=-1).mean()
        scale = jax.lax.stop_gradient(jnp.abs(q).mean())  # TD3+BC's normalisation
        loss = REBRAC_ACTOR_BC * bc - q.mean() / scale
        return loss, {"rebrac_actor_loss": loss, "rebrac_actor_bc": bc}

    def actor_step(self, state: AgentState, batch, rng: jax.Array):
        grads, metrics = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, rng
        )
        actor = apply_gradients(state.actor, grads, self.actor_optimizer)
        next_action = _policy(self, state.actor.params, batch.next_obs)
        penalty = self.critic_penalty(next_action, batch.next_action).mean()
        return state.replace(actor=actor), {**metrics, "rebrac_critic_penalty": penalty}


def make_rebrac(agent_cfg, offline_cfg, observation_size, action_size) -> ReBRACAgent:
    cfg = dataclasses.replace(agent_cfg, critic_minibatches=1)  # offline: one critic step
    return ReBRACAgent(cfg, make_networks(cfg, action_size), observation_size, action_size)


# --- registered, then trained through the command line -------------------------------------------


@pytest.fixture(scope="module")
def registered():
    methods.register_algorithm(methods.Algorithm("test-td3", make_td3, "TD3", offline=False))
    methods.register_method(
        methods.Method("test-td3", "TD3 from the pre-trained agent", "test-td3", restores=True)
    )
    methods.register_algorithm(methods.Algorithm("test-rebrac", make_rebrac, "ReBRAC"))
    yield
    del methods.ALGORITHMS["test-td3"], methods.METHODS["test-td3"]
    del methods.ALGORITHMS["test-rebrac"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    arrays = data.random_transitions(400, 4, 2, episode_length=20, seed=0)
    return data.save_dataset(
        tmp_path_factory.mktemp("data") / "pm.npz", arrays, {"env": "PointMass"}
    )


def _cli(command: str, *sets: str) -> int:
    argv = [command]
    # 224 env steps: the warmup, then whole chunks (200 would overrun by 12 %, refused)
    tiny = [*TINY, "offline.steps=40", "offline.chunk_length=20", "online.total_env_steps=224"]
    for s in [*tiny, *sets]:
        argv += ["--set", s]
    return main(argv)


def test_td3_fine_tunes_from_a_calql_checkpoint(registered, dataset, tmp_path):
    pre, ft = tmp_path / "calql", tmp_path / "td3"
    assert (
        _cli(
            "pretrain",
            "offline.algorithm=calql",
            f"offline.dataset={dataset}",
            f"run.run_dir={pre}",
        )
        == 0
    )
    sets = [f"finetune.checkpoint={pre}", "finetune.method=test-td3", f"run.run_dir={ft}"]
    cfg = load_config(None, [*TINY, *sets])
    plan = plan_finetune(setup_finetune([cfg]))[0]
    restored, _ = restore_pretrained(pre, plan.agent, "PointMass")
    start = plan.initial_agent
    assert isinstance(plan.agent, TD3Agent) and isinstance(start.extras, TD3Extras)
    assert leaves_equal(start.actor, restored.actor) and leaves_equal(start.critic, restored.critic)
    assert leaves_equal(start.extras.target_actor, restored.actor.params)  # handed over

    assert _cli("finetune", *sets) == 0
    online = [r for r in read_metrics(ft) if r["phase"] == "finetune-test-td3"]
    assert online and all(np.isfinite(r["td3_actor_q"]) for r in online)
    assert max(r["env_steps"] for r in read_metrics(ft)) >= 200


def test_rebrac_penalises_against_the_dataset_next_action(registered, dataset, tmp_path):
    agent = make_rebrac(load_config(None, TINY).agent, None, 4, 2)
    state = agent.init(jax.random.PRNGKey(0))
    batch = data.to_device(data.load_dataset(dataset).arrays, np.zeros(400, np.float32))
    batch = jax.tree.map(lambda x: x[:32], batch)
    rng = jax.random.PRNGKey(1)
    # The target's penalty is exactly beta_2 * |a'_pi - a'_data|^2, a'_data = the next row's action.
    action_key, _ = jax.random.split(rng)
    smoothed = _smoothed(agent, state.actor.params, batch.next_obs, action_key)
    at_policy = agent.td_target(state, batch.replace(next_action=smoothed), rng)
    penalised = agent.td_target(state, batch, rng)
    want = (
        agent.cfg.discount
        * (1 - batch.terminated)
        * agent.critic_penalty(smoothed, batch.next_action)
    )
    np.testing.assert_allclose(at_policy - penalised, want, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(want).max()) > 0

    pre, ft = tmp_path / "rebrac", tmp_path / "wsrl"
    assert (
        _cli(
            "pretrain",
            "offline.algorithm=test-rebrac",
            f"offline.dataset={dataset}",
            f"run.run_dir={pre}",
        )
        == 0
    )
    offline = [r for r in read_metrics(pre) if r["phase"] == "pretrain"]
    assert offline and all(r["rebrac_critic_penalty"] > 0 for r in offline)
    assert (
        _cli("finetune", f"finetune.checkpoint={pre}", "finetune.method=wsrl", f"run.run_dir={ft}")
        == 0
    )
    assert [r for r in read_metrics(ft) if r["phase"] == "finetune-wsrl"]
