"""Command line: `python -m wsrl_mjx.run <command> [--config FILE] [--set key=value ...]`.

Its own imports are light (the config schema, the registry's names, the errors): the config, the
paths and the run dir are checked (`wsrl_mjx.runtime.preflight`) before a command imports JAX,
MuJoCo and Orbax, so bad input is named in about a second. Here: each command's arguments
(`build_parser`) and `main`; the command bodies are `wsrl_mjx.run.phase_commands` (the phases) and
`wsrl_mjx.run.study_commands` (what is made from many runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsrl_mjx.config import ConfigError
from wsrl_mjx.run.phase_commands import (
    cmd_collect,
    cmd_evaluate,
    cmd_export,
    cmd_finetune,
    cmd_maze_datasets,
    cmd_online,
    cmd_pipeline,
    cmd_pretrain,
    cmd_render,
)
from wsrl_mjx.run.study_commands import cmd_evidence, cmd_experiment, cmd_gates, cmd_plot
from wsrl_mjx.runtime.errors import CheckpointError, DatasetError, RenderError, TrainingDiverged
from wsrl_mjx.runtime.rundir import RunDirError
from wsrl_mjx.runtime.signals import StopRequested, graceful_stop, ignore_signals_while_exiting


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (keys as in configs/*.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set online.num_envs=64 (repeatable)",
    )


def _command(
    commands,
    name: str,
    func,
    help: str,
    description: str,
    *,
    config: bool = True,
    resume: bool = False,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help, description=description)
    if config:
        _add_config_args(parser)
    if resume:
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in run.run_dir from its last checkpoint",
        )
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from wsrl_mjx.methods import choices, help_text

    parser = argparse.ArgumentParser(
        prog="python -m wsrl_mjx.run",
        description="WSRL on MuJoCo MJX: offline pre-training, warmup, online fine-tuning.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _command(
        commands,
        "online",
        cmd_online,
        "train SAC from scratch with the fused on-device loop",
        "Train SAC from scratch: warmup of the random-init policy, then online SAC.",
        resume=True,
    )
    _command(
        commands,
        "pretrain",
        cmd_pretrain,
        f"offline pre-training ({' / '.join(choices('offline'))}) on a dataset",
        "Pre-train offline on offline.dataset with offline.algorithm and save the whole agent "
        "(Orbax) plus its config, env and dataset fingerprint. offline.algorithm: "
        + help_text("offline"),
        resume=True,
    )
    _command(
        commands,
        "collect",
        cmd_collect,
        "make D4RL-style datasets (random/medium/medium-replay/expert)",
        "Train a behaviour SAC agent with the online loop and roll out datasets into "
        "collect.out_dir as <env>-<kind>.npz. --resume continues the behaviour run from its "
        "last checkpoint (its actor snapshots are kept in run.run_dir/snapshots/), or only "
        "restores one that ended, and writes the datasets again.",
        resume=True,
    )
    finetune = _command(
        commands,
        "finetune",
        cmd_finetune,
        "online fine-tuning from a pre-trained checkpoint (WSRL and baselines)",
        "Restore a pre-trained agent, warm up an empty buffer with its frozen policy, then "
        "fine-tune online. finetune.method: " + help_text("method"),
        resume=True,
    )
    finetune.add_argument("--checkpoint", help="pre-training run dir (sets finetune.checkpoint)")
    finetune.add_argument("--method", help="sets finetune.method")
    _command(
        commands,
        "pipeline",
        cmd_pipeline,
        "collect -> pretrain -> finetune end to end, with a summary (default)",
        "Run collect, pretrain and WSRL fine-tuning in sub-folders of run.run_dir (behaviour/, "
        "data/, pretrain/, finetune/, summary.json) and print offline score, score after "
        "warmup, final score and wall-clock per phase. Without --config it runs the small "
        "built-in default (minutes on a laptop CPU). --resume with --set run.run_dir=DIR "
        "continues a killed pipeline: finished phases are kept, the unfinished one resumes.",
        resume=True,
    )
    experiment = _command(
        commands,
        "experiment",
        cmd_experiment,
        "a methods x seeds matrix, then a results table and plots",
        "Run every method of an experiment file (configs/experiments/*.yaml) for every seed "
        "from one shared pre-training per seed, then write results.md/.json (mean and spread "
        "at env-step budgets) and curves.png. --set overrides apply to its base config. "
        "Re-running skips finished runs and resumes killed ones.",
    )
    experiment.add_argument(
        "--dataset",
        default=None,
        metavar="PATH",
        help="the offline data, instead of the experiment file's `dataset` ({env} expands)",
    )
    experiment.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the tables and plots from the runs finished so far",
    )
    experiment.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run independent runs in N processes (pre-trainings first; each run's output goes "
        "to worker.log in its run dir); default 1: one after another in this process",
    )
    experiment.add_argument(
        "--backend",
        choices=["processes", "ray"],
        default="processes",
        help="where independent runs go: local processes (--workers N), or Ray tasks on a "
        "cluster (each run a task with --cpus-per-run / --gpus-per-run; same resume, skip of "
        "finished runs and failure report)",
    )
    experiment.add_argument(
        "--address",
        help="with --backend ray: the cluster's address (e.g. HEAD_IP:6379 of `ray start "
        "--head`; 'auto' finds a running one); default: a local Ray instance",
    )
    experiment.add_argument("--cpus-per-run", type=float, default=1.0, metavar="N")
    experiment.add_argument("--gpus-per-run", type=float, default=0.0, metavar="N")
    experiment.add_argument(
        "--vmap-seeds",
        action="store_true",
        help="run each method's seeds as one vmapped program (run.num_seeds); each seed keeps "
        "its run dir",
    )
    experiment.add_argument(
        "--seed-devices",
        type=int,
        default=1,
        metavar="N",
        help="with --vmap-seeds: split each program's seeds over up to N devices (the largest "
        "count dividing them; on a CPU, N CPU devices of this process use N cores)",
    )
    evaluate = _command(
        commands,
        "evaluate",
        cmd_evaluate,
        "a run's policy in the native Gymnasium env beside its MJX twin",
        "Run a checkpoint's deterministic policy (any run dir: pretrain, online, finetune) for "
        "--episodes episodes in its MJX twin and in the native Gymnasium / Gymnasium-Robotics env "
        "with the same overrides and episode length; print return, normalized score, success and "
        "length of both and Welch's t-test of the two return samples.",
        config=False,
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--episodes", type=int, default=10, help="per env (default 10)")
    evaluate.add_argument("--seed", type=int, default=0, help="first episode's reset seed")
    evaluate.add_argument("--out", help="also write the report as JSON here")
    evaluate.add_argument(
        "--allow-unverified-checkpoint",
        action="store_true",
        help="restore a checkpoint whose integrity record is missing (otherwise refused as "
        "damaged), as run.allow_unverified_checkpoints=true does for the other commands",
    )
    render = _command(
        commands,
        "render",
        cmd_render,
        "a video of a run's policy (twin, optionally the native env)",
        "Roll out the newest checkpoint's deterministic policy for one episode in the MJX twin "
        "(on the device, keeping qpos/qvel), replay it through MuJoCo's CPU renderer and write "
        "a GIF or MP4; --native also renders the same policy in the native Gymnasium env. "
        "Headless: uses EGL or OSMesa (MUJOCO_GL, when set).",
        config=False,
    )
    render.add_argument("run_dir", metavar="RUN_DIR")
    render.add_argument("--out", help="a .gif or .mp4 (default RUN_DIR/videos/<env>-twin.gif)")
    render.add_argument("--native", action="store_true", help="also the native Gymnasium env")
    render.add_argument("--fps", type=int, default=30, help="frames per second (real time)")
    render.add_argument("--width", type=int, default=320)
    render.add_argument("--height", type=int, default=240)
    render.add_argument("--camera", help="a camera of the model (default: follow the root body)")
    render.add_argument("--seed", type=int, default=0, help="the episode's reset seed")
    render.add_argument(
        "--allow-unverified-checkpoint",
        action="store_true",
        help="restore a checkpoint whose integrity record is missing",
    )
    export = _command(
        commands,
        "export",
        cmd_export,
        "write an .npz dataset as a Minari dataset (for CORL, d3rlpy, Minari)",
        "Write a dataset made by `collect` (.npz) as the Minari dataset --id, its env_spec the "
        "native Gymnasium env of the twin it was made in (flat-observation twins: the "
        "locomotion ones), under --root (default Minari's own folder, $MINARI_DATASETS_PATH).",
        config=False,
    )
    export.add_argument("dataset", metavar="DATASET.npz")
    export.add_argument("--id", required=True, help="e.g. wsrl-mjx/hopper/medium-v0")
    export.add_argument("--root", help="the Minari datasets folder to write in")
    export.add_argument(
        "--env-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Gymnasium kwarg of the env the data was made in (its env.overrides)",
    )
    gates = _command(
        commands,
        "gates",
        cmd_gates,
        "check a locomotion test bed before a run is spent on it (exit 1 when a gate fails)",
        "Behaviour levels of a task's random/medium/expert datasets over >= 100 episodes, the "
        "trivial controllers (random, zero, best constant, standing still) that must fail, and "
        "with --pretrain the pre-training runs, against gates stated in wsrl_mjx/studies/gates.py. "
        "Writes OUT.json and OUT.md.",
        config=False,
    )
    gates.add_argument("--env", required=True, help="a locomotion twin, e.g. Hopper-v5")
    gates.add_argument("--data", type=Path, default=Path("data/locomotion"))
    gates.add_argument("--pretrain", type=Path, nargs="*", default=[], metavar="RUN_DIR")
    gates.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    gates.add_argument("--seed", type=int, default=0)
    gates.add_argument(
        "--levels-from",
        type=Path,
        metavar="GATES.json",
        help="an earlier gate record of the task: a dataset missing from --data (e.g. the "
        "expert, a 1M-step behaviour run) takes its level from there, as said in the output",
    )
    plot = _command(
        commands,
        "plot",
        cmd_plot,
        "learning curves and Q/TD diagnostics of runs to one PNG",
        "Overlay eval return, online Q/target/TD, held-out offline Q/TD and the dense Q trace "
        "of one or more run directories (each with metrics.jsonl).",
        config=False,
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--out", help="PNG path (default RUN_DIR/curves.png of the first run)")
    plot.add_argument("--labels", nargs="+", help="legend labels, one per run")
    evidence = _command(
        commands,
        "evidence",
        cmd_evidence,
        "an experiment's evidence: per-seed curve files, then paired statistics and claims",
        "`export RUN_DIR OUT_DIR` writes the per-seed curve files of an experiment's finished "
        "runs; `analyze TASK_DIR... --out DIR` reads curve folders (one per task) and writes "
        "the tables, the claims with their verdicts (claims.md / .json) and curves.png.",
        config=False,
    )
    steps = evidence.add_subparsers(dest="evidence_command", metavar="STEP", required=True)
    export_curves = steps.add_parser(
        "export",
        help="curve files of an experiment's finished runs",
        description="Curve files (one per run and seed) of an experiment's finished runs.",
    )
    export_curves.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export_curves.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    analyze = steps.add_parser(
        "analyze",
        help="tables, claims and the figure from curve folders",
        description="Tables, claims with their verdicts and the figure from curve folders.",
    )
    analyze.add_argument("task_dirs", type=Path, nargs="+", metavar="TASK_DIR")
    analyze.add_argument("--out", type=Path, required=True)
    analyze.add_argument("--budgets", type=int, nargs="*", default=[])
    mazes = _command(
        commands,
        "maze-datasets",
        cmd_maze_datasets,
        "maze datasets (point mass or ant) and their pictures",
        "Collect maze datasets (BFS waypoints, a noisy PD controller for the point mass or a "
        "trained low-level policy for the ant) and draw them over the maze as "
        "<out>/<agent>maze_<layout>.png; --save DIR also writes the datasets.",
        config=False,
    )
    mazes.add_argument("--agent", default="point", choices=("point", "ant"))
    mazes.add_argument(
        "--layouts", nargs="+", metavar="LAYOUT", help="umaze, medium, large (default: all)"
    )
    mazes.add_argument("--out", default="docs/", help="directory for the PNGs ('' = none)")
    mazes.add_argument("--num-transitions", type=int, default=1_000_000)
    mazes.add_argument("--num-envs", type=int, default=50)
    mazes.add_argument("--seed", type=int, default=0)
    mazes.add_argument(
        "--noise",
        type=float,
        default=None,
        help="std of the Gaussian action noise (default: 0.5 for the point mass, 0.1 for the ant)",
    )
    mazes.add_argument(
        "--policy",
        help="ant only: an antgoal run dir or exported policy file (default: the bundled one, "
        "envs/assets/antgoal_policy.msgpack)",
    )
    mazes.add_argument(
        "--export-policy",
        metavar="FILE",
        help="ant only: first write --policy (a run dir) to FILE as a standalone policy",
    )
    mazes.add_argument("--goals", default="diverse", choices=("diverse", "play"), help="ant only")
    mazes.add_argument(
        "--policy-stats",
        action="store_true",
        help="ant only: print how well --policy walks on antgoal (256 episodes) and exit",
    )
    mazes.add_argument(
        "--twin",
        metavar="ID",
        help="ant only: collect in this Gymnasium-Robotics AntMaze twin (e.g. "
        "AntMaze_Large_Diverse_GR-v4) instead of --layouts; needs --save",
    )
    mazes.add_argument("--save", default=None, help="also save each dataset as <save>/<name>.npz")
    mazes.add_argument("--max-trajectories", type=int, default=12, help="trajectories drawn")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # The bare command is the main job (the built-in default pipeline), options included:
    # `--set key=value` without a command is the pipeline's, so a typo in it is named as such.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["pipeline", *argv]
    args = parser.parse_args(argv)
    try:
        with graceful_stop():
            return args.func(args)
    except StopRequested as e:  # SIGINT / SIGTERM: the checkpoint is written
        print(f"[stop] {e}", file=sys.stderr)
        return e.exit_code
    except (ConfigError, CheckpointError, DatasetError, RenderError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing file, a read-only or full disk: the message names it
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:  # the last good (all finite) checkpoint is kept on disk
        print(f"error: {e}", file=sys.stderr)
        return 3


def cli() -> None:
    """The process entry point (`python -m wsrl_mjx.run`, the `wsrl-mjx` script)."""
    code = main()
    ignore_signals_while_exiting()  # the work is saved: a late signal keeps this exit code
    sys.exit(code)
