"""How many files a reader follows through one tiny `finetune` run, measured by tracing it.

Runs a tiny PointMass pipeline (collect -> pre-train, untraced), then `python -m wsrl_mjx.run
finetune` on its checkpoint with a profiler on every Python call, and reports:

- orchestration files: the package files that decide what happens next in the run, i.e. the
  phase modules and the runner (`wsrl_mjx/phases/*.py`, `wsrl_mjx/runtime/runner.py`; up to
  `b81090c` also `runtime/hostloop.py`, which held `HostLoop`), less the shared input readers and
  the renderer (`phases/setup.py`, `phases/bridge.py`, `phases/render.py`), that the run enters;
- runtime services entered by name: `runtime/signals.py` (the flag SIGINT/SIGTERM sets, read by
  the runner after each chunk), counted with the orchestration files until this change, so both
  counts are printed;
- re-entries: calls into an orchestration file that is still open lower on the stack with
  another orchestration file above it (a callback: A -> B -> A). Counted once per distinct
  (calling file, called file, called function), so the count does not grow with the chunks;
- the files on the Python stack when an agent's `update` is first called (traced);
- the files entered while the run reads its step counter: the first `step(...)` call made by
  the chunk loop (`run_phase`; up to `b81090c` it lived in `runtime/runner.py`).

    python scripts/online_walk.py [--json results/online_walk.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.common import TINY  # noqa: E402  (the tests' tiny run)

PACKAGE = ROOT / "wsrl_mjx"
NOT_ORCHESTRATION = {"phases/setup.py", "phases/bridge.py", "phases/render.py"}
TINY_PIPELINE = [
    *TINY,
    "agent.critic_minibatches=1",
    "offline.steps=20",
    "offline.chunk_length=10",
    "offline.eval_every_steps=20",
    "collect.kinds=[medium]",
    "collect.size=160",
    "collect.num_envs=4",
    "collect.behaviour_env_steps=400",
]


def package_file(code) -> str | None:
    """`phases/online.py` for a function of the package (or `envs/...`), else None."""
    path = Path(code.co_filename)
    for root, prefix in ((PACKAGE, ""), (ROOT / "envs", "envs/")):
        if path.is_relative_to(root):
            return prefix + str(path.relative_to(root))
    return None


def orchestration(name: str | None) -> bool:
    return (
        bool(name)
        and name not in NOT_ORCHESTRATION
        and (name.startswith("phases/") or name in ("runtime/runner.py", "runtime/hostloop.py"))
    )


SERVICES = ("runtime/signals.py",)  # reported beside the orchestration files


class Walk:
    def __init__(self) -> None:
        self.files: list[str] = []
        self.services: list[str] = []
        self.reentries: set[tuple[str, str, str]] = set()
        self.update_stack: list[str] | None = None
        self.step_files: list[str] | None = None
        self._step_frame = None
        self._step_seen: list[str] = []

    def __call__(self, frame, event, arg):
        if event != "call":
            if event == "return" and frame is self._step_frame:
                self.step_files, self._step_frame = self._step_seen, None
            return
        name = package_file(frame.f_code)
        if name is None:
            return
        if self._step_frame is not None and name not in self._step_seen:
            self._step_seen.append(name)
        if (
            self.step_files is None
            and self._step_frame is None
            and frame.f_code.co_name == "step"
            and frame.f_back.f_code.co_name == "run_phase"
        ):
            caller = package_file(frame.f_back.f_code)
            self._step_frame, self._step_seen = frame, list(dict.fromkeys([caller, name]))
        if self.update_stack is None and frame.f_code.co_name == "update" and "agents/" in name:
            self.update_stack = self.stack_files(frame)
        if name in SERVICES and name not in self.services:
            self.services.append(name)
        if not orchestration(name):
            return
        if name not in self.files:
            self.files.append(name)
        below = [f for f in self.frame_files(frame.f_back) if orchestration(f)]
        collapsed = [f for i, f in enumerate(below) if i == 0 or f != below[i - 1]]
        if collapsed and collapsed[-1] != name and name in collapsed:
            self.reentries.add((collapsed[-1], name, frame.f_code.co_qualname))

    @staticmethod
    def frame_files(frame) -> list[str]:
        """The package file of every frame from the outermost one to `frame`."""
        files = []
        while frame is not None:
            if name := package_file(frame.f_code):
                files.append(name)
            frame = frame.f_back
        return files[::-1]

    @classmethod
    def stack_files(cls, frame) -> list[str]:
        """Package files on the stack up to `frame`, in order of first appearance, once each."""
        return list(dict.fromkeys(cls.frame_files(frame)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the measures to this file")
    args = parser.parse_args()
    from wsrl_mjx.run import main as run_main

    with tempfile.TemporaryDirectory() as tmp:
        sets = lambda items: [a for s in items for a in ("--set", s)]  # noqa: E731
        if run_main(["pipeline", *sets([*TINY_PIPELINE, f"run.run_dir={tmp}/p"])]) != 0:
            return 1
        walk = Walk()
        argv = ["finetune", "--checkpoint", f"{tmp}/p/pretrain", "--method", "wsrl"]
        argv += sets([*TINY, "agent.critic_minibatches=1", f"run.run_dir={tmp}/ft"])
        sys.setprofile(walk)
        try:
            code = run_main(argv)
        finally:
            sys.setprofile(None)
    pairs = sorted({(a, b) for a, b, _ in walk.reentries})
    result = {
        "orchestration_files": walk.files,
        "services_entered": walk.services,
        "reentries": sorted(f"{a} -> {b}: {fn}" for a, b, fn in walk.reentries),
        "reentry_file_pairs": [f"{a} -> {b}" for a, b in pairs],
        "update_stack_files": walk.update_stack,
        "step_counter_files": walk.step_files,
        "step_counter_orchestration_files": [f for f in walk.step_files or [] if orchestration(f)],
    }
    print(json.dumps(result, indent=1))
    print(
        f"{len(walk.files)} orchestration files (+ {len(walk.services)} named services: "
        f"{', '.join(walk.services) or 'none'}), {len(walk.reentries)} re-entries "
        f"({len(pairs)} file pairs); {len(walk.update_stack or [])} files on the stack at the "
        f"first update; step counter: {len(result['step_counter_orchestration_files'])} "
        f"orchestration files ({len(walk.step_files or [])} package files)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
