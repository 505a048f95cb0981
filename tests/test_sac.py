"""SAC math pinned against a NumPy reference written here (docs/algorithm.md, "The losses").

The random draws (noise, sampled critic indices) are reproduced with the same jax.random calls;
every piece of arithmetic is redone in NumPy from the raw parameter arrays.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsrl_mjx.agents.sac import SACAgent, make_sac, split_minibatches
from wsrl_mjx.config import AgentConfig
from wsrl_mjx.types import Transition

from . import np_reference as ref

OBS, ACT, E, B, M = 3, 2, 3, 4, 2
CFG = AgentConfig(
    actor_hidden=(8, 8),
    critic_hidden=(8, 8),
    num_critics=E,
    batch_size=B,
    critic_minibatches=M,
    init_temperature=0.7,
)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent():
    return make_sac(CFG, OBS, ACT)


@pytest.fixture(scope="module")
def state(agent):
    return agent.init(jax.random.PRNGKey(0))


def make_batch(n, seed=1, terminated=None):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    term = np.zeros(n, np.float32) if terminated is None else np.asarray(terminated, np.float32)
    return Transition(
        obs=f(n, OBS),
        action=np.tanh(f(n, ACT)),
        reward=f(n),
        next_obs=f(n, OBS),
        terminated=term,
        truncated=np.zeros(n, np.float32),
    )


def np_td_target(agent_cfg, state, batch, rng):
    action_key, index_key = jax.random.split(rng)
    n = agent_cfg.num_backup_actions if agent_cfg.max_target_backup else 1
    eps = np.asarray(jax.random.normal(action_key, (n, len(batch.reward), ACT)))
    index = np.asarray(jax.random.randint(index_key, (2,), 0, E))
    mean, log_std = ref.actor(state.actor.params, batch.next_obs, CFG)
    next_action, _ = ref.tanh_gaussian(mean[None], log_std[None], eps)
    next_obs = np.broadcast_to(batch.next_obs, (n, *batch.next_obs.shape))
    q = ref.critics(state.target_critic_params, next_obs, next_action, CFG, members=index).min(0)
    return batch.reward + agent_cfg.discount * (1 - batch.terminated) * q.max(0)


# --- tests ----------------------------------------------------------------------------------------


def test_init_temperature_and_entropy_target(agent, state):
    np.testing.assert_allclose(float(agent.alpha(state)), 0.7, rtol=1e-6)
    assert agent.target_entropy == -ACT


def test_target_params_are_copies(state):
    same = jax.tree.map(lambda a, b: a is b, state.critic.params, state.target_critic_params)
    assert not any(jax.tree.leaves(same))


def test_critic_ensemble_matches_numpy(agent, state):
    batch = make_batch(5)
    q = agent.q_values(state.critic.params, batch.obs, batch.action)
    assert q.shape == (E, 5)
    np.testing.assert_allclose(
        q, ref.critics(state.critic.params, batch.obs, batch.action, CFG), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("max_backup", [False, True])
def test_td_target_matches_numpy(agent, state, max_backup):
    cfg = dataclasses.replace(CFG, max_target_backup=max_backup, num_backup_actions=5)
    a = make_sac(cfg, OBS, ACT)
    batch = make_batch(B, terminated=[1, 0, 0, 1])
    rng = jax.random.PRNGKey(7)
    y = a.td_target(state, batch, rng)
    np.testing.assert_allclose(y, np_td_target(cfg, state, batch, rng), rtol=1e-5, atol=1e-5)


def test_terminated_does_not_bootstrap_truncated_does(agent, state):
    batch = make_batch(B, terminated=[1, 0, 1, 0])
    y = np.asarray(agent.td_target(state, batch, jax.random.PRNGKey(3)))
    np.testing.assert_allclose(y[[0, 2]], batch.reward[[0, 2]], rtol=1e-6)
    # Truncation is stored as terminated=0, so those rows bootstrap: y != r.
    assert np.all(np.abs(y[[1, 3]] - batch.reward[[1, 3]]) > 1e-6)


def test_critic_loss_matches_numpy(agent, state):
    batch = make_batch(B)
    target = np.linspace(-1, 1, B).astype(np.float32)
    loss, metrics = agent.critic_loss(state.critic.params, state, batch, target, None)
    q = ref.critics(state.critic.params, batch.obs, batch.action, CFG)
    np.testing.assert_allclose(loss, ((q - target[None]) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["q_pred"], q.mean(), rtol=1e-5, atol=1e-6)


def test_actor_loss_matches_numpy(agent, state):
    batch = make_batch(B)
    rng = jax.random.PRNGKey(11)
    loss, metrics = agent.actor_loss(state.actor.params, state, batch, rng)
    mean, log_std = ref.actor(state.actor.params, batch.obs, CFG)
    eps = np.asarray(jax.random.normal(rng, mean.shape))
    action, log_prob = ref.tanh_gaussian(mean, log_std, eps)
    q_min = ref.critics(state.critic.params, batch.obs, action, CFG).min(0)  # min over ALL critics
    alpha = ref.softplus(float(state.temperature.params))
    np.testing.assert_allclose(loss, np.mean(alpha * log_prob - q_min), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metrics["entropy"], -log_prob.mean(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("max_backup", [False, True])
def test_temperature_entropy_from_fresh_next_obs_samples(agent, state, max_backup):
    """Official: the temperature is tuned on the entropy of fresh samples at s' from the actor
    before its step (10 per s' with the max-target backup), not the actor loss's samples."""
    cfg = dataclasses.replace(CFG, max_target_backup=max_backup)
    official = SACAgent(cfg, agent.networks, OBS, ACT)
    batch = make_batch(M * B)
    rng = jax.random.PRNGKey(5)
    _, metrics = official.actor_step(state, batch, rng)
    n = cfg.num_backup_actions if max_backup else 1
    eps = np.asarray(jax.random.normal(jax.random.fold_in(rng, 1), (n, M * B, ACT)))
    mean, log_std = ref.actor(state.actor.params, batch.next_obs, CFG)
    _, log_prob = ref.tanh_gaussian(mean[None], log_std[None], eps)
    np.testing.assert_allclose(metrics["temperature_entropy"], -log_prob.mean(), rtol=1e-4)
    assert not np.isclose(metrics["temperature_entropy"], metrics["entropy"], rtol=1e-3)
    # The temperature's step follows that estimate: its gradient is softplus'(theta) (H - H*).
    theta = float(state.temperature.params)
    grad = ref.sigmoid(theta) * (-log_prob.mean() - official.target_entropy)
    moved = official.actor_step(state, batch, rng)[0].temperature.params - theta
    assert np.sign(moved) == -np.sign(grad)


def test_temperature_entropy_actor_batch_is_the_actor_losss(agent, state):
    alt = SACAgent(
        dataclasses.replace(CFG, temperature_entropy="actor_batch"), agent.networks, OBS, ACT
    )
    _, metrics = alt.actor_step(state, make_batch(M * B), jax.random.PRNGKey(5))
    assert metrics["temperature_entropy"] == metrics["entropy"]


def test_temperature_loss_and_direction(agent, state):
    theta = state.temperature.params
    entropy = jnp.asarray(0.3)
    expected = ref.softplus(float(theta)) * (0.3 - agent.target_entropy)
    np.testing.assert_allclose(agent.temperature_loss(theta, entropy), expected, rtol=1e-6)
    # Entropy above target -> gradient descent lowers alpha; below target -> raises it.
    assert jax.grad(agent.temperature_loss)(theta, jnp.asarray(5.0)) > 0
    assert jax.grad(agent.temperature_loss)(theta, jnp.asarray(-5.0)) < 0


def test_update_scans_minibatches_then_actor(agent, state):
    batch = make_batch(M * B)
    rng = jax.random.PRNGKey(5)
    new_state, metrics = jax.jit(agent.update)(state, batch, rng)
    assert int(new_state.step) == 1
    # Re-run the M critic steps by hand: the target must be Polyak-averaged after each one.
    s = state
    keys = jax.random.split(rng, M + 1)
    minibatches = split_minibatches(batch, M)
    for i in range(M):
        mb = jax.tree.map(lambda x, i=i: x[i], minibatches)
        before = s.target_critic_params
        s, _ = agent.critic_step(s, mb, keys[i])
        expected = jax.tree.map(lambda t, o: 0.995 * t + 0.005 * o, before, s.critic.params)
        for got, want in zip(
            jax.tree.leaves(s.target_critic_params), jax.tree.leaves(expected), strict=True
        ):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    s, _ = agent.actor_step(s, batch, keys[M])
    for got, want in zip(
        jax.tree.leaves(new_state.actor.params), jax.tree.leaves(s.actor.params), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_target_critics_sampled_with_replacement():
    indices = [
        tuple(
            np.asarray(jax.random.randint(jax.random.split(jax.random.PRNGKey(k))[1], (2,), 0, E))
        )
        for k in range(60)
    ]
    assert any(a == b for a, b in indices), "a pair of equal indices must be possible"


def test_uniform_std_is_state_independent():
    a = make_sac(dataclasses.replace(CFG, std_parameterization="uniform"), OBS, ACT)
    s = a.init(jax.random.PRNGKey(0))
    _, log_std = a.networks.actor.apply(s.actor.params, make_batch(3).obs)
    np.testing.assert_allclose(log_std, np.zeros((3, ACT)))


# --- official-code fidelity switches (docs/algorithm.md) ------------------------------------------


def _param_count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_actor_layer_norm_parameters_present_only_when_on():
    for on in (True, False):
        a = make_sac(dataclasses.replace(CFG, actor_layer_norm=on), OBS, ACT)
        mlp = a.init(jax.random.PRNGKey(0)).actor.params["params"]["MLP_0"]
        assert sorted(k for k in mlp if k.startswith("LayerNorm")) == (
            ["LayerNorm_0", "LayerNorm_1"] if on else []
        )


def test_shared_critic_head_parameter_count():
    hidden = CFG.critic_hidden
    body = (OBS + ACT) * hidden[0] + hidden[0] + hidden[0] * hidden[1] + hidden[1]
    body += 2 * sum(hidden)  # LayerNorm scale and bias
    head = hidden[-1] + 1
    for layout, expected in (("shared", E * body + head), ("per_member", E * (body + head))):
        a = make_sac(dataclasses.replace(CFG, critic_head=layout), OBS, ACT)
        params = a.init(jax.random.PRNGKey(0)).critic.params
        assert _param_count(params) == expected, layout
        # The sampled target pair has the same layout: 2 bodies and the (shared) head.
        pair = a.networks.critic_subset(params, jnp.array([0, 2]))
        q = a.target_critic_subset.apply(pair, make_batch(3).obs, make_batch(3).action)
        full = a.q_values(params, make_batch(3).obs, make_batch(3).action)
        np.testing.assert_allclose(q, full[jnp.array([0, 2])], rtol=1e-6)


@dataclasses.dataclass(frozen=True)
class ConstantGradientSAC(SACAgent):
    """Every loss is the sum of its parameters: a gradient of exactly 1 on every leaf."""

    def critic_loss(self, critic_params, state, batch, target, rng):
        loss = sum(x.sum() for x in jax.tree.leaves(critic_params))
        return loss, {"critic_loss": loss, "td_loss": loss, "q_pred": loss}

    def actor_loss(self, actor_params, state, batch, rng):
        loss = sum(x.sum() for x in jax.tree.leaves(actor_params))
        return loss, {"actor_loss": loss, "entropy": jnp.zeros(()), "actor_q": loss}

    def temperature_loss(self, temperature, entropy):
        return temperature


@pytest.mark.parametrize("idle, critic_moves, actor_moves", [(True, 4.47, 2.24), (False, 4.0, 1.0)])
def test_official_optimizer_stepping_displacement(idle, critic_moves, actor_moves):
    """UTD 4 on a constant gradient: the official code's zero-gradient steps make Adam move the
    critic ~4.47x and the actor/temperature ~2.24x their learning rate per round (1x/4x without)."""
    cfg = dataclasses.replace(CFG, critic_minibatches=4, idle_optimizer_steps=idle)
    base = make_sac(cfg, OBS, ACT)
    agent = ConstantGradientSAC(base.cfg, base.networks, OBS, ACT)
    batch = make_batch(4 * B)

    def rounds(state, n):
        return jax.lax.scan(
            lambda s, k: (agent.update(s, batch, k)[0], None),
            state,
            jax.random.split(jax.random.PRNGKey(0), n),
        )[0]

    state = jax.jit(rounds, static_argnums=1)(agent.init(jax.random.PRNGKey(0)), 300)
    after = jax.jit(rounds, static_argnums=1)(state, 1)
    moved = lambda a, b, lr: float(  # noqa: E731
        np.abs(np.asarray(jax.tree.leaves(a)[0]) - np.asarray(jax.tree.leaves(b)[0])).mean() / lr
    )
    np.testing.assert_allclose(
        moved(state.critic.params, after.critic.params, cfg.critic_lr), critic_moves, atol=0.01
    )
    np.testing.assert_allclose(
        moved(state.actor.params, after.actor.params, cfg.actor_lr), actor_moves, atol=0.01
    )
    np.testing.assert_allclose(
        moved(state.temperature.params, after.temperature.params, cfg.temperature_lr),
        actor_moves,
        atol=0.01,
    )


def test_target_members_are_drawn_as_the_config_says():
    """The official draw is with replacement (with 2 critics, half the targets take one member
    twice); `without_replacement` gives distinct members, the min over all of them when as many
    are drawn as there are; more than there are is refused."""
    import dataclasses

    from wsrl_mjx.agents.sac import make_sac
    from wsrl_mjx.config import AgentConfig, ConfigError
    from wsrl_mjx.runtime.policy import load_config

    cfg = AgentConfig(actor_hidden=(8,), critic_hidden=(8,), num_critics=2, num_target_critics=2)
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    official = np.stack([make_sac(cfg, 3, 1).draw_members(k) for k in keys])
    repeats = (official[:, 0] == official[:, 1]).mean()
    assert 0.35 < repeats < 0.65
    distinct = dataclasses.replace(cfg, target_critic_draw="without_replacement")
    drawn = np.stack([make_sac(distinct, 3, 1).draw_members(k) for k in keys])
    assert (np.sort(drawn, axis=1) == [0, 1]).all()
    with pytest.raises(ConfigError, match="num_target_critics=3 distinct members"):
        load_config(
            None,
            [
                "agent.num_critics=2",
                "agent.num_target_critics=3",
                "agent.target_critic_draw=without_replacement",
            ],
        )
