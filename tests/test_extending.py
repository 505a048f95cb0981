"""Extending the project from outside the package: an env, an offline loss and a fine-tuning
method, each registered from this file, then pre-trained on and fine-tuned with through the real
entry points. CONTRIBUTING.md walks through the same three changes made inside the package (at
most 3 files each besides tests and docs)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import pytest
from mujoco_playground._src.mjx_env import State

import envs
from envs.registry import _REGISTRY as ENV_REGISTRY
from tests.common import TINY, leaves_equal
from wsrl_mjx import methods
from wsrl_mjx.agents.networks import make_networks, tanh_gaussian_log_prob
from wsrl_mjx.agents.sac import SACAgent
from wsrl_mjx.config import ConfigError
from wsrl_mjx.datasets import data
from wsrl_mjx.phases.bridge import restore_pretrained
from wsrl_mjx.phases.finetune import plan_finetune, run_finetune
from wsrl_mjx.phases.pretrain import run_pretrain
from wsrl_mjx.phases.setup import setup_finetune
from wsrl_mjx.run import main
from wsrl_mjx.runtime.logger import read_metrics
from wsrl_mjx.runtime.policy import load_config

LINE_SPEED = 0.1  # position change per step at full action
LINE_GOAL = 1.0


class LineTask:
    """A 1-D point that should reach x = 1: Playground's task surface, pure JAX (no physics)."""

    action_size = 1

    def reset(self, rng: jax.Array) -> State:
        x = jax.random.uniform(rng, (), minval=-1.0, maxval=1.0)
        return State(
            data=jnp.zeros(()),
            obs=jnp.stack([x, LINE_GOAL - x]),
            reward=jnp.zeros(()),
            done=jnp.zeros(()),
            metrics={"success": jnp.zeros(())},
            info={},
        )

    def step(self, state: State, action: jax.Array) -> State:
        x = state.obs[0] + LINE_SPEED * action[0]
        close = (jnp.abs(LINE_GOAL - x) < LINE_SPEED).astype(jnp.float32)
        return state.replace(
            obs=jnp.stack([x, LINE_GOAL - x]),
            reward=-jnp.abs(LINE_GOAL - x),
            metrics={"success": close},
        )


def make_line(episode_length: int = 20) -> envs.Env:
    return envs.Env(LineTask(), "test-line", episode_length, has_success=True)


@dataclass(frozen=True)
class SACBCAgent(SACAgent):
    """SAC plus a behaviour-cloning term on the actor (a TD3+BC-like offline loss)."""

    bc_weight: float = 1.0

    def actor_loss(self, actor_params, state, batch, rng):
        loss, metrics = super().actor_loss(actor_params, state, batch, rng)
        mean, log_std = self.networks.actor.apply(actor_params, batch.obs)
        bc = -tanh_gaussian_log_prob(mean, log_std, jnp.clip(batch.action, -0.999, 0.999)).mean()
        return loss + self.bc_weight * bc, {**metrics, "bc_loss": bc}


def make_sacbc(agent_cfg, offline_cfg, observation_size, action_size) -> SACBCAgent:
    cfg = dataclasses.replace(agent_cfg, critic_minibatches=1)
    return SACBCAgent(cfg, make_networks(cfg, action_size), observation_size, action_size)


@pytest.fixture(scope="module")
def registered():
    """The three registrations, undone afterwards so other tests see the stock registries."""
    envs.register("test-line", make_line)
    methods.register_algorithm(methods.Algorithm("test-sacbc", make_sacbc, "SAC + BC"))
    methods.register_method(
        methods.Method("test-sacbc", "keep fine-tuning with SAC+BC", "test-sacbc", restores=True)
    )
    yield
    del ENV_REGISTRY["test-line"]
    del methods.ALGORITHMS["test-sacbc"], methods.METHODS["test-sacbc"]


def test_registered_names_are_valid_config_values_and_in_the_help(registered, capsys):
    cfg = load_config(None, ["offline.algorithm=test-sacbc", "finetune.method=test-sacbc"])
    assert (cfg.offline.algorithm, cfg.finetune.method) == ("test-sacbc", "test-sacbc")
    assert methods.check_registered(cfg) is cfg
    with pytest.raises(ConfigError, match="'test-nope' is not one of .*test-sacbc"):
        methods.check_registered(load_config(None, ["finetune.method=test-nope"]))
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert "test-sacbc: keep fine-tuning with SAC+BC" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method(methods.Method("wsrl", "again", "sac"))
    with pytest.raises(ValueError, match="unknown loss"):
        methods.register_method(methods.Method("test-x", "no such loss", "test-missing"))


def test_new_env_loss_and_method_train_end_to_end(registered, tmp_path):
    arrays = data.random_transitions(400, 2, 1, episode_length=20, seed=0)
    dataset = data.save_dataset(tmp_path / "line.npz", arrays, {"env": "test-line"})
    common = [
        *TINY,
        "env.name=test-line",
        "offline.algorithm=test-sacbc",
        f"offline.dataset={dataset}",
        "offline.steps=40",
        "offline.chunk_length=20",
        "offline.eval_every_steps=20",
    ]
    pre = run_pretrain(load_config(None, [*common, f"run.run_dir={tmp_path / 'pre'}"]))
    assert pre["gradient_steps"] == 40 and len(pre["evals"]) == 2
    logged = [r for r in read_metrics(tmp_path / "pre") if r["phase"] == "pretrain"]
    assert all("bc_loss" in r for r in logged)  # the registered loss is what trained

    ft_cfg = load_config(
        None,
        [
            *common,
            "finetune.method=test-sacbc",
            f"finetune.checkpoint={tmp_path / 'pre'}",
            f"run.run_dir={tmp_path / 'ft'}",
        ],
    )
    plan = plan_finetune(setup_finetune([ft_cfg]))[0]
    restored, _ = restore_pretrained(tmp_path / "pre", plan.agent, "test-line")
    assert isinstance(plan.agent, SACBCAgent)
    assert leaves_equal(plan.initial_agent.actor, restored.actor)  # it starts from pre-training
    result = run_finetune(ft_cfg)
    assert result["env_steps"] >= 200 and result["updates"] > 0
    online = [r for r in read_metrics(tmp_path / "ft") if r["phase"] == "finetune-test-sacbc"]
    assert online and all("bc_loss" in r for r in online)


def test_importing_envs_leaves_the_trainer_unimported():
    code = "import sys, envs; envs.make('PointMass'); print('wsrl_mjx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_new_twin_family_needs_no_change_outside_envs(monkeypatch):
    """A twin family registers its native Gymnasium id with the package that registers it and
    its family name; evaluation in the native env, the dataset-env check's list of twins and the
    normalized scores then know it, with no change in wsrl_mjx/ (the registry owns the rule).
    Test-only family: a line task registered as the twin of Gymnasium's InvertedPendulum-v5."""
    from envs import registry
    from wsrl_mjx.datasets import scores
    from wsrl_mjx.phases import native_eval

    name = "InvertedPendulum-v5"
    monkeypatch.setitem(ENV_REGISTRY, name, lambda **_: envs.base.Env(LineTask(), name, 10))
    monkeypatch.setitem(registry._NATIVE, name, ("gymnasium", "test-family"))
    assert envs.native_package(name) == "gymnasium" and envs.native_family(name) == "test-family"
    assert name in envs.twin_names()
    native = native_eval.native_env(name, {}, 10)  # the native env, found through the registry
    assert native.spec.id == name and native.spec.max_episode_steps == 10
    native.close()
    assert scores.references(name) is None  # no published normalization for this family
    with pytest.raises(ConfigError, match="has no native Gymnasium env.*InvertedPendulum-v5"):
        native_eval.native_env("PointMass", {}, 10)
