"""The one-shot GPU script at tiny sizes on CPU (`--dry-run`): its sections run and write their
tables, so a GPU window never meets an untried code path; and the wheelhouse covers it."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from benchmarks.gpu_window import PROFILES, SECTIONS
from scripts.build_wheelhouse import MISSING_ON_DEVICE, _norm, locked_versions

ROOT = Path(__file__).resolve().parent.parent


# The main suite runs the quick sections (about a minute on 2 idle cores); the sections that
# compile many MJX programs (online, time_to_target, wsrl: minutes on 2 cores) run in the
# second CI job, .ci/smoke_newest_jax, which sets WSRL_GPU_DRY_SECTIONS=all.
QUICK = ("smoke", "offline", "seeds")
TABLES = {
    "smoke": ["smoke_cpu.json"],
    "online": ["online_throughput_cpu.json", "online_throughput_cpu.md"],
    "offline": ["offline_throughput_cpu.json", "offline_throughput_cpu.md"],
    "time_to_target": ["time_to_target_cpu.json", "time_to_target_cpu.md"],
    "seeds": ["seeds_update_scaling_cpu.json", "seeds_update_scaling_cpu.md"],
    "wsrl": ["wsrl_antmaze_cpu.json", "wsrl_antmaze_cpu.md"],
    "scale": ["wsrl_at_scale_cpu.json", "wsrl_at_scale_cpu.md"],
}


def test_dry_run_runs_its_sections_and_writes_their_tables(tmp_path):
    chosen = os.environ.get("WSRL_GPU_DRY_SECTIONS", " ".join(QUICK)).split()
    sections = list(SECTIONS) if chosen == ["all"] else chosen
    results, out = tmp_path / "results", tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.gpu_window", "--dry-run", "--sections", *sections]
    cmd += ["--results", str(results), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    summary = json.loads((results / "gpu_window_cpu.json").read_text())
    statuses = {r["section"]: r["status"] for r in summary["sections"]}
    assert statuses == dict.fromkeys(sections, "ok"), proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0
    tables = {t for name in sections for t in TABLES[name]}
    tables |= {"gpu_window_cpu.json", "gpu_window_cpu.md"}
    assert tables <= {p.name for p in results.iterdir()}
    with tarfile.open(out / "gpu_window_cpu.tar.gz") as tar:
        assert tables <= set(tar.getnames())
    if "smoke" in sections:
        smoke = json.loads((results / "smoke_cpu.json").read_text())
        assert smoke["pytest_ok"] and smoke["sharded_matches"]
        assert "tests collected" in smoke["pytest"]  # the GPU's smoke tests exist
    if "seeds" in sections:
        seeds = json.loads((results / "seeds_update_scaling_cpu.json").read_text())
        assert [r["seeds"] for r in seeds["rows"]] == PROFILES["dry"]["seeds"]["seeds"]
        assert all(r["seed_updates_per_s"] > 0 for r in seeds["rows"])
    if "wsrl" in sections:
        wsrl = json.loads((results / "wsrl_antmaze_cpu.json").read_text())
        assert wsrl["evals"]["pretrain"] and wsrl["evals"]["finetune"]
    if "scale" in sections:  # every configuration x method, each to the same env-step budget
        scale = json.loads((results / "wsrl_at_scale_cpu.json").read_text())
        dry = PROFILES["dry"]["scale"]
        assert len(scale["runs"]) == len(dry["configs"]) * len(dry["methods"])
        finals = {r["evals"][-1]["env_steps"] for r in scale["runs"]}
        assert len(finals) == 1 and all(r["online_compile_s"] >= 0 for r in scale["runs"])
        assert not (results / "wsrl_cpu_runs").exists()  # runs removed, tables kept


def test_gpu_profile_fits_the_window():
    budget = PROFILES["gpu"]["budget"]
    assert set(budget) == set(SECTIONS)
    # 9 minutes of a 15-minute window: the machine's start and the transfers take the rest.
    assert sum(budget.values()) <= 9 * 60 - 20
    assert PROFILES["gpu"]["deadline"] <= 9 * 60 - 10


def test_every_wheel_the_device_lacks_is_pinned():
    pins = locked_versions()
    assert all(_norm(name) in pins for name in MISSING_ON_DEVICE)
    assert "warp-lang" not in {_norm(n) for n in MISSING_ON_DEVICE}  # playground runs without
