"""Run by tests/test_sharding.py as 2 processes x 2 simulated CPU devices, joined by
`jax.distributed.initialize()` on localhost (CPU collectives: gloo): the tiny PointMass loop of
tests/sharding_check.py sharded over the 4 global devices. Each process prints one JSON line
(its view of the cluster and the losses); the test compares them with 1 process x 4 devices.

Environment: JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT, JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=0|1,
exactly what `run.distributed=true` reads (see README, "Several devices and hosts").
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()
os.environ["JAX_PLATFORMS"] = "cpu"

from wsrl_mjx.runtime.sharding import initialize_distributed  # noqa: E402

initialize_distributed()  # before any other JAX work, as `run.distributed=true` does

import jax  # noqa: E402
import numpy as np  # noqa: E402

from tests.common import TINY  # noqa: E402
from tests.sharding_check import run  # noqa: E402
from wsrl_mjx.runtime.policy import load_config  # noqa: E402


def compile_then_meet(chunks, state) -> tuple:
    """Compile both chunks (ahead of time), then wait for the other process: gloo gives up
    connecting after 30 s, and on a busy machine one process can finish compiling much later
    than the other."""
    warmup, online = chunks
    warmup = warmup.lower(state, None).compile()
    # The online chunk's first input is the warmup's output (its layout, zero-size leaves too).
    online = online.lower(warmup.out_info[0], None).compile()
    client = jax._src.distributed.global_state.client  # the barrier JAX's own tests use
    client.wait_at_barrier("chunks_compiled", 900_000)
    return warmup, online


def main() -> None:
    cfg = load_config(None, [*TINY, "agent.critic_minibatches=2"])
    state, losses, _ = run(cfg, jax.device_count(), before_first_call=compile_then_meet)
    # Parameters are replicated: every process holds a full copy of the same values.
    params = [np.asarray(x.addressable_shards[0].data) for x in jax.tree.leaves(state.agent)]
    out = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "cpu_collectives": jax.config.jax_cpu_collectives_implementation,
        "losses": {k: v.tolist() for k, v in losses.items()},
        "params_sum": float(sum(np.abs(p).sum() for p in params)),
        "env_steps": int(state.env_steps),
    }
    print(json.dumps(out), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
