"""Data parallelism: a run sharded over 4 simulated CPU devices matches the one-device run, and
2 processes x 2 devices joined by jax.distributed match 1 process x 4 devices. Seeds split over
devices: the same as on one device, with no communication. The CLI gets its CPU devices."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.common import TINY
from wsrl_mjx.config import ConfigError
from wsrl_mjx.phases.online import run_online
from wsrl_mjx.runtime.policy import load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def measured():
    # --xla_force_host_platform_device_count only works before jax is imported: a subprocess.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.sharding_check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def distributed():
    """tests/distributed_check.py as 2 processes on localhost: the README's multi-host launch."""
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for i in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(i),
        }
        cmd = [sys.executable, "-m", "tests.distributed_check"]
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    try:  # a process whose partner died is stopped by the coordinator's heartbeat check
        results = [proc.communicate(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    outputs = []
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-4000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


def test_two_processes_match_one_process_with_four_devices(measured, distributed):
    for i, out in enumerate(distributed):
        assert out["process_index"] == i
        assert (out["process_count"], out["device_count"], out["local_device_count"]) == (2, 4, 2)
        assert out["cpu_collectives"] == "gloo"
        assert out["env_steps"] == 60
        for k, one_process in measured["sharded_losses"].items():
            np.testing.assert_allclose(out["losses"][k], one_process, rtol=1e-5, atol=1e-6)
    # Both processes hold the same replicated parameters.
    assert distributed[0]["params_sum"] == distributed[1]["params_sum"]


def test_sharded_losses_and_params_match_one_device(measured):
    m = measured
    assert m["threefry_partitionable"]  # random bits do not depend on the layout
    # Same losses at every iteration (only float summation order differs) ...
    assert m["critic_loss_close"], (m["critic_loss_max_abs"], m["critic_loss_max_rel"])
    assert m["actor_loss_close"], (m["actor_loss_max_abs"], m["actor_loss_max_rel"])
    assert m["critic_loss_n"] == m["actor_loss_n"] == 10
    # ... the same parameters and optimizer states at the end, the same env trajectories.
    assert m["agent_close"], m["agent_max_abs"]
    assert m["env_obs_max_abs"] < 1e-5
    # One compile of the online chunk: the state keeps its layout from call to call.
    assert m["online_chunk_compiles"] == 1


def test_sharded_layout(measured):
    assert measured["params_replicated"]
    assert measured["params_identical_across_devices"]
    assert measured["env_leaves_split"]
    assert measured["buffer_split"]
    assert "online.num_envs=6" in measured["indivisible_envs_error"]
    assert "run.num_devices=4" in measured["indivisible_envs_error"]


def test_seeds_split_over_devices_match_one_device_without_communicating(measured):
    m = measured
    assert m["seeds_losses_shape"] == [2, 20]  # [seeds, iterations]
    # The same per-seed losses and final states as the 2 seeds on one device ...
    assert m["seeds_losses_close"] and m["seeds_state_close"]
    assert m["seeds_losses_differ"]  # ... of two different seeds,
    assert m["seeds_split"]  # each seed's state on its own device,
    # and no cross-device op in the compiled program (data parallelism, for contrast, has them).
    assert m["data_parallel_collectives"] > 0
    assert m["seeds_collectives"] == 0
    assert "run.num_seeds=3 is not divisible by run.num_devices=2" in m["seeds_indivisible_error"]


def test_the_cli_makes_cpu_devices_for_num_devices():
    """`python -m wsrl_mjx.run ... --set run.num_devices=3` on a CPU: the config is read before
    any JAX work (no import starts a backend), so 3 CPU devices exist when the run starts."""
    code = (
        "from wsrl_mjx.run.phase_commands import _load; _load(None, ['run.num_devices=3']); "
        "import jax; print(jax.default_backend(), jax.device_count())"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # no device count set
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["cpu", "3"]


def test_num_devices_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="run.num_devices=0"):
        load_config(None, ["run.num_devices=0"])
    too_many = jax.device_count() + 1
    # Two minibatches: one sampled batch (32 rows) fits the warmup, so the budget is exact.
    overrides = [*TINY, "agent.critic_minibatches=2", f"run.num_devices={too_many}"]
    cfg = load_config(None, [*overrides, f"run.run_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=f"run.num_devices={too_many}"):
        run_online(cfg)
