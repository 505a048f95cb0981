"""What the command line checks and completes before any heavy library is imported, so bad input
is named in about a second instead of after JAX, MuJoCo and Orbax load (4-5 s idle, 15-25 s on
a busy machine): the run dir a command would write (a run already there without `--resume`,
nothing to resume), the input paths it reads, and a fine-tuning's settings inherited from the
pre-training it restores. Only the standard library, YAML and the config schema are used; the
same checks run again, in full, where the run starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wsrl_mjx.config import Config, ConfigError, merge, parse_overrides, read_yaml, unflatten_keys
from wsrl_mjx.runtime.errors import CheckpointError, DatasetError
from wsrl_mjx.runtime.policy import (
    RESUME_MAY_CHANGE,
    check_resume_settings,
    flat_settings,
    load_config,
    seed_configs,
)

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"

# A fine-tuning takes these from its pre-training unless the user sets them: the network (the
# pre-trained parameters have its shapes and meaning) and the scale of the Q-values (discount,
# reward transform; fine-tuning refuses other values). A conflicting explicit value is refused.
INHERITED_KEYS = (
    "agent.actor_hidden",
    "agent.critic_hidden",
    "agent.num_critics",
    "agent.critic_layer_norm",
    "agent.actor_layer_norm",
    "agent.critic_head",
    "agent.std_parameterization",
    "agent.std_min",
    "agent.std_max",
    "agent.discount",
    "env.reward_scale",
    "env.reward_bias",
)


def saved_steps(run_dir: str | Path) -> list[int]:
    """The checkpoint steps a run dir holds (Orbax writes one folder per step, named by it;
    a step half written is a `N.orbax-checkpoint-tmp-*` folder and not counted)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def check_run_dir(run_dir: str | Path, resume: bool) -> None:
    """Refuse a new run over checkpoints and a resume with none, before anything is built."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run dir {path} exists and is not a directory")
    steps = saved_steps(path)
    if resume and not steps:
        raise CheckpointError(f"--resume: no checkpoint in {path / CHECKPOINTS}")
    if not resume and steps:
        raise CheckpointError(
            f"{path} already holds checkpoints; pass --resume to continue that run or choose "
            "another run.run_dir (nothing was overwritten)"
        )


def check_inputs(cfg: Config, command: str) -> None:
    """The files a command reads exist: a pre-training's dataset, a fine-tuning's checkpoint."""
    dataset = cfg.offline.dataset if command == "pretrain" else cfg.finetune.dataset
    if dataset and _looks_like_a_path(dataset) and not Path(dataset).exists():
        raise DatasetError(f"dataset file not found: {dataset}")
    if command == "finetune" and cfg.finetune.checkpoint:
        source = Path(cfg.finetune.checkpoint)
        if not source.exists():
            raise CheckpointError(f"checkpoint not found: {source}")
        run_dir = source.parent if source.name == CHECKPOINTS else source
        if not saved_steps(run_dir):
            raise CheckpointError(f"{source} holds no checkpoint: pass a `pretrain` run dir")


def _looks_like_a_path(name: str) -> bool:
    """A file name, not a Minari dataset id (ids are looked up in Minari's own folder)."""
    return Path(name).suffix.lower() in (".npz", ".h5", ".hdf5") or name.startswith((".", "/"))


def preflight(cfg: Config, command: str, resume: bool) -> None:
    """Every check of a command's run dir and inputs that needs no heavy library."""
    if command in ("online", "pretrain", "finetune", "collect"):
        for seeded in seed_configs(cfg):  # one config per seed, each with its own run dir
            check_run_dir(seeded.run.run_dir, resume)
    check_inputs(cfg, command)


def newest_meta(run_dir: str | Path) -> dict | None:
    """The newest step's metadata as plain JSON (Orbax writes it as a JSON file), or None when
    it does not read back: the full restore then decides."""
    steps = saved_steps(run_dir)
    if not steps:
        return None
    path = Path(run_dir) / CHECKPOINTS / str(steps[-1]) / "meta" / "metadata"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def check_resume(cfg: Config, command: str) -> None:
    """A `--resume` with settings the run may not change is refused here, by the one resume
    rule (`policy.RESUME_MAY_CHANGE`) against the newest step's recorded config; the same
    check runs again on the step restored. Env settings the setup still has to resolve (an
    empty env.name: from the dataset or the checkpoint) are left to that check."""
    if command not in RESUME_MAY_CHANGE:
        return
    rule, unresolved = RESUME_MAY_CHANGE[command], not cfg.env.name
    may_change = lambda k: rule(k) or (unresolved and k.startswith(("env.", "eval.overrides")))  # noqa: E731
    for seeded in seed_configs(cfg):
        meta = newest_meta(seeded.run.run_dir)
        if meta is not None and isinstance(meta.get("config"), dict):
            check_resume_settings(meta["config"], seeded, may_change)


def explicit_keys(path: str | Path | None, overrides: list[str]) -> set[str]:
    """The dotted keys a user set, in the config file or with --set."""
    values = read_yaml(path) or {} if path is not None else {}
    return set(flat_settings(merge(values, parse_overrides(list(overrides)))))


def inherit_pretraining(
    cfg: Config, path: str | Path | None, overrides: list[str]
) -> tuple[Config, dict[str, Any]]:
    """`cfg` with the pre-training's `INHERITED_KEYS` for every one of them the user did not set
    (read from the pre-training's `config.yaml`), and what was inherited; one the user set to
    another value than the pre-training's is refused, naming it."""
    source = Path(cfg.finetune.checkpoint)
    run_dir = source.parent if source.name == CHECKPOINTS else source
    saved_file = run_dir / CONFIG_FILE
    if not saved_file.is_file():  # an older run: the restore names any shape mismatch
        return cfg, {}
    saved = flat_settings(read_yaml(saved_file, "pre-training config") or {})
    now, explicit = flat_settings(cfg), explicit_keys(path, overrides)
    conflicts = [
        f"{k}={now[k]!r} (the pre-training has {saved[k]!r})"
        for k in INHERITED_KEYS
        if k in explicit and k in saved and saved[k] != now[k]
    ]
    if conflicts:
        raise ConfigError(
            f"fine-tuning {run_dir} with other settings than it was pre-trained with: "
            f"{'; '.join(conflicts)}; leave them unset to inherit them, or pre-train anew"
        )
    inherited = {
        k: saved[k]
        for k in INHERITED_KEYS
        if k not in explicit and k in saved and saved[k] != now[k]
    }
    if not inherited:
        return cfg, {}
    base = unflatten_keys(inherited)
    cfg = load_config(path, overrides, base=base)
    listed = ", ".join(f"{k}={v!r}" for k, v in inherited.items())
    print(f"note: inherited from the pre-training ({saved_file}): {listed}", file=sys.stderr)
    return cfg, inherited
