"""Memory checked before anything is allocated: a config that cannot fit is refused with the
numbers (a buffer of 10^12 rows, 10^9 envs or a 10^8-wide layer used to die with
RESOURCE_EXHAUSTED after a minute of set-up).

Sizes come from `jax.eval_shape` of the very functions that allocate (agent init, buffer init,
env reset), so nothing is allocated to measure them; free memory is the device's own count
where the backend reports one (GPU, TPU) and the host's MemAvailable on a CPU.
"""

from __future__ import annotations

import math
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
    """(free bytes, where) on `device`: the backend's count, else the host's MemAvailable."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"{device.platform} device"
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "host memory (MemAvailable)"
    return None, "unknown"


def check_fits(parts: dict[str, int], hint: str, free: tuple[int | None, str] | None = None):
    """Refuse (ConfigError) when the parts' sum exceeds HEADROOM x the free memory."""
    available, where = free or free_bytes()
    total = sum(parts.values())
    if available is None or total <= HEADROOM * available:
        return
    listed = ", ".join(f"{name} {size / GIB:.3g} GiB" for name, size in parts.items())
    raise ConfigError(
        f"this run needs about {total / GIB:.3g} GiB before its first step ({listed}) but "
        f"{available / GIB:.3g} GiB of {where} is free (at most {HEADROOM:.0%} of it is used "
        f"for the state); {hint}"
    )
