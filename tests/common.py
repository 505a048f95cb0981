"""Shared by the tests: the tiny PointMass run every loop test starts from, tree comparison."""

import jax
import numpy as np

# 4 envs, 20-step episodes, 16-unit networks: compiles and runs in seconds on CPU.
TINY = [
    "env.name=PointMass",
    "env.episode_length=20",
    "agent.actor_hidden=[16,16]",
    "agent.critic_hidden=[16,16]",
    "agent.num_critics=2",
    "agent.batch_size=16",
    "online.num_envs=4",
    "online.warmup_steps=40",
    "online.chunk_length=10",
    "online.update_rounds=1",
    "online.buffer_capacity=1000",
    "online.total_env_steps=200",
    "eval.num_episodes=2",
    "eval.every_env_steps=100",
    "run.progress=false",
    "run.tensorboard=false",
]


def leaves_equal(a, b) -> bool:
    """Bit-exact equality of two pytrees (same structure, same values)."""
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def dir_bytes(root) -> dict:
    """Every file under `root` (relative path -> bytes), the run lock included (it names the
    last process that wrote the run): to show that a refused command changed nothing."""
    from pathlib import Path

    root = Path(root)
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}
