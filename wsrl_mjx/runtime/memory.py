"""Memory checked before anything is allocated: a config that cannot fit is refused with the
numbers (a buffer of 10^12 rows, 10^9 envs or a 10^8-wide layer used to die with
RESOURCE_EXHAUSTED after a minute of set-up).

Sizes come from `jax.eval_shape` of the very functions that allocate (agent init, buffer init,
env reset), so nothing is allocated to measure them; free memory is the device's own count
where the backend reports one (GPU, TPU) and on a CPU the tightest of every limit that applies
to the process (MemAvailable, `ulimit -v`/`-d`, its cgroup's memory limit).
"""

from __future__ import annotations

import math
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from wsrl_mjx.config import ConfigError

HEADROOM = 0.8  # the state may use this share of free memory; the chunks need the rest
GIB = 2.0**30


def shape_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of every array `fn()` would return, from its shapes alone (nothing allocated)."""
    shapes = jax.eval_shape(fn)
    return sum(
        math.prod(leaf.shape) * leaf.dtype.itemsize
        for leaf in jax.tree.leaves(shapes)
        if hasattr(leaf, "dtype")
    )


def evaluation_bytes(env: Any, num_episodes: int) -> int:
    """Bytes of the `num_episodes` env states an evaluation resets at once."""
    key = jax.random.PRNGKey(0)
    return shape_bytes(lambda: jax.vmap(env.reset)(jax.random.split(key, num_episodes)))


def free_bytes(device: jax.Device | None = None) -> tuple[int | None, str]:
    """(free bytes, the limit that binds) on `device`: the backend's own count on an
    accelerator; on a CPU the least of the host's MemAvailable, the process's address-space and
    data limits (`ulimit -v` / `-d`, as batch schedulers set them) and its cgroup's memory
    limit (containers, Slurm), each less what is already used against it."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"{device.platform} device"
    limits = [
        (free, where)
        for free, where in (_mem_available(), *_rlimits(), *_cgroup_limits())
        if free is not None
    ]
    return min(limits) if limits else (None, "unknown")


def _mem_available() -> tuple[int | None, str]:
    value = _status_kib(Path("/proc/meminfo"), "MemAvailable")
    return (None if value is None else value, "host memory (MemAvailable)")


def _status_kib(path: Path, field: str) -> int | None:
    """A `Field:   123 kB` line of a /proc file, in bytes."""
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def _rlimits() -> list[tuple[int | None, str]]:
    """What the process may still map under RLIMIT_AS (against VmSize) and RLIMIT_DATA
    (against VmData)."""
    status, found = Path("/proc/self/status"), []
    for name, used_field in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        soft, _ = resource.getrlimit(getattr(resource, name))
        if soft == resource.RLIM_INFINITY:
            continue
        used = _status_kib(status, used_field) or 0
        found.append((max(soft - used, 0), f"the process's {name} limit ({soft / GIB:.3g} GiB)"))
    return found


def _cgroup_limits(root: Path = Path("/sys/fs/cgroup")) -> list[tuple[int | None, str]]:
    """Limit less usage of the process's memory cgroup and each of its parents (v2's
    memory.max / memory.current, v1's memory.limit_in_bytes / memory.usage_in_bytes)."""
    cgroup = Path("/proc/self/cgroup")
    if not cgroup.is_file():
        return []
    found = []
    for line in cgroup.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            base, files = root, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):  # v1
            base, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        node = Path(path.lstrip("/"))
        for folder in (node, *node.parents):
            limit, usage = (_read_int(base / folder / f) for f in files)
            if limit is not None and limit < 2**60:  # "max" or v1's unlimited page-rounded value
                where = f"the cgroup memory limit of /{folder} ({limit / GIB:.3g} GiB)"
                found.append((max(limit - (usage or 0), 0), where))
    return found


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):  # missing, unreadable or "max"
        return None


def check_fits(parts: dict[str, int], hint: str, free: tuple[int | None, str] | None = None):
    """Refuse (ConfigError) when the parts' sum exceeds HEADROOM x the free memory."""
    available, where = free or free_bytes()
    total = sum(parts.values())
    if available is None or total <= HEADROOM * available:
        return
    listed = ", ".join(f"{name} {size / GIB:.3g} GiB" for name, size in parts.items())
    raise ConfigError(
        f"this run needs about {total / GIB:.3g} GiB before its first step ({listed}) but "
        f"{available / GIB:.3g} GiB is free under {where} (at most {HEADROOM:.0%} of it is used "
        f"for the state); {hint}"
    )
