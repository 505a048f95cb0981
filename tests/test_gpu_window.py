"""The one-shot GPU script at tiny sizes on CPU (`--dry-run`): every section runs and writes its
tables, so a GPU window never meets an untried code path; and the wheelhouse covers it."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

from benchmarks.gpu_window import PROFILES, SECTIONS
from scripts.build_wheelhouse import MISSING_ON_DEVICE, _norm, locked_versions

ROOT = Path(__file__).resolve().parent.parent


def test_dry_run_runs_every_section_and_writes_its_tables(tmp_path):
    results, out = tmp_path / "results", tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.gpu_window", "--dry-run"]
    cmd += ["--results", str(results), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    summary = json.loads((results / "gpu_window_cpu.json").read_text())
    statuses = {r["section"]: r["status"] for r in summary["sections"]}
    assert statuses == dict.fromkeys(SECTIONS, "ok"), proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0
    tables = {
        "smoke_cpu.json",
        *(f"{name}_cpu.{ext}" for ext in ("json", "md") for name in (
            "online_throughput", "offline_throughput", "time_to_target", "seeds_scaling",
            "wsrl_antmaze", "gpu_window",
        )),
    }  # fmt: skip
    assert tables <= {p.name for p in results.iterdir()}
    smoke = json.loads((results / "smoke_cpu.json").read_text())
    assert smoke["pytest_ok"] and smoke["sharded_matches"]
    seeds = json.loads((results / "seeds_scaling_cpu.json").read_text())
    assert [r["seeds"] for r in seeds["results"]] == [1, 2]
    wsrl = json.loads((results / "wsrl_antmaze_cpu.json").read_text())
    assert wsrl["evals"]["pretrain"] and wsrl["evals"]["finetune"]
    with tarfile.open(out / "gpu_window_cpu.tar.gz") as tar:
        assert tables <= set(tar.getnames())
    assert "| wsrl | ok |" in (out / "gpu_window_cpu.md").read_text()


def test_gpu_profile_fits_the_window():
    budget = PROFILES["gpu"]["budget"]
    assert set(budget) == set(SECTIONS)
    assert sum(budget.values()) <= 8 * 60 - 20  # the 8 minutes, start-up included


def test_every_wheel_the_device_lacks_is_pinned():
    pins = locked_versions()
    assert all(_norm(name) in pins for name in MISSING_ON_DEVICE)
    assert "warp-lang" not in {_norm(n) for n in MISSING_ON_DEVICE}  # playground runs without
