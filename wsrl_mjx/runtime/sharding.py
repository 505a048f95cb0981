"""Work split over a device mesh: plain `jit` + `NamedSharding` (GSPMD), in two layouts.

`SeedSharding` (several seeds, `run.num_seeds` > 1): every array of the seed-stacked training
state is split along its leading seed axis, so each device runs the vmapped program for its own
seeds and nothing is communicated. On a CPU each device is a separate XLA executor: splitting
seeds over `run.num_devices` CPU devices (`request_cpu_devices`) is how one process uses
several cores for small networks, which one XLA CPU program keeps to about one core.

`DataSharding` (one seed): data parallelism over the mesh axis "data". The training state
keeps its single-device layout; only where its arrays live changes:

- env-state leaves (everything in `BatchEnvState` but its rng key) are split along the env axis,
- the replay buffer's storage ([1, capacity, ...] per field) is split along the capacity axis,
- every sampled update batch is constrained to be split along its row axis,
- agent parameters, optimizer states, rng keys, counters and the action rule's state
  (`acting`) are replicated.

The chunk is the same program as on one device; XLA partitions it and inserts the collectives
(the gradient all-reduce of the batch-mean losses, gathers for replay sampling). Random numbers
do not depend on the layout: with `jax_threefry_partitionable` (the default since jax 0.5, kept
on here) a key gives the same bits however the output is sharded. So a sharded run computes the
same losses as a one-device run up to float summation order.

Several hosts: set `run.distributed=true` and start one process per host (see
`initialize_distributed` for the environment it reads). Every process builds the same global
initial state from the same seed and keeps only its own shards; the program and its random
numbers are global, so nothing is folded with the process index.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from wsrl_mjx.config import ConfigError

DATA = "data"
SEEDS = "seed_shards"  # the mesh axis; the vmapped seed axis inside is loops.SEED_AXIS


def request_cpu_devices(num_devices: int) -> None:
    """Ask for `num_devices` CPU devices (only the CPU backend; a GPU or TPU keeps its own).

    Effective only before JAX's backends start (the CLI calls it right after reading the
    config); later, or when XLA_FLAGS already sets a host device count, it does nothing and
    `make_mesh` names the fix if too few devices exist.
    """
    if num_devices <= 1:
        return
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    with contextlib.suppress(RuntimeError):  # raised once the backends have started
        jax.config.update("jax_num_cpu_devices", num_devices)


def initialize_distributed() -> None:
    """`jax.distributed.initialize()` (once per process); it must run before any other JAX call.

    Cluster managers (SLURM, Open MPI, Kubernetes, Cloud TPU) are auto-detected. Elsewhere set
    `JAX_COORDINATOR_ADDRESS=host:port` (read by jax) plus `JAX_NUM_PROCESSES` and
    `JAX_PROCESS_ID` (read here: jax 0.9 takes those two only as arguments).
    """
    if jax.distributed.is_initialized():
        return
    kwargs = {}
    for name, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if os.environ.get(name):
            kwargs[arg] = int(os.environ[name])
    jax.distributed.initialize(**kwargs)
    if jax.process_count() > 1:
        _mjx_data_on_local_device()


def _mjx_data_on_local_device() -> None:
    """`mjx.make_data` without a device puts the new Data on `jax.devices()[0]`, which belongs
    to process 0: every other process would place arrays on a device it cannot address (a
    ValueError, or a segfault inside a vmapped reset). Tasks call it without one (Playground's
    and ours), so default it to this process's first device."""
    from mujoco.mjx._src import io

    resolve = io._resolve_impl_and_device

    def local_default(impl=None, device=None):
        return resolve(impl, device if device is not None else jax.local_devices()[0])

    io._resolve_impl_and_device = local_default


def make_mesh(num_devices: int, axis: str = DATA) -> Mesh:
    """A 1-D mesh with axis `axis` over the first `num_devices` devices (all processes')."""
    available = jax.device_count()
    if not 1 <= num_devices <= available:
        hint = (
            " (CPU devices: set XLA_FLAGS=--xla_force_host_platform_device_count=N, or "
            "jax.config.update('jax_num_cpu_devices', N) before any JAX work)"
            if jax.default_backend() == "cpu"
            else ""
        )
        raise ConfigError(
            f"run.num_devices={num_devices}: this process sees {available} "
            f"{jax.default_backend()} device(s); choose 1..{available}{hint}"
        )
    if jax.process_count() > 1 and num_devices != available:
        raise ConfigError(
            f"run.num_devices={num_devices}: with {jax.process_count()} processes use all "
            f"{available} devices so every process holds shards"
        )
    return Mesh(np.asarray(jax.devices()[:num_devices]), (axis,))


class SeedSharding:
    """Seed-stacked trees (leading seed axis) split over `mesh`: each device holds and runs its
    own seeds. Passed to `make_chunk` with `num_seeds` > 1."""

    def __init__(self, mesh: Mesh, num_seeds: int):
        if num_seeds % mesh.size:
            raise ConfigError(
                f"run.num_seeds={num_seeds} is not divisible by run.num_devices={mesh.size}: "
                "every device runs the same number of seeds"
            )
        self.mesh = mesh
        self.split = NamedSharding(mesh, P(SEEDS))
        self.replicated = NamedSharding(mesh, P())

    def per_device(self, seeded_fn: Callable, aux_axes: Any) -> Callable:
        """`seeded_fn(state, aux)` (vmapped over seeds) run by each device on its own seeds
        (`shard_map`): reductions over the seed axis inside stay on the device, and the program
        holds no cross-device op. `aux_axes`: 0 for per-seed parts of aux, None for shared."""
        aux_specs = jax.tree.map(
            lambda axis: P(SEEDS) if axis == 0 else P(), aux_axes, is_leaf=lambda x: x is None
        )
        return jax.shard_map(
            seeded_fn,
            mesh=self.mesh,
            in_specs=(P(SEEDS), aux_specs),
            out_specs=P(SEEDS),
            check_vma=False,  # plain vmapped code inside; nothing is communicated
        )

    def place_state(self, tree: Any) -> Any:
        """Put a seed-stacked tree onto the mesh, each seed's slice on its device."""
        return jax.tree.map(lambda x: _place(x, self.split), tree)

    def replicate(self, tree: Any) -> Any:
        """Inputs shared by every seed (the retained offline data) on every device."""
        return jax.tree.map(lambda x: _place(x, self.replicated), tree)


def seed_sharding(num_devices: int, num_seeds: int) -> SeedSharding | None:
    """None for one device (the plain vmapped program)."""
    if num_devices == 1:
        return None
    return SeedSharding(make_mesh(num_devices, SEEDS), num_seeds)


class DataSharding:
    """The layout of one run's training state and batches on `mesh`; passed to `make_chunk`."""

    def __init__(self, mesh: Mesh, num_envs: int, batch_rows: int):
        n = mesh.size
        if num_envs % n:
            raise ConfigError(
                f"online.num_envs={num_envs} is not divisible by run.num_devices={n}: "
                "every device steps the same number of envs"
            )
        if not jax.config.jax_threefry_partitionable:
            # Both settings give layout-independent values; this one without gathering keys.
            jax.config.update("jax_threefry_partitionable", True)
        self.mesh = mesh
        self.num_envs = num_envs
        self.replicated = NamedSharding(mesh, P())
        self.split = NamedSharding(mesh, P(DATA))
        # Batch rows not divisible by the device count stay replicated (correct, not parallel).
        self.batch = self.split if batch_rows % n == 0 else self.replicated

    def state_shardings(self, state: Any) -> Any:
        """A pytree of shardings matching a `TrainingState` (concrete or abstract)."""
        n = self.mesh.size

        def env_leaf(x: Any) -> NamedSharding:
            ok = np.ndim(x) >= 1 and np.shape(x)[0] == self.num_envs
            return self.split if ok else self.replicated

        def buffer_leaf(x: Any) -> NamedSharding:
            ok = np.ndim(x) >= 2 and np.shape(x)[1] % n == 0
            return NamedSharding(self.mesh, P(None, DATA)) if ok else self.replicated

        replicate = lambda tree: jax.tree.map(lambda _: self.replicated, tree)  # noqa: E731
        env = jax.tree.map(env_leaf, state.env)
        env = env.replace(rng=replicate(state.env.rng))
        buffer = replicate(state.buffer)
        buffer = buffer.replace(experience=jax.tree.map(buffer_leaf, state.buffer.experience))
        return state.replace(
            agent=replicate(state.agent),
            buffer=buffer,
            env=env,
            rng=replicate(state.rng),
            env_steps=replicate(state.env_steps),
            updates=replicate(state.updates),
            acting=replicate(state.acting),
        )

    # --- inside the jitted chunk --------------------------------------------------------------

    def constrain_state(self, state: Any) -> Any:
        return jax.lax.with_sharding_constraint(state, self.state_shardings(state))

    def constrain_batch(self, batch: Any) -> Any:
        return jax.lax.with_sharding_constraint(batch, self.batch)

    def constrain_replicated(self, tree: Any) -> Any:
        return jax.lax.with_sharding_constraint(tree, self.replicated)

    # --- on the host --------------------------------------------------------------------------

    def place_state(self, state: Any) -> Any:
        """Put a (single-device) training state onto the mesh in this layout."""
        return jax.tree.map(_place, state, self.state_shardings(state))

    def replicate(self, tree: Any) -> Any:
        """Read-only inputs (offline data, guide params, holdout batch) on every device."""
        return jax.tree.map(lambda x: _place(x, self.replicated), tree)


def _place(x: Any, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    # Several processes: each holds the same global value (same seed) and keeps its own shards.
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def data_sharding(num_devices: int, num_envs: int, batch_rows: int) -> DataSharding | None:
    """None for one device (the plain single-device path, unchanged)."""
    if num_devices == 1:
        make_mesh(1)  # still a clear error if there is no device at all
        return None
    return DataSharding(make_mesh(num_devices), num_envs, batch_rows)
