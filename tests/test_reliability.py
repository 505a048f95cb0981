"""Nothing lost, nothing silent: one writer per run dir, atomic logs, verified checkpoints with
fallback, exit 2 with a message for bad input. No MJX here: every test runs in seconds."""

import errno
import glob
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from wsrl_mjx.config import ConfigError
from wsrl_mjx.datasets import data, readers
from wsrl_mjx.run import main
from wsrl_mjx.runtime.checkpoint import Checkpointer, CheckpointError, TrainingDiverged
from wsrl_mjx.runtime.logger import Logger, read_metrics
from wsrl_mjx.runtime.policy import check_budget, load_config
from wsrl_mjx.runtime.rundir import LOCK_FILE, RunDirError, claim, exclusive

REPO = Path(__file__).resolve().parents[1]


# --- one writer per run dir ---------------------------------------------------------------------


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/run until killed."""
    run_dir = tmp_path / "run"
    code = (
        "import sys, time; from wsrl_mjx.runtime.rundir import exclusive\n"
        f"with exclusive({str(run_dir)!r}):\n    print('locked', flush=True); time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    yield run_dir, proc
    proc.kill()
    proc.wait()


def test_second_writer_is_refused_naming_the_holder(holder, capsys):
    run_dir, proc = holder
    with pytest.raises(RunDirError, match=f"in use by pid {proc.pid} on "), exclusive(run_dir):
        pass
    # Through the command line: exit 2 before anything is compiled or written.
    assert main(["online", "--set", f"run.run_dir={run_dir}"]) == 2
    err = capsys.readouterr().err
    assert f"pid {proc.pid}" in err and "-c" in err and "started 20" in err
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]


def test_a_second_pipeline_resume_is_refused_and_moves_nothing(holder, capsys):
    """A live pipeline holds its root: `pipeline --resume` on it is refused before collect
    could move the running behaviour/ aside or rewrite data/."""
    run_dir, proc = holder
    (run_dir / "behaviour").mkdir()
    (run_dir / "behaviour" / "metrics.jsonl").write_text("")
    before = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*"))
    argv = [
        "pipeline",
        "--resume",
        "--set",
        f"run.run_dir={run_dir}",
        "--set",
        "env.name=PointMass",
    ]
    assert main(argv) == 2
    assert f"in use by pid {proc.pid}" in capsys.readouterr().err
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")) == before


def test_a_refused_command_puts_the_writers_lock_record_back(tmp_path):
    """The lock names the refused process only while it runs: a check that refuses before the
    run writes (`claim`) leaves run.lock byte-identical; a run that wrote keeps its record."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    writer = b'{"pid": 1, "command": "the run that wrote this dir"}\n'
    (run_dir / LOCK_FILE).write_bytes(writer)
    with pytest.raises(ConfigError), exclusive(run_dir):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()  # meanwhile
        raise ConfigError("refused by a settings check")
    assert (run_dir / LOCK_FILE).read_bytes() == writer
    with exclusive(run_dir):  # ended without writing: nothing to own either
        pass
    assert (run_dir / LOCK_FILE).read_bytes() == writer
    with exclusive(run_dir):
        claim()  # the run wrote: the lock now names it
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_lock_is_released_when_the_holder_is_killed(holder):
    run_dir, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with exclusive(run_dir):  # no stale lock to clean up by hand
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
    with exclusive(run_dir), exclusive(run_dir):  # re-entrant within one process
        pass


# --- the metrics log ----------------------------------------------------------------------------


def write_log(run_dir: Path, steps: list[int], tail: str = "") -> str:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps({"env_steps": s, "phase": "online", "x": s}) + "\n" for s in steps)
    (run_dir / "metrics.jsonl").write_text(text + tail)
    return text + tail


def test_a_kill_during_the_log_rewrite_leaves_the_old_log(tmp_path, monkeypatch):
    before = write_log(tmp_path, [10, 20, 30])

    def killed(*args):
        raise KeyboardInterrupt  # stands in for the process dying before the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        Logger(tmp_path, tensorboard=False, resume_step=20)
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temp file left
    monkeypatch.undo()
    Logger(tmp_path, tensorboard=False, resume_step=20).close()
    assert [r["env_steps"] for r in read_metrics(tmp_path)] == [10, 20]
    assert stat.S_IMODE((tmp_path / "metrics.jsonl").stat().st_mode) == umask_mode()


def umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@pytest.mark.parametrize("line", ["123", '{"env_steps": "abc", "phase": "eval"}', "[1, 2]", "null"])
def test_valid_json_that_is_not_a_record_is_dropped_with_a_warning(tmp_path, line):
    write_log(tmp_path, [10, 20], tail=line)
    with pytest.warns(UserWarning, match=r"dropped 1 unreadable or foreign line\(s\) \(line 3"):
        assert [r["env_steps"] for r in read_metrics(tmp_path)] == [10, 20]


def test_damaged_dataset_metadata_and_holdout_are_named(tmp_path):
    import numpy as np

    from wsrl_mjx.datasets import data
    from wsrl_mjx.phases.setup import load_holdout

    arrays = data.random_transitions(40, 4, 2, episode_length=20)
    np.savez(tmp_path / "list_meta.npz", **arrays, metadata=np.asarray("[1, 2]"))
    with pytest.raises(data.DatasetError, match="'metadata' must be a JSON object"):
        readers.load_any(tmp_path / "list_meta.npz")
    run = tmp_path / "pre"
    run.mkdir()
    np.savez(run / "holdout.npz", **{**arrays, "mc_returns": arrays["rewards"]})
    assert load_holdout(run, 8) is not None
    full = (run / "holdout.npz").read_bytes()
    (run / "holdout.npz").write_bytes(full[: len(full) // 2])  # cut short
    with pytest.raises(data.DatasetError, match="holdout.npz is damaged"):
        load_holdout(run, 8)
    np.savez(run / "holdout.npz", **arrays)  # no mc_returns
    with pytest.raises(data.DatasetError, match="lacks mc_returns"):
        load_holdout(run, 8)


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path):
    write_log(tmp_path, [10, 20], tail='{"env_steps": 30, "pha')
    with pytest.warns(UserWarning, match="dropped 1 unreadable or foreign line"):
        assert [r["env_steps"] for r in read_metrics(tmp_path)] == [10, 20]
    with pytest.warns(UserWarning):
        log = Logger(tmp_path, tensorboard=False, resume_step=100)
    log.log(40, "online", {"x": 40})
    log.close()
    assert [r["env_steps"] for r in read_metrics(tmp_path)] == [10, 20, 40]


# --- checkpoints --------------------------------------------------------------------------------


def state(value: float) -> dict:
    rng = np.random.default_rng(int(value))
    return {
        "agent": {"w": jnp.asarray(rng.standard_normal(1024), jnp.float32), "n": jnp.arange(3)},
        "opt": {"mu": jnp.full((8,), value)},
    }


def like() -> dict:
    return state(0.0)


@pytest.fixture
def two_steps(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    for step in (1, 2):
        ckpt.save(step, state(float(step)), {"step": step})
    ckpt.close()
    return tmp_path / "ckpt"


def data_files(step_dir: Path) -> list[str]:
    return sorted(glob.glob(f"{step_dir}/state/**/d/*", recursive=True), key=os.path.getsize)


def truncate(step_dir: Path) -> None:
    for f in data_files(step_dir):
        os.truncate(f, os.path.getsize(f) // 2)


def flip_bit(step_dir: Path) -> None:
    """One bit in the middle of the largest data file: Orbax itself restores this silently."""
    f = data_files(step_dir)[-1]
    raw = bytearray(Path(f).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    Path(f).write_bytes(bytes(raw))


DAMAGE = {
    "truncated": truncate,
    "overwritten": lambda d: [Path(f).write_bytes(b"\0" * 64) for f in data_files(d)],
    "flipped_bit": flip_bit,
    "manifest_deleted": lambda d: [
        os.remove(f) for f in glob.glob(f"{d}/state/**/manifest.ocdbt", recursive=True)
    ],
    "array_metadata_deleted": lambda d: os.remove(d / "state" / "_METADATA"),
    "garbage_meta": lambda d: (d / "meta" / "metadata").write_text("{garbage"),
    "emptied": lambda d: [shutil.rmtree(d), d.mkdir()],
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_broken_newest_step_falls_back_to_the_older_one(two_steps, damage, capsys):
    DAMAGE[damage](two_steps / "2")
    ckpt = Checkpointer(two_steps, keep=3)
    restored, meta = ckpt.restore(like())
    assert meta["step"] == 1
    np.testing.assert_array_equal(restored["agent"]["w"], state(1.0)["agent"]["w"])
    item, _ = ckpt.restore_item("agent", like()["agent"])
    np.testing.assert_array_equal(item["w"], state(1.0)["agent"]["w"])
    err = capsys.readouterr().err
    assert f"checkpoint {two_steps}/2 is broken" in err and f"older checkpoint {two_steps}/1" in err
    assert err.count("is broken") == 1  # each broken step is reported once
    # Asked for by number, the broken step is refused, never returned.
    with pytest.raises(CheckpointError, match="step 2"):
        ckpt.restore(like(), step=2)


def test_a_flipped_bit_is_caught_by_the_checksum(two_steps):
    flip_bit(two_steps / "2")
    with pytest.raises(CheckpointError, match="checksum mismatch in agent.w"):
        Checkpointer(two_steps).restore(like(), step=2)


def test_no_intact_step_is_a_clear_error(two_steps):
    truncate(two_steps / "1")
    flip_bit(two_steps / "2")
    with pytest.raises(CheckpointError, match=r"no intact checkpoint .*step 2: .*step 1: "):
        Checkpointer(two_steps).restore(like())


def test_a_mismatch_is_not_mistaken_for_damage(two_steps):
    with pytest.raises(CheckpointError, match="agent.w: checkpoint has shape"):
        Checkpointer(two_steps).restore(
            {**like(), "agent": {"w": jnp.zeros(5), "n": jnp.arange(3)}}
        )


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_non_finite_state_is_never_saved(two_steps, bad):
    broken = state(3.0)
    broken["opt"]["mu"] = broken["opt"]["mu"].at[2].set(bad)  # e.g. Adam's moment overflowed
    ckpt = Checkpointer(two_steps, keep=3)
    with pytest.raises(TrainingDiverged, match=rf"opt.mu\); not saved .*{two_steps}/2"):
        ckpt.save(3, broken, {"step": 3})
    assert ckpt.latest_step() == 2 and not (two_steps / "3").exists()


def test_a_full_disk_keeps_the_older_checkpoints(two_steps):
    ckpt = Checkpointer(two_steps, keep=2)
    noise = np.random.default_rng(0).standard_normal(200_000)  # incompressible: ~800 kB
    big = {**state(3.0), "opt": {"mu": jnp.asarray(noise, jnp.float32)}}
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, limits[1]))  # files stop growing at 50 kB
    try:
        with pytest.raises(CheckpointError, match=r"could not write checkpoint step 3 .*\[1, 2\]"):
            ckpt.save(3, big, {"step": 3})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old)
    assert sorted(os.listdir(two_steps)) == ["1", "2"]  # the partial step is cleaned up
    restored, meta = Checkpointer(two_steps).restore(like())
    assert meta["step"] == 2


def test_a_full_disk_prints_no_library_tracebacks(two_steps, caplog):
    """Orbax logs every failed array write with a traceback; the CheckpointError is the message."""
    ckpt = Checkpointer(two_steps, keep=2)
    noise = np.random.default_rng(0).standard_normal(200_000)
    big = {**state(3.0), "opt": {"mu": jnp.asarray(noise, jnp.float32)}}
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, limits[1]))
    try:
        with pytest.raises(CheckpointError, match="could not write checkpoint step 3"):
            ckpt.save(3, big, {"step": 3})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old)
    assert not [r.getMessage()[:80] for r in caplog.records if r.name == "absl"]


def test_library_log_records_of_a_save_that_succeeds_are_kept(two_steps, caplog, monkeypatch):
    import logging

    ckpt = Checkpointer(two_steps, keep=3)
    save = ckpt._manager.save

    def save_and_warn(*args, **kwargs):
        logging.getLogger("absl").warning("a library warning during a good save")
        return save(*args, **kwargs)

    monkeypatch.setattr(ckpt._manager, "save", save_and_warn)
    ckpt.save(3, state(3.0), {"step": 3})
    assert "a library warning during a good save" in caplog.text


def test_enospc_from_the_library_is_a_checkpoint_error(two_steps, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    ckpt = Checkpointer(two_steps, keep=2)
    monkeypatch.setattr(ckpt._manager, "save", full)
    with pytest.raises(CheckpointError, match="No space left on device.*older checkpoints"):
        ckpt.save(3, state(3.0), {})


# --- bad input: exit 2 and a message ------------------------------------------------------------


def bad_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "syntax.yaml").write_text("online:\n  num_envs: [1, 2\n")
    (tmp_path / "latin1.yaml").write_bytes("env:\n  name: Caf\xe9\n".encode("latin-1"))
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "text.npz").write_text("hello, I am text")
    data.save_dataset(tmp_path / "two_rows", dataset_arrays(2, obs=4, act=2), {"env": "PointMass"})
    return {p.stem: p for p in tmp_path.iterdir()}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["online", "--config", "{syntax}"], r"syntax.yaml: YAML syntax error: .* at line \d+"),
        (["online", "--config", "{latin1}"], "not UTF-8 text"),
        (["online", "--set", "agent.actor_hidden=[16,"], "--set agent.actor_hidden=.*cannot parse"),
        (["online", "--set", "agent.actor_hidden=[0,16]"], "every layer width must be >= 1"),
        (["online", "--set", "agent.critic_hidden=[-4]"], r"agent.critic_hidden=\[-4\]"),
        (
            [
                "online",
                *("--set", "online.num_envs=32", "--set", "online.buffer_capacity=16"),
                *("--set", "agent.batch_size=4", "--set", "agent.critic_minibatches=1"),
            ],
            "buffer_capacity=16 is smaller than online.num_envs=32",
        ),
        (["online", "--set", "run.run_dir={a_file}"], "exists and is not a directory"),
        (["online", "--set", "run.run_dir={a_file}/run"], "cannot create run dir"),
        (
            ["pretrain", "--set", "offline.dataset={text}", "--set", "run.run_dir={tmp}/pre"],
            "not an .npz file",
        ),
        (
            [
                "online",
                *("--set", "online.num_envs=4", "--set", "online.warmup_steps=40"),
                *("--set", "online.chunk_length=100", "--set", "online.total_env_steps=200"),
                *("--set", "agent.batch_size=8"),  # one sampled batch (32 rows) < the warmup
            ],
            "online.total_env_steps=200 would run 440 steps",
        ),
        (
            ["pretrain", "--set", "offline.steps=100", "--set", "offline.chunk_length=500"],
            "offline.steps=100 would run 500 steps",
        ),
        (
            ["pretrain", "--set", "offline.dataset={two_rows}", "--set", "run.run_dir={tmp}/pre"],
            "2 transitions leave 1 to train on",
        ),
        (
            ["online", "--set", "online.warmup_steps=1000", "--set", "online.total_env_steps=200"],
            "all warmup, with no update",
        ),
        (  # used to end in OverflowError deep in JAX after 10 s
            ["online", "--set", "run.seed=1180591620717411303424"],
            "run.seed=1180591620717411303424: must be at most 2147483647",
        ),
        (["online", "--set", "run.seed=-3"], r"run.seed=-3: must be in \[0, "),
        (["online", "--set", "online.total_env_steps=1e12"], "must be at most 2147483647"),
        (  # K = 0, but the official start still collects one sampled batch (1,024 rows) first
            ["online", "--set", "online.warmup_steps=0", "--set", "online.total_env_steps=1000"],
            "1024 env steps before the first update .* all warmup",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {k: str(v) for k, v in bad_files(tmp_path).items()}
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_a_read_only_parent_is_a_message(tmp_path, monkeypatch, capsys):
    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)  # root ignores chmod, so fake the refusal
    assert main(["online", "--set", f"run.run_dir={tmp_path}/ro/run"]) == 2
    assert "cannot create run dir" in capsys.readouterr().err


def test_budgets_refuse_big_overruns_and_note_small_ones(capsys):
    check_budget("offline.steps", 1000, 1000, "")
    check_budget("offline.steps", 1000, 1050, "whole chunks")
    assert "runs 1050 steps" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="offline.steps=100 would run 500 steps"):
        check_budget("offline.steps", 100, 500, "whole chunks")


def test_shipped_configs_fit_their_budgets():
    from wsrl_mjx.config import DEFAULT_CONFIG
    from wsrl_mjx.core.schedule import Schedule
    from wsrl_mjx.studies.experiment_spec import load_experiment

    configs = [load_config(p) for p in [DEFAULT_CONFIG, *sorted((REPO / "configs").glob("*.yaml"))]]
    for path in sorted((REPO / "configs" / "experiments").glob("*.yaml")):
        configs += load_experiment(path).methods.values()
    for path, cfg in enumerate(configs):
        planned = Schedule.from_config(cfg).total_env_steps
        assert planned <= 1.1 * cfg.online.total_env_steps, path
        assert cfg.online.warmup_steps < cfg.online.total_env_steps, path
        assert cfg.offline.steps % cfg.offline.chunk_length == 0, path


def dataset_arrays(n: int, obs: int = 2, act: int = 1) -> dict[str, np.ndarray]:
    return {
        "observations": np.zeros((n, obs), np.float32),
        "actions": np.zeros((n, act), np.float32),
        "rewards": np.zeros(n, np.float32),
        "next_observations": np.zeros((n, obs), np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.ones(n, bool),
    }


def test_saved_dataset_respects_the_umask(tmp_path):
    path = data.save_dataset(tmp_path / "ds", dataset_arrays(4), {"env": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == umask_mode()


def test_a_newest_step_replaced_by_a_plain_file_is_reported(two_steps, capsys):
    shutil.rmtree(two_steps / "2")
    (two_steps / "2").write_text("not a checkpoint")
    _, meta = Checkpointer(two_steps).restore(state(0.0))
    assert meta["step"] == 1  # the older intact step, as for any broken newest one
    err = capsys.readouterr().err
    assert f"{two_steps}/2 is not a checkpoint folder: ignored" in err


def test_edited_metadata_is_caught_by_its_checksum(two_steps, capsys):
    """The rng and counters live in the metadata: an edit there is damage, not a resume."""
    meta_file = two_steps / "2" / "meta" / "metadata"
    text = meta_file.read_text()
    assert '"step": 2' in text
    meta_file.write_text(text.replace('"step": 2', '"step": 7'))
    _, meta = Checkpointer(two_steps).restore(state(0.0))
    assert meta["step"] == 1  # fell back to the intact older step
    assert "checksum mismatch in its metadata" in capsys.readouterr().err


def _edit_meta(step_dir: Path, edit) -> None:
    meta_file = step_dir / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    edit(meta)
    meta_file.write_text(json.dumps(meta))


def _drop_one_array_checksum(meta: dict) -> None:
    meta["integrity"].pop(next(k for k in meta["integrity"] if k != "__metadata__"))


@pytest.mark.parametrize(
    ("remove", "edit_step", "why"),
    [
        (lambda m: m["integrity"].pop("__metadata__"), True, "without its metadata checksum"),
        (lambda m: m.pop("integrity"), True, "no integrity record"),
        (_drop_one_array_checksum, False, "no checksum for 1 arrays"),
    ],
    ids=["metadata-digest", "whole-record", "one-array"],
)
def test_a_step_without_its_integrity_record_is_damaged(two_steps, capsys, remove, edit_step, why):
    """An edit of the step counter with the record that would catch it removed used to resume
    in silence; now a step whose record is missing or cut counts as damaged: the run falls
    back to the older step, and with no sound step left it is refused, naming the flag that
    restores it unverified."""
    _edit_meta(two_steps / "2", lambda m: (edit_step and m.update(step=7), remove(m)))
    _, meta = Checkpointer(two_steps).restore(state(0.0))
    assert meta["step"] == 1
    assert why in capsys.readouterr().err
    _edit_meta(two_steps / "1", remove)
    with pytest.raises(CheckpointError, match="allow_unverified_checkpoints=true"):
        Checkpointer(two_steps).restore(state(0.0))
    _, meta = Checkpointer(two_steps, allow_unverified=True).restore(state(0.0))
    assert meta["step"] == (7 if edit_step else 2)  # asked for: the newest step, with a note
    assert "restored unverified" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setting", "part"),
    [
        ("online.buffer_capacity=1e9", "replay buffer"),
        ("agent.critic_hidden=[100000000]", "agent"),
        ("eval.num_episodes=1e9", "evaluation envs"),
    ],
)
def test_a_state_that_cannot_fit_is_refused_before_allocation(tmp_path, capsys, setting, part):
    """Sizes come from shapes alone, so the refusal comes in seconds, not after a minute of
    set-up and a RESOURCE_EXHAUSTED; nothing is checkpointed."""
    argv = ["online", "--set", "env.name=PointMass", "--set", setting]
    argv += ["--set", f"run.run_dir={tmp_path / 'run'}", "--set", "run.tensorboard=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "before its first step" in err and part in err and "free under host memory" in err
    assert not (tmp_path / "run" / "checkpoints").exists() or not any(
        (tmp_path / "run" / "checkpoints").iterdir()
    )


def test_the_memory_check_knows_the_address_space_limit(tmp_path):
    """Under `ulimit -v` (a batch scheduler's limit) a buffer that fits the host's free memory
    but not the process's address space used to pass the check and die after 42 s with
    RESOURCE_EXHAUSTED; now it is refused up front naming the limit that binds."""
    limit = 12 * 10**9

    def ulimit_v():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "wsrl_mjx.run", "online"]
        + ["--set", "online.buffer_capacity=300000000", "--set", f"run.run_dir={tmp_path}/run"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=ulimit_v,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "RLIMIT_AS limit (11.2 GiB)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_memory_limits_of_a_cgroup_and_its_parents(tmp_path, monkeypatch):
    from wsrl_mjx.runtime import memory

    for folder, limit, usage in (("job/step", 8 * 2**30, 2**30), ("job", 4 * 2**30, 3 * 2**30)):
        (tmp_path / "memory" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "memory" / folder / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (tmp_path / "memory" / folder / "memory.usage_in_bytes").write_text(f"{usage}\n")
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("4:memory:/job/step\n0::/\n")
    real = memory.Path
    monkeypatch.setattr(memory, "Path", lambda p: cgroup if p == "/proc/self/cgroup" else real(p))
    found = memory._cgroup_limits(tmp_path)
    assert min(found) == (2**30, "the cgroup memory limit of /job (4 GiB)")  # the parent binds
    assert (7 * 2**30, "the cgroup memory limit of /job/step (8 GiB)") in found


def test_memory_check_counts_each_part():
    from wsrl_mjx.runtime.memory import GIB, check_fits, shape_bytes

    assert shape_bytes(lambda: {"a": jnp.zeros((1000, 250)), "b": jnp.zeros(3, jnp.int8)}) == (
        1000 * 250 * 4 + 3
    )
    check_fits({"x": int(0.8 * GIB)}, "hint", free=(GIB, "test"))  # fits
    with pytest.raises(
        ConfigError, match=r"needs about 0.9 GiB .*x 0.9 GiB.*1 GiB is free under test"
    ):
        check_fits({"x": int(0.9 * GIB)}, "lower it", free=(GIB, "test"))


def test_metadata_with_numpy_values_verifies(tmp_path):
    import numpy as np

    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(
        1, state(1.0), {"step": 1, "ret": np.float32(0.1), "shape": (2, 3), "rng": np.arange(2)}
    )
    _, meta = Checkpointer(tmp_path / "ckpt").restore(state(0.0))
    assert meta["ret"] == pytest.approx(0.1) and meta["shape"] == [2, 3] and meta["rng"] == [0, 1]


def test_a_warm_compilation_cache_prints_no_xla_log_lines(tmp_path):
    """XLA:CPU logs machine-feature lines (cpu_aot_loader, 'prefer-no-gather') for every cached
    executable it loads (12 lines here before the fix, when the parent had imported jax);
    importing wsrl_mjx silences XLA's C++ log below FATAL."""
    script = (
        "import wsrl_mjx, jax, jax.numpy as jnp\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n"
        "print(float(jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((8, 8))).sum()))\n"
    )
    # "1": what a parent process that imported jax (a script, a test runner) passes on.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "1", "WSRL_JAX_CACHE": str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        for _ in range(2)  # the second loads the executable from the cache
    ]
    assert [r.returncode for r in runs] == [0, 0]
    assert list((tmp_path / "cache").iterdir())  # the cache was written, then read
    noise = [line for r in runs for line in r.stderr.splitlines() if line.strip()]
    assert noise == []


@pytest.mark.parametrize(
    ("setting", "part"),
    [("agent.critic_hidden=[100000000]", "agent"), ("eval.num_episodes=1e9", "evaluation envs")],
)
def test_a_pretraining_that_cannot_fit_is_refused_before_allocation(
    tmp_path, capsys, setting, part
):
    dataset = data.save_dataset(
        tmp_path / "ds", data.random_transitions(64, 4, 2, episode_length=16), {"env": "PointMass"}
    )
    run_dir = tmp_path / "run"
    argv = ["pretrain", "--set", f"offline.dataset={dataset}", "--set", setting]
    argv += ["--set", f"run.run_dir={run_dir}", "--set", "run.tensorboard=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "before its first step" in err and f"{part} " in err and "dataset " in err
    assert [p.name for p in run_dir.rglob("*") if p.is_file()] == [LOCK_FILE]  # nothing saved


def test_a_signal_during_shutdown_keeps_the_commands_exit_code():
    """A SIGTERM that lands after a command finished (while Orbax / XLA threads wind down) must
    not turn a saved, complete run into 'killed by signal 15'."""
    script = (
        "import os, signal, time\n"
        "from wsrl_mjx.runtime.signals import ignore_signals_while_exiting\n"
        "ignore_signals_while_exiting()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.5)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert done.returncode == 0
