"""Rewrite references to the flat module paths of before the package's layers (docs/layout.md)
to the layered ones, e.g. for a branch made before the move, after merging it:

    python scripts/layer_paths.py [FILE ...]    # default: every tracked text file

`wsrl_mjx.data` -> `wsrl_mjx.datasets.data`, `wsrl_mjx/runner.py` -> `wsrl_mjx/runtime/runner.py`,
and `from wsrl_mjx import data, methods` split by package. Idempotent: layered paths are left as
they are. Records of what a command printed, and history, keep the paths of their time: pass the
files to rewrite to leave them out. Then `ruff check --fix .` sorts the imports again; the
commands `python -m wsrl_mjx.evidence` / `python -m wsrl_mjx.maze_datasets` became `python -m
wsrl_mjx.run evidence` / `python -m wsrl_mjx.run maze-datasets`, rewritten here too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LAYER = {
    "runtime": ["errors", "checkpoint", "rundir", "logger", "hostloop", "runner", "memory"]
    + ["preflight", "sharding"],
    "datasets": ["data", "readers", "minari_io", "scores"],
    "agents": ["networks"],
    "core": ["loops", "replay", "mc_replay", "schedule", "environment", "evaluate"],
    "phases": ["bridge", "setup", "pretrain", "train", "online_system", "online_run", "finetune"]
    + ["collect", "pipeline", "render", "native_eval", "minari_export", "maze_datasets"],
    "studies": ["experiment", "job_pool", "evidence", "verdicts", "plots", "gates"],
}
NEW = {m: layer for layer, ms in LAYER.items() for m in ms}
_MODS = "|".join(sorted(NEW, key=len, reverse=True))
COMMANDS = {"evidence": "evidence", "maze_datasets": "maze-datasets"}
_COMMAND = re.compile(r"-m wsrl_mjx\.(?:studies\.|phases\.)?(evidence|maze_datasets)\b")
_DOT = re.compile(rf"\bwsrl_mjx\.({_MODS})\b")
_SLASH = re.compile(rf"\bwsrl_mjx/({_MODS})\.py\b")
_FROM = re.compile(r"^(\s*)from wsrl_mjx import ([^()\n#]+?)(\s*#.*)?$", re.M)
SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".sh", ".txt", ".cfg", ".ini"}


def _from_line(m: re.Match) -> str:
    indent, names, comment = m.group(1), m.group(2), m.group(3) or ""
    groups: dict[str, list[str]] = {}
    for part in (p.strip() for p in names.split(",")):
        if part:
            name = part.split()[0]
            groups.setdefault(f"wsrl_mjx.{NEW[name]}" if name in NEW else "wsrl_mjx", []).append(
                part
            )
    if list(groups) == ["wsrl_mjx"]:
        return m.group(0)
    lines = [f"{indent}from {pkg} import {', '.join(ns)}" for pkg, ns in groups.items()]
    lines[0] += comment
    return "\n".join(lines)


def rewrite(text: str) -> str:
    text = _COMMAND.sub(lambda m: f"-m wsrl_mjx.run {COMMANDS[m.group(1)]}", text)
    text = _FROM.sub(_from_line, text)
    text = _DOT.sub(lambda m: f"wsrl_mjx.{NEW[m.group(1)]}.{m.group(1)}", text)
    return _SLASH.sub(lambda m: f"wsrl_mjx/{NEW[m.group(1)]}/{m.group(1)}.py", text)


def main(argv: list[str]) -> int:
    if argv:
        files = [Path(a) for a in argv]
    else:
        listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True)
        files = [Path(f) for f in listed.stdout.split()]
        files = [f for f in files if f.suffix in SUFFIXES or f.parent.name == ".ci"]
    for path in files:
        if path.is_file() and path.resolve() != Path(__file__).resolve():
            text = path.read_text()
            if (new := rewrite(text)) != text:
                path.write_text(new)
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
