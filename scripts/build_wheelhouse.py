"""Build `.whl/`: the wheels a GPU machine without network lacks, for `scripts/gpu_window.sh`.

The GPU machines ship Python 3.12 with jax, flax, optax, chex, orbax-checkpoint, numpy, scipy,
h5py, matplotlib, pyyaml, tqdm and pytest, but not MuJoCo, MJX, Playground, brax, flashbax or
tensorboardX. This downloads those (and what they import that the machine lacks) as cp312
manylinux wheels at the versions of `requirements.lock`, without dependencies, and checks that
wheels plus working tree fit the 64 MiB a device call may carry.

Playground imports without warp-lang (it logs "Failed to import warp" and runs its JAX
implementation, which is the one `envs` uses), so the ~100 MiB warp wheel is not needed.

    python scripts/build_wheelhouse.py            # -> .whl/*.whl and .whl/MANIFEST.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_BYTES = 64 * 2**20  # what one device call carries: working tree + carried paths
# Imported by the package, its tests and benchmarks, and missing on the GPU machine.
MISSING_ON_DEVICE = (
    "mujoco",
    "mujoco-mjx",
    "playground",
    "brax",
    "flashbax",
    "tensorboardX",
    "ml_collections",  # playground's configs
    "jaxopt",  # brax
    "orbax-export",  # brax
    "trimesh",  # brax
    "glfw",  # mujoco
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def locked_versions(lock: Path = ROOT / "requirements.lock") -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = version.strip()
    return pins


def tree_bytes() -> int:
    """Bytes of what a device call sends besides carried paths: tracked files plus untracked
    files git does not ignore (symbolic links travel as links)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [ROOT / f.decode() for f in files if f]
    return sum(p.lstat().st_size for p in paths if p.is_file() or p.is_symlink())


def build(out: Path, python_version: str = "3.12") -> dict:
    pins = locked_versions()
    missing = [n for n in MISSING_ON_DEVICE if _norm(n) not in pins]
    if missing:
        raise SystemExit(f"not pinned in requirements.lock: {missing}")
    out.mkdir(exist_ok=True)
    for old in out.glob("*.whl"):  # one version of each: two would stop the install there
        old.unlink()
    specs = [f"{name}=={pins[_norm(name)]}" for name in MISSING_ON_DEVICE]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", python_version, "--implementation", "cp", "-d", str(out)]
    cmd += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run([*cmd, *specs], check=True)
    wheels = {w.name: w.stat().st_size for w in sorted(out.glob("*.whl"))}
    total, tree = sum(wheels.values()), tree_bytes()
    manifest = {
        "python": python_version,
        "wheels": wheels,
        "wheels_bytes": total,
        "tree_bytes": tree,
        "limit_bytes": LIMIT_BYTES,
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / ".whl"), help="wheel folder (gitignored)")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    args = parser.parse_args(argv)
    m = build(Path(args.out), args.python_version)
    for name, size in m["wheels"].items():
        print(f"{size / 2**20:8.2f} MiB  {name}")
    both = m["wheels_bytes"] + m["tree_bytes"]
    print(
        f"wheels {m['wheels_bytes'] / 2**20:.1f} MiB + working tree {m['tree_bytes'] / 2**20:.1f}"
        f" MiB = {both / 2**20:.1f} MiB of the {LIMIT_BYTES / 2**20:.0f} MiB a device call carries"
    )
    if both > LIMIT_BYTES:
        print("error: too large for one device call", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
