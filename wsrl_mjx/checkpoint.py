"""Orbax checkpoints of a state pytree plus JSON metadata, with mismatches named on restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp


class CheckpointError(ValueError):
    """A checkpoint that is missing or does not fit the requested run."""


class Checkpointer:
    """`CheckpointManager` over items "state" and "meta" (JSON).

    The state is stored as nested plain dicts without zero-size leaves (mjx.Data has some and
    Orbax refuses them); restore rebuilds the target's tree (dataclasses included) from it.
    """

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=pp.LatestN(keep), create=True, enable_async_checkpointing=False
            ),
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )

    def save(self, step: int, state: Any, meta: dict) -> Path:
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(flatten(state)), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()
        return self.directory / str(int(step))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def meta(self, step: int | None = None) -> dict:
        step = self._require_step(step)
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure, shapes and dtypes of `target` (a real or abstract state)."""
        step = self._require_step(step)
        flat_target = flatten(target)
        check_tree_matches(self._manager.item_metadata(step)["state"], flat_target, self.directory)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, flat_target)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        return unflatten(target, restored["state"]), restored["meta"]

    def restore_item(self, name: str, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore only the top-level entry `name` of the saved state (e.g. "agent").

        Reads just that subtree from disk: a policy can be taken out of an online run's
        checkpoint without materialising its replay buffer.
        """
        step = self._require_step(step)
        saved = self._manager.item_metadata(step)["state"]
        if name not in saved:
            raise CheckpointError(f"checkpoint {self.directory} has no {name!r} entry")
        flat_target = flatten(target)
        check_tree_matches(saved[name], flat_target, self.directory)
        abstract = {name: jax.tree.map(ocp.utils.to_shape_dtype_struct, flat_target)}
        with ocp.PyTreeCheckpointer() as reader:
            restored = reader.restore(
                self.directory / str(step) / "state",
                args=ocp.args.PyTreeRestore(
                    item=abstract,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                    partial_restore=True,
                ),
            )
        return unflatten(target, restored[name]), self.meta(step)

    def _require_step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        return step

    def close(self) -> None:
        self._manager.close()


def _path_str(path: tuple) -> str:
    """ "agent.actor.params..." whether the tree is dataclasses (attributes) or dicts."""
    return ".".join(_names(path))


def _names(path: tuple) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def flatten(tree: Any) -> dict[str, Any]:
    """Nested plain dicts of the non-empty leaves, keyed by attribute/key/index names."""
    nested: dict = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if np.prod(np.shape(leaf)) == 0:
            continue
        *parents, name = _names(path)
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[name] = leaf
    return nested


def unflatten(target: Any, nested: dict) -> Any:
    """Rebuild `target`'s tree from `flatten`'s layout; zero-size leaves are recreated empty."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
    leaves = []
    for path, like in paths_leaves:
        if np.prod(np.shape(like)) == 0:
            leaves.append(jnp.zeros(np.shape(like), like.dtype))
            continue
        node = nested
        for name in _names(path):
            node = node[name]
        leaves.append(node)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _shapes_by_path(tree: Any) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_path_str(path): tuple(np.shape(leaf)) for path, leaf in leaves}


def check_tree_matches(saved: Any, target: Any, where: Path | str) -> None:
    """Raise CheckpointError naming the first missing/extra/reshaped entries."""
    saved_shapes = {k: tuple(getattr(v, "shape", ())) for k, v in _metadata_shapes(saved).items()}
    target_shapes = _shapes_by_path(target)
    problems = [f"missing in checkpoint: {k}" for k in target_shapes if k not in saved_shapes]
    problems += [f"not expected by this run: {k}" for k in saved_shapes if k not in target_shapes]
    problems += [
        f"{k}: checkpoint has shape {saved_shapes[k]}, this run expects {shape}"
        for k, shape in target_shapes.items()
        if k in saved_shapes and saved_shapes[k] != shape
    ]
    if problems:
        shown = "\n  ".join(problems[:8])
        more = f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise CheckpointError(f"checkpoint {where} does not match this run:\n  {shown}{more}")


def _metadata_shapes(saved: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_flatten_with_path(
        saved, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype")
    )[0]
    return {_path_str(path): leaf for path, leaf in leaves}
