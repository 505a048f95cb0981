"""The bridge from a checkpoint to an agent: restore a pre-trained agent for fine-tuning, or
any run's agent to act with elsewhere. Every mismatch is refused by name, nothing is swapped in.
How a pre-trained state becomes the online loss's is the online agent's own `from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax

from wsrl_mjx.agents.base import Agent
from wsrl_mjx.core.environment import check_saved_env
from wsrl_mjx.methods import make_agent, method_loss
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError, check_tree_matches
from wsrl_mjx.runtime.policy import from_dict
from wsrl_mjx.types import AgentState


def checkpoint_dir(path: str | Path) -> Path:
    """Accept a run dir or its checkpoints/ folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


@dataclass(frozen=True)
class Pretrained:
    """A finished pre-training's agent state and checkpoint metadata, read once."""

    directory: Path  # its checkpoints/ folder
    state: AgentState
    meta: dict

    @property
    def run_dir(self) -> Path:
        """The pre-training's run dir (config.yaml, holdout.npz)."""
        d = self.directory
        return d.parent if d.name == "checkpoints" else d


def read_pretrained(path: str | Path, allow_unverified: bool = False) -> Pretrained:
    """The newest checkpoint of a finished pre-training; any other run's is refused by name.
    The offline agent is rebuilt from the checkpoint's own config, so its state (including its
    loss's own `extras`) restores exactly. `allow_unverified`: see `Checkpointer`."""
    directory = checkpoint_dir(path)

    def check(meta: dict) -> None:
        if "algorithm" not in meta:
            raise CheckpointError(
                f"{directory} is not a pre-training checkpoint (it was written by a "
                f"{meta.get('method', 'online')} run); pass a `pretrain` run directory"
            )

    _, state, meta = load_agent(directory, check, allow_unverified)
    done, planned = meta.get("gradient_steps"), meta.get("total_gradient_steps", 0)
    if done is not None and done < planned:  # older checkpoints hold finished runs only
        raise CheckpointError(
            f"{directory} holds an unfinished pre-training (newest intact step: {done} of "
            f"{planned} gradient steps); finish it with `pretrain --resume`"
        )
    return Pretrained(directory, state, meta)


def check_pretrained(pretrained: Pretrained, online_agent: Agent, env_name: str) -> None:
    """Refuse, by name, a pre-trained agent of another env or of other shapes than
    `online_agent`'s (its `from_pretrained` then maps the state onto the online loss)."""
    expected = {
        "env": env_name,
        "observation_size": online_agent.observation_size,
        "action_size": online_agent.action_size,
    }
    directory = pretrained.directory
    check_saved_env(pretrained.meta, expected, f"checkpoint {directory}")
    online_shapes = jax.eval_shape(online_agent.init, jax.random.PRNGKey(0))
    for part in ("actor", "critic", "target_critic_params", "temperature"):
        check_tree_matches(
            getattr(pretrained.state, part), getattr(online_shapes, part), f"{directory} ({part})"
        )


def restore_pretrained(
    path: str | Path, online_agent: Agent, env_name: str
) -> tuple[AgentState, dict]:
    """`read_pretrained` + `check_pretrained`: (state, metadata) for `online_agent`."""
    pretrained = read_pretrained(path)
    check_pretrained(pretrained, online_agent, env_name)
    return pretrained.state, pretrained.meta


def load_agent(
    path: str | Path,
    check: Callable[[dict], None] | None = None,
    allow_unverified: bool = False,
) -> tuple[Agent, AgentState, dict]:
    """(agent, its state, metadata) from the latest checkpoint of any run: pretrain, online
    or finetune; e.g. to act with a trained policy elsewhere (`run maze-datasets --policy`).

    `check(meta)` may refuse the checkpoint before anything is restored. The agent is rebuilt
    from the run's saved config; an online run's replay buffer and env state are not read.
    """
    checkpointer = Checkpointer(checkpoint_dir(path), allow_unverified=allow_unverified)
    meta = checkpointer.meta()
    if check is not None:
        check(meta)
    saved = from_dict(meta["config"])
    loss = meta.get("algorithm") or method_loss(meta.get("method", "sac"))
    agent = make_agent(
        loss, saved.agent, saved.offline, meta["observation_size"], meta["action_size"]
    )
    target = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    if "algorithm" in meta:  # a pre-training checkpoint holds the agent state alone
        state, meta = checkpointer.restore(target)
    else:  # an online run's TrainingState: read its "agent" entry only
        state, meta = checkpointer.restore_item("agent", target)
    checkpointer.close()
    return agent, state, meta
