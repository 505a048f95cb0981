"""CQL, CalQL and IQL losses pinned to NumPy references computed here for a fixed small batch."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from wsrl_mjx.agents.cql import make_cql
from wsrl_mjx.agents.iql import make_iql
from wsrl_mjx.config import AgentConfig, OfflineConfig
from wsrl_mjx.types import OfflineTransition

from . import np_reference as ref

OBS, ACT, E, B, K = 3, 2, 4, 5, 3
CFG = AgentConfig(actor_hidden=(8,), critic_hidden=(8, 8), num_critics=E, batch_size=B)


def make_batch(mc_return):
    rng = np.random.default_rng(0)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return OfflineTransition(
        obs=f(B, OBS),
        action=np.tanh(f(B, ACT)),
        reward=f(B),
        next_obs=f(B, OBS),
        terminated=np.array([0, 0, 1, 0, 0], np.float32),
        truncated=np.zeros(B, np.float32),
        mc_return=np.asarray(mc_return, np.float32),
    )


def np_cql_diff(agent, state, batch, rng, calql):
    uniform_key, pi_key, next_key, index_key = jax.random.split(rng, 4)
    uniform = np.asarray(jax.random.uniform(uniform_key, (K, B, ACT), minval=-1.0, maxval=1.0))
    index = np.asarray(jax.random.randint(index_key, (2,), 0, E))
    mean, log_std = ref.actor(state.actor.params, batch.obs, agent.cfg)
    pi, pi_lp = ref.tanh_gaussian(mean, log_std, np.asarray(jax.random.normal(pi_key, (K, B, ACT))))
    nmean, nlog_std = ref.actor(state.actor.params, batch.next_obs, agent.cfg)
    nxt, nxt_lp = ref.tanh_gaussian(
        nmean, nlog_std, np.asarray(jax.random.normal(next_key, (K, B, ACT)))
    )
    obs_k = np.broadcast_to(batch.obs, (K, B, OBS))
    q = lambda a: ref.critics(state.critic.params, obs_k, a, agent.cfg, members=index)  # noqa: E731
    q_u, q_pi, q_nxt = q(uniform), q(pi), q(nxt)
    if calql:
        q_pi = np.maximum(q_pi, batch.mc_return)
        q_nxt = np.maximum(q_nxt, batch.mc_return)
    cat = np.concatenate([q_u - ACT * np.log(0.5), q_pi - pi_lp, q_nxt - nxt_lp], axis=1)
    q_data = ref.critics(state.critic.params, batch.obs, batch.action, agent.cfg, members=index)
    return np.mean(logsumexp(cat, axis=1) - q_data)


@pytest.mark.parametrize("algorithm", ["cql", "calql"])
def test_cql_critic_loss_matches_numpy(algorithm):
    offline = OfflineConfig(algorithm=algorithm, cql_num_actions=K, cql_weight=5.0)
    agent = make_cql(CFG, offline, OBS, ACT)
    state = agent.init(jax.random.PRNGKey(0))
    # Large MC returns so CalQL's bound is active on part of the samples.
    batch = make_batch([0.0, 5.0, -3.0, 50.0, 1.0])
    target = np.linspace(-1, 1, B).astype(np.float32)
    rng = jax.random.PRNGKey(9)
    loss, metrics = agent.critic_loss(state.critic.params, state, batch, target, rng)
    diff = np_cql_diff(agent, state, batch, rng, calql=algorithm == "calql")
    td = np.mean((ref.critics(state.critic.params, batch.obs, batch.action, CFG) - target) ** 2)
    np.testing.assert_allclose(metrics["cql_diff"], diff, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss, td + 5.0 * diff, rtol=1e-4, atol=1e-5)
    if algorithm == "calql":
        assert 0.0 < float(metrics["calql_bound_rate"]) < 1.0


def test_calql_bound_changes_the_loss_only_when_active():
    offline = OfflineConfig(algorithm="calql", cql_num_actions=K)
    agent = make_cql(CFG, offline, OBS, ACT)
    cql = make_cql(CFG, dataclasses.replace(offline, algorithm="cql"), OBS, ACT)
    state = agent.init(jax.random.PRNGKey(0))
    rng = jax.random.PRNGKey(1)
    low = make_batch([-1e6] * B)  # bound never active -> CalQL == CQL
    d_calql, _ = agent.cql_diff(state.critic.params, state, low, rng)
    d_cql, _ = cql.cql_diff(state.critic.params, state, low, rng)
    np.testing.assert_allclose(d_calql, d_cql, rtol=1e-6)
    high = make_batch([1e3] * B)  # bound always active -> larger logsumexp
    assert agent.cql_diff(state.critic.params, state, high, rng)[0] > d_cql


def test_lagrange_multiplier_rises_when_gap_is_exceeded():
    offline = OfflineConfig(
        algorithm="calql",
        cql_num_actions=K,
        cql_lagrange=True,
        cql_target_gap=-1e3,
        lagrange_lr=1e-2,
    )
    agent = make_cql(CFG, offline, OBS, ACT)
    state = agent.init(jax.random.PRNGKey(0))
    np.testing.assert_allclose(jax.nn.softplus(state.extras.lagrange.params), 1.0, rtol=1e-6)
    new_state, metrics = agent.update(state, make_batch([0.0] * B), jax.random.PRNGKey(2))
    assert float(metrics["cql_diff"]) > -1e3
    assert new_state.extras.lagrange.params > state.extras.lagrange.params


@pytest.mark.parametrize("mode", ["pre_update", "sequential"])
def test_iql_losses_match_numpy(mode):
    offline = OfflineConfig(
        algorithm="iql",
        iql_expectile=0.7,
        iql_temperature=3.0,
        iql_max_weight=2.0,
        iql_update=mode,
    )
    cfg = dataclasses.replace(CFG, num_critics=2)
    agent = make_iql(dataclasses.replace(CFG, num_critics=10), offline, OBS, ACT)
    assert agent.networks.num_critics == 2  # the paper's IQL keeps 2 critics
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batch([0.0] * B)
    _, m = jax.jit(agent.update)(state, batch, jax.random.PRNGKey(0))

    q_t = ref.critics(state.target_critic_params, batch.obs, batch.action, cfg).min(0)
    v = ref.value(state.extras.value.params, batch.obs, cfg)
    u = q_t - v
    np.testing.assert_allclose(
        m["value_loss"], np.mean(np.where(u > 0, 0.7, 0.3) * u**2), rtol=1e-4, atol=1e-6
    )
    # AWR weights and the critic target use V from before the step (official, "pre_update")
    # or the freshly updated V (Kostrikov et al., "sequential").
    new_state = jax.jit(agent.update)(state, batch, jax.random.PRNGKey(0))[0]
    value_params = (state if mode == "pre_update" else new_state).extras.value.params
    assert not np.allclose(  # the two modes really read different value nets
        ref.value(state.extras.value.params, batch.obs, cfg),
        ref.value(new_state.extras.value.params, batch.obs, cfg),
    )
    w = np.minimum(np.exp(3.0 * (q_t - ref.value(value_params, batch.obs, cfg))), 2.0)
    mean, log_std = ref.actor(state.actor.params, batch.obs, cfg)
    log_prob = ref.tanh_gaussian_log_prob(mean, log_std, batch.action)
    np.testing.assert_allclose(m["actor_loss"], -np.mean(w * log_prob), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m["adv_weight"], w.mean(), rtol=1e-4)
    v_next = ref.value(value_params, batch.next_obs, cfg)
    y = batch.reward + 0.99 * (1 - batch.terminated) * v_next
    q = ref.critics(state.critic.params, batch.obs, batch.action, cfg)
    np.testing.assert_allclose(m["critic_loss"], np.mean((q - y) ** 2), rtol=1e-4, atol=1e-5)


def test_offline_agents_share_the_online_state_layout():
    offline = OfflineConfig(algorithm="calql", cql_lagrange=True)
    cql_state = make_cql(CFG, offline, OBS, ACT).init(jax.random.PRNGKey(0))
    from wsrl_mjx.agents.sac import make_sac

    sac_state = make_sac(CFG, OBS, ACT).init(jax.random.PRNGKey(0))
    for part in ("actor", "critic", "target_critic_params", "temperature"):
        a, b = getattr(cql_state, part), getattr(sac_state, part)
        assert jax.tree.structure(a) == jax.tree.structure(b)
        assert [x.shape for x in jax.tree.leaves(a)] == [x.shape for x in jax.tree.leaves(b)]
    assert jnp.ndim(cql_state.extras.lagrange.params) == 0


def test_iql_diagnostics_use_its_own_value_target():
    """The online Q/TD probe regresses IQL's critics on r + gamma V(s'), not on SAC's target."""
    cfg = dataclasses.replace(CFG, num_critics=2)
    agent = make_iql(CFG, OfflineConfig(algorithm="iql"), OBS, ACT)
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batch([0.0] * B)
    d = agent.diagnostics(state, batch, jax.random.PRNGKey(1))
    y = batch.reward + 0.99 * (1 - batch.terminated) * ref.value(
        state.extras.value.params, batch.next_obs, cfg
    )
    q = ref.critics(state.critic.params, batch.obs, batch.action, cfg)
    np.testing.assert_allclose(d["offline_q_target"], y.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d["offline_td"], np.mean((q - y) ** 2), rtol=1e-4, atol=1e-6)


def test_restoring_into_the_online_loss_keeps_drops_or_refuses_its_state():
    from wsrl_mjx.agents.sac import make_sac
    from wsrl_mjx.runtime.checkpoint import CheckpointError

    lagrange = make_cql(CFG, OfflineConfig(cql_lagrange=True), OBS, ACT)
    plain = make_cql(CFG, OfflineConfig(cql_lagrange=False), OBS, ACT)
    pretrained = lagrange.init(jax.random.PRNGKey(0))
    # Same kind of state (CalQL -> CalQL): the multiplier carries over, not a fresh one.
    fresh = lagrange.init(jax.random.PRNGKey(1))
    assert lagrange.from_pretrained(pretrained, fresh, "ckpt").extras is pretrained.extras
    # SAC has no state of its own: the offline loss's is left behind.
    sac = make_sac(CFG, OBS, ACT)
    assert sac.from_pretrained(pretrained, sac.init(jax.random.PRNGKey(1)), "x").extras is None
    # A loss that needs state the checkpoint lacks is refused, not given a fresh one.
    with pytest.raises(
        CheckpointError, match="needs its CQLExtras state but the checkpoint holds nothing"
    ):
        lagrange.from_pretrained(plain.init(jax.random.PRNGKey(0)), fresh, "ckpt")
    iql = make_iql(CFG, OfflineConfig(algorithm="iql"), OBS, ACT).init(jax.random.PRNGKey(0))
    with pytest.raises(CheckpointError, match="holds IQLExtras"):
        lagrange.from_pretrained(iql, fresh, "ckpt")
