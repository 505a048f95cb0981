"""envs/ant_goal.py (the low-level ant task behind antmaze data) and loading its policy.

One MJX compile (a vmapped `antgoal` step, ~15 s on CPU); the rest is jnp/NumPy or checkpoint
I/O with tiny networks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import maze, maze_data
from envs.ant_goal import ant_goal_features, torso_upright
from tests.common import TINY, leaves_equal
from wsrl_mjx.config import to_dict
from wsrl_mjx.datasets import data as D
from wsrl_mjx.methods import make_agent
from wsrl_mjx.phases import maze_datasets
from wsrl_mjx.phases.bridge import load_agent
from wsrl_mjx.run import main
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError
from wsrl_mjx.runtime.policy import load_config

MIN_GOALS_REACHED = 4  # behaviour goals the bundled policy reaches in 8 x 400 umaze steps


def _yaw_quat(theta: float) -> np.ndarray:
    return np.array([np.cos(theta / 2), 0.0, 0.0, np.sin(theta / 2)])


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, av, bw, bv = a[0], a[1:], b[0], b[1:]
    return np.concatenate([[aw * bw - av @ bv], aw * bv + bw * av + np.cross(av, bv)])


def _antmaze_obs(rng: np.random.Generator, quat: np.ndarray) -> np.ndarray:
    obs = rng.normal(size=31)
    obs[3:7] = quat / np.linalg.norm(quat)
    return obs


def test_features_are_heading_invariant():
    rng = np.random.default_rng(0)
    for _ in range(5):
        tilt = np.array([1.0, *rng.normal(scale=0.2, size=2), 0.0])
        obs = _antmaze_obs(rng, _quat_mul(_yaw_quat(rng.uniform(-3, 3)), tilt))
        theta = rng.uniform(-np.pi, np.pi)  # rotate the whole world about z by theta
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        turned = obs.copy()
        turned[:2], turned[29:31], turned[15:17] = rot @ obs[:2], rot @ obs[29:31], rot @ obs[15:17]
        turned[3:7] = _quat_mul(_yaw_quat(theta), obs[3:7])
        np.testing.assert_allclose(
            ant_goal_features(jnp.asarray(obs)), ant_goal_features(jnp.asarray(turned)), atol=1e-5
        )


def test_features_layout_at_zero_heading():
    obs = _antmaze_obs(np.random.default_rng(1), np.array([1.0, 0.0, 0.0, 0.0]))
    f = np.asarray(ant_goal_features(jnp.asarray(obs)))
    assert f.shape == (29,)
    np.testing.assert_allclose(f[0], obs[2])  # torso height
    np.testing.assert_allclose(f[1:5], [1, 0, 0, 0], atol=1e-6)  # upright, no yaw
    np.testing.assert_allclose(f[5:13], obs[7:15])  # joint angles
    np.testing.assert_allclose(f[13:27], obs[15:29], rtol=1e-6)  # velocities unrotated
    np.testing.assert_allclose(f[27:], obs[29:31] - obs[:2], rtol=1e-5)  # goal offset
    # a quarter turn left: a goal straight ahead in the world's +y is ahead (+x) for the ant
    obs[3:7], obs[29:31] = _yaw_quat(np.pi / 2), obs[:2] + [0.0, 2.0]
    np.testing.assert_allclose(ant_goal_features(jnp.asarray(obs))[27:], [2.0, 0.0], atol=1e-5)


@pytest.fixture(scope="module")
def stepped():
    """Three antgoal envs after one zero-action step: a target 0.1 m away, an upside-down
    torso, an ordinary start."""
    env = envs.make("antgoal")
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 3))
    xy = states.data.qpos[:, :2]
    goal = states.info["goal"].at[0].set(xy[0] + jnp.array([0.1, 0.0]))
    qpos = states.data.qpos.at[1, 2:7].set(jnp.array([0.3, 0.0, 1.0, 0.0, 0.0]))  # flipped
    states = states.replace(data=states.data.replace(qpos=qpos), info={**states.info, "goal": goal})
    nxt = jax.jit(jax.vmap(env.step))(states, jnp.zeros((3, env.action_size)))
    return env, jax.device_get(states), jax.device_get(nxt)


def test_antgoal_registered_and_shaped(stepped):
    env, before, after = stepped
    assert (env.observation_size, env.action_size, env.episode_length) == (29, 8, 500)
    assert after.obs.shape == (3, 29) and after.reward.shape == (3,)
    with pytest.raises(ValueError, match="unknown override"):
        envs.make("antgoal", goal_distanse=(1.0, 2.0))
    with pytest.raises(ValueError, match="goal_distance"):
        envs.make("antgoal", goal_distance=(3.0, 1.0))


def test_new_target_when_reached(stepped):
    _, before, after = stepped
    assert after.info["targets_reached"].tolist() == [1, 0, 0]
    np.testing.assert_array_equal(after.info["goal"][1:], before.info["goal"][1:])
    dist = np.linalg.norm(after.info["goal"][0] - after.data.qpos[0, :2])
    assert 1.0 <= dist <= 6.0  # drawn afresh from the ant's position, within goal_distance


def test_reward_is_progress_plus_alive_and_flip_terminates(stepped):
    env, before, after = stepped
    assert after.done.tolist() == [0.0, 1.0, 0.0]
    goal = before.info["goal"]
    d0 = np.linalg.norm(before.data.qpos[:, :2] - goal, axis=1)
    d1 = np.linalg.norm(after.data.qpos[:, :2] - goal, axis=1)
    cfg = env.task.config
    np.testing.assert_allclose(after.reward, (d0 - d1) / cfg.ctrl_dt + cfg.alive_bonus, rtol=1e-5)


@pytest.fixture(scope="module")
def ant_run(tmp_path_factory):
    """A checkpoint laid out like an online antgoal run: TrainingState-like {agent, buffer}."""
    cfg = load_config(None, [*TINY, "env.name=antgoal"])
    agent = make_agent("sac", cfg.agent, cfg.offline, 29, 8)
    state = agent.init(jax.random.PRNGKey(3))
    run = tmp_path_factory.mktemp("antgoal_run")
    meta = {"env": "antgoal", "observation_size": 29, "action_size": 8, "config": to_dict(cfg)}
    ckpt = Checkpointer(run / "checkpoints")
    ckpt.save(7, {"agent": state, "buffer": {"obs": np.ones((64, 29), np.float32)}}, meta)
    ckpt.close()
    return run, agent, state


def test_load_agent_reads_the_agent_bit_exactly(ant_run):
    run, _, state = ant_run
    agent, restored, meta = load_agent(run)
    assert leaves_equal(restored, state)
    assert meta["env"] == "antgoal" and agent.observation_size == 29


def test_load_ant_policy_acts_on_antmaze_observations(ant_run):
    run, agent, state = ant_run
    policy_fn, params = maze_datasets.load_ant_policy(run)
    assert leaves_equal(params, state.actor.params)
    obs = jnp.asarray(_antmaze_obs(np.random.default_rng(2), np.array([1.0, 0, 0, 0])))
    expected = agent.act(state.actor.params, ant_goal_features(obs), None, deterministic=True)
    np.testing.assert_array_equal(policy_fn(params, obs), expected)


def test_load_ant_policy_refuses_other_envs(ant_run, tmp_path):
    run, _, state = ant_run
    other = Checkpointer(tmp_path / "checkpoints")
    meta = {**Checkpointer(run / "checkpoints").meta(), "env": "CheetahRun"}
    other.save(1, {"agent": state}, meta)
    other.close()
    with pytest.raises(ValueError, match="needs a policy trained on 'antgoal'"):
        maze_datasets.load_ant_policy(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        maze_datasets.load_ant_policy(tmp_path / "missing")


def test_exported_policy_round_trips(ant_run, tmp_path):
    run, agent, state = ant_run
    path = maze_datasets.export_ant_policy(run, tmp_path / "policy.msgpack")
    policy_fn, params = maze_datasets.load_ant_policy(path)
    assert leaves_equal(params, state.actor.params)
    obs = jnp.asarray(_antmaze_obs(np.random.default_rng(4), np.array([0.9, 0.1, 0.0, 0.3])))
    expected = agent.act(state.actor.params, ant_goal_features(obs), None, deterministic=True)
    np.testing.assert_array_equal(policy_fn(params, obs), expected)
    (tmp_path / "junk.msgpack").write_bytes(b"not a policy")
    with pytest.raises(ValueError, match="not an exported ant policy"):
        maze_datasets.load_ant_policy(tmp_path / "junk.msgpack")


# ------------------------------------------- the bundled low-level policy steering through a maze


@pytest.fixture(scope="module")
def umaze_play_data():
    """8 ants from umaze's 4 "play" corner cells, steered to the other corners for 400 steps
    each by the bundled policy (one compile of the collection scan, ~30 s on CPU)."""
    policy_fn, params = maze_datasets.load_ant_policy()
    return maze_data.collect_antmaze(
        "umaze", policy_fn, params, num_transitions=8 * 400, num_envs=8, seed=0, goals="play"
    )


def test_bundled_policy_walks_the_antmaze(umaze_play_data):
    arrays, meta = umaze_play_data
    assert arrays["observations"].shape == (3200, 31) and arrays["actions"].shape == (3200, 8)
    # Starting only in the corner cells, the ants must walk to visit the corridor cells too.
    assert meta["coverage"] == 1.0
    assert meta["behavior_goals_reached"] >= MIN_GOALS_REACHED
    xy = arrays["observations"][:, :2].reshape(8, 400, 2)
    assert np.linalg.norm(xy[:, -1] - xy[:, 0], axis=1).max() > 4.0  # at least a cell away
    # The walls hold: around the U, never through its middle wall.
    cells = np.asarray(maze.xy_to_cell(xy.reshape(-1, 2), "umaze", maze.SCALING["ant"]))
    assert not maze.get_layout("umaze").walls[cells[:, 0], cells[:, 1]].any()


def test_tipped_over_ants_restart(umaze_play_data):
    arrays, meta = umaze_play_data
    upright = lambda obs: np.asarray(jax.vmap(torso_upright)(jnp.asarray(obs)))
    tipped = upright(arrays["next_observations"]) < 0.3
    assert (upright(arrays["observations"]) >= 0.3).all()  # nobody stays down
    assert arrays["timeouts"][tipped].all()  # the trajectory ends where the ant tips over...
    assert meta["restarts"] == tipped.sum()
    for i in np.flatnonzero(tipped[:-1]):  # ...and the env goes on from a fresh standing start
        np.testing.assert_allclose(arrays["observations"][i + 1, 2:7], [0.75, 1, 0, 0, 0])


def test_cli_writes_an_antmaze_dataset_and_image(umaze_play_data, tmp_path, capsys):
    # Same settings as the fixture (so the compiled collection is reused from the cache).
    code = main(
        ["maze-datasets", "--agent", "ant", "--layouts", "umaze", "--num-transitions", "3200",
         "--num-envs", "8", "--goals", "play", "--out", str(tmp_path), "--save", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    assert "antmaze-umaze-play" in capsys.readouterr().out
    assert (tmp_path / "antmaze_umaze.png").stat().st_size > 10_000
    loaded = D.load_dataset(
        tmp_path / "antmaze-umaze-play.npz", env="antmaze-umaze", observation_size=31, action_size=8
    )
    arrays, meta = umaze_play_data
    assert loaded.size == 3200 and loaded.metadata["restarts"] == meta["restarts"]
    np.testing.assert_array_equal(loaded.arrays["actions"], arrays["actions"])
    assert not (loaded.arrays["terminals"] & loaded.arrays["timeouts"]).any()
