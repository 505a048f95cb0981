"""Orbax checkpoints of a state pytree plus JSON metadata, with mismatches named on restore."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from wsrl_mjx.runtime.errors import BrokenCheckpoint, CheckpointError, TrainingDiverged

__all__ = ["BrokenCheckpoint", "CheckpointError", "Checkpointer", "TrainingDiverged"]


T = TypeVar("T")
INTEGRITY = "integrity"  # meta key: {dotted array path: sha256 of its dtype, shape and bytes}
META_DIGEST = "__metadata__"  # in INTEGRITY: sha256 of the rest of the metadata (rng, counters)


class _HoldRecords(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.held.append(record)
        return False


@contextlib.contextmanager
def _held_library_errors():
    """Orbax logs each failed write of its worker threads with a full traceback (one per array
    on a full disk) before the error reaches us: hold its log records while a save runs, drop
    them when the save fails (the CheckpointError says what failed), and let them through when
    it succeeds."""
    hold, logger = _HoldRecords(), logging.getLogger("absl")
    logger.addFilter(hold)
    try:
        yield
    finally:
        logger.removeFilter(hold)
    for record in hold.held:
        logger.handle(record)


class Checkpointer:
    """`CheckpointManager` over items "state" and "meta" (JSON).

    The state is stored as nested plain dicts without zero-size leaves (mjx.Data has some and
    Orbax refuses them); restore rebuilds the target's tree (dataclasses included) from it.
    Each step's meta carries a sha256 per array and one of the rest of the meta: a restore
    verifies them, and a broken newest step (truncated, overwritten, half deleted, or without
    its integrity record) falls back to the newest good one, on stderr. `allow_unverified`
    (`run.allow_unverified_checkpoints`) restores a step whose record is missing, with a note.
    """

    def __init__(self, directory: str | Path, keep: int = 2, allow_unverified: bool = False):
        self.directory = Path(directory).absolute()
        self.allow_unverified = allow_unverified
        self._broken: dict[int, str] = {}  # step -> why, each reported once
        self._fell_back: set[int] = set()
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
        """Save only a finite state (else `TrainingDiverged`, nothing written); a write that
        fails (full disk) raises `CheckpointError` and leaves the older steps as they were."""
        step, flat = int(step), flatten(state)
        digests = self._finite_digests(flat, step)
        plain = json_plain(meta)  # stored exactly as digested
        if step in self._manager.all_steps():  # a resume past a broken step writes it anew
            print(f"note: replacing checkpoint {self.directory}/{step}", file=sys.stderr)
            self._manager.delete(step)
        try:
            with _held_library_errors():
                self._manager.save(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(flat),
                        meta=ocp.args.JsonSave(
                            {**plain, INTEGRITY: {**digests, META_DIGEST: meta_digest(plain)}}
                        ),
                    ),
                    force=True,
                )
                self._manager.wait_until_finished()
        except (OSError, ValueError) as e:  # tensorstore reports I/O errors as ValueError
            for tmp in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
                shutil.rmtree(tmp, ignore_errors=True)  # give the space back
            raise CheckpointError(
                f"could not write checkpoint step {step} in {self.directory} "
                f"({_first_line(e)}); older checkpoints are kept: {self._manager.all_steps()}"
            ) from None
        return self.directory / str(step)

    def _finite_digests(self, flat: dict, step: int) -> dict[str, str]:
        digests, bad = {}, []
        for path, leaf in _leaves(flat).items():
            array = _host(leaf)
            if array is None:  # another host's shards: neither checked nor hashed here
                continue
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                bad.append(path)
            digests[path] = digest(array)
        if bad:
            last = self.latest_step()
            kept = f"last good checkpoint: {self.directory}/{last}" if last else "no checkpoint"
            raise TrainingDiverged(
                f"non-finite values in the state at step {step} ({', '.join(bad[:4])}"
                f"{' ...' if len(bad) > 4 else ''}); not saved ({kept}). "
                "Lower the learning rates or check the rewards/observations."
            )
        return digests

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def discard_after(self, step: int) -> list[int]:
        """Delete the steps newer than `step` (a run about to redo them); returns them."""
        newer = [s for s in self.all_steps() if s > step]
        for s in newer:
            self._manager.delete(s)
        return newer

    def meta(self, step: int | None = None) -> dict:
        """The JSON metadata of `step`, or of the newest step whose metadata reads back."""
        meta = self._first_good(step, self._read_meta)
        meta.pop(INTEGRITY, None)
        return meta

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure, shapes and dtypes of `target` (a real or abstract state):
        `step`, or the newest step that verifies."""
        flat_target = flatten(target)

        def attempt(step: int) -> tuple[Any, dict]:
            meta = self._read_meta(step)
            check_tree_matches(self._saved_tree(step, meta), flat_target, self.directory)
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, flat_target)
            restored = _reading(
                "state",
                lambda: self._manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
                )["state"],
            )
            self._verify(step, restored, meta)
            return unflatten(target, restored), meta

        return self._first_good(step, attempt)

    def restore_item(self, name: str, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore only the top-level entry `name` of the saved state (e.g. "agent").

        Reads just that subtree from disk: a policy can be taken out of an online run's
        checkpoint without materialising its replay buffer.
        """
        flat_target = flatten(target)

        def attempt(step: int) -> tuple[Any, dict]:
            meta = self._read_meta(step)
            saved = self._saved_tree(step, meta)
            if name not in saved:
                raise CheckpointError(f"checkpoint {self.directory} has no {name!r} entry")
            check_tree_matches(saved[name], flat_target, self.directory)
            abstract = {name: jax.tree.map(ocp.utils.to_shape_dtype_struct, flat_target)}

            def read() -> dict:
                with ocp.PyTreeCheckpointer() as reader:
                    return reader.restore(
                        self.directory / str(step) / "state",
                        args=ocp.args.PyTreeRestore(
                            item=abstract,
                            restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                            partial_restore=True,
                        ),
                    )

            restored = _reading("state", read)
            self._verify(step, restored, meta)
            return unflatten(target, restored[name]), meta

        return self._first_good(step, attempt)

    def _report_strays(self, newest: int | None) -> None:
        """A step name newer than every readable step that is not a step folder (a plain file
        in its place, say) is broken too: say so once, rather than fall back in silence."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if not path.name.isdigit() or path.is_dir():
                continue
            s = int(path.name)
            if s not in self._broken and (newest is None or s > newest):
                self._broken[s] = "not a checkpoint folder"
                print(
                    f"warning: checkpoint {path} is not a checkpoint folder: ignored",
                    file=sys.stderr,
                )

    def _first_good(self, step: int | None, attempt: Callable[[int], T]) -> T:
        """`attempt(step)`, or (no step given) on each step newest first until one is intact;
        each broken step is reported once on stderr. A mismatch with the run is not
        "broken": it raises at once, as older steps of the same run would not fit either."""
        steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
        self._report_strays(steps[0] if steps else None)
        if not steps:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        for s in steps:
            if s in self._broken:
                continue
            try:
                result = attempt(s)
            except BrokenCheckpoint as e:
                self._broken[s] = str(e)
                print(f"warning: checkpoint {self.directory}/{s} is broken: {e}", file=sys.stderr)
                continue
            if s != steps[0] and s not in self._fell_back:
                self._fell_back.add(s)
                print(
                    f"warning: restored the older checkpoint {self.directory}/{s} instead",
                    file=sys.stderr,
                    flush=True,
                )
            return result
        why = "; ".join(f"step {s}: {self._broken[s]}" for s in steps)
        raise CheckpointError(f"no intact checkpoint in {self.directory} ({why})")

    def _read_meta(self, step: int) -> dict:
        meta = _reading(
            "metadata",
            lambda: self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )["meta"],
        )
        if not isinstance(meta, dict):
            raise BrokenCheckpoint(f"metadata is {type(meta).__name__}, not a JSON object")
        record = meta.get(INTEGRITY)
        if not isinstance(record, dict) or META_DIGEST not in record:
            self._unverified(
                step,
                "no integrity record"
                if record is None
                else ("an integrity record without its metadata checksum"),
            )
            return meta
        rest = {k: v for k, v in meta.items() if k != INTEGRITY}
        if meta_digest(rest) != record[META_DIGEST]:
            raise BrokenCheckpoint("checksum mismatch in its metadata: rng or counters altered")
        return meta

    def _unverified(self, step: int, what: str) -> None:
        """A step that cannot be verified is damaged (its record was removed or cut), unless
        the user asked to restore unverified steps."""
        if not self.allow_unverified:
            raise BrokenCheckpoint(
                f"{what}, so it cannot be verified; to restore it anyway pass "
                "--set run.allow_unverified_checkpoints=true"
            )
        print(
            f"note: checkpoint {self.directory}/{step} has {what}: restored unverified "
            "(run.allow_unverified_checkpoints)",
            file=sys.stderr,
        )

    def _saved_tree(self, step: int, meta: dict) -> Any:
        """Orbax's record of the saved arrays, checked against the checksum list written with
        them: a deleted or rewritten _METADATA is damage, not a config mismatch."""
        saved = _reading("array metadata", lambda: self._manager.item_metadata(step)["state"])
        if INTEGRITY in meta:
            paths = set(_metadata_shapes(saved)) if saved is not None else set()
            lost = sorted(set(meta[INTEGRITY]) - paths - {META_DIGEST})
            if lost:
                raise BrokenCheckpoint(f"array metadata lacks {len(lost)} saved arrays ({lost[0]})")
        if saved is None:
            raise BrokenCheckpoint("no array metadata")
        return saved

    def _verify(self, step: int, restored: Any, meta: dict) -> None:
        digests = meta.get(INTEGRITY)
        if not isinstance(digests, dict):  # allowed unverified by `_read_meta`
            return
        unlisted = []
        for path, leaf in _leaves(restored).items():
            array = _host(leaf)
            if array is None:
                continue
            if path not in digests:
                unlisted.append(path)
            elif digest(array) != digests[path]:
                raise BrokenCheckpoint(f"checksum mismatch in {path}: the data was altered")
        if unlisted:
            self._unverified(step, f"no checksum for {len(unlisted)} arrays ({unlisted[0]})")

    def close(self) -> None:
        self._manager.close()


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether a run dir holds a checkpoint: a killed run to resume, not a fresh one."""
    checkpointer = Checkpointer(Path(run_dir) / "checkpoints")
    try:
        return checkpointer.latest_step() is not None
    finally:
        checkpointer.close()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _reading(what: str, read: Callable[[], T]) -> T:
    """`read()`, with any failure to read back (Orbax, tensorstore, JSON) as BrokenCheckpoint."""
    try:
        return read()
    except CheckpointError:
        raise
    except Exception as e:  # the library raises many types for a damaged file
        raise BrokenCheckpoint(
            f"cannot read its {what}: {type(e).__name__}: {_first_line(e)}"
        ) from None


def json_plain(meta: dict) -> dict:
    """The metadata in JSON's own types (NumPy scalars and arrays as numbers and lists, tuples
    as lists, anything else as its text), so it reads back exactly as it is digested."""

    def convert(x: Any) -> Any:
        return x.tolist() if hasattr(x, "tolist") else str(x)

    return json.loads(json.dumps(meta, default=convert))


def meta_digest(meta: dict) -> str:
    """sha256 of JSON-typed metadata, keys sorted."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def digest(array: np.ndarray) -> str:
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _host(leaf: Any) -> np.ndarray | None:
    if not getattr(leaf, "is_fully_addressable", True):
        return None
    return np.asarray(leaf)


def _leaves(tree: Any) -> dict[str, Any]:
    return {_path_str(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


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
