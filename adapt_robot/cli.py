"""``adapt-robot``: the one entry point. ``adapt-robot --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from adapt_robot import BLAS_THREAD_VARS
from adapt_robot.errors import AdaptRobotError, UsageError


def _launch_arguments(cmd: argparse.ArgumentParser, example: str, override: str) -> None:
    """The ``LAUNCH`` file argument and the repeatable ``--set KEY=VALUE`` of a subcommand."""
    cmd.add_argument("launch", help=f"launch file, e.g. {example}")
    cmd.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a launch-file key (repeatable), e.g. --set {override}",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="adapt-robot",
        description="Meta-train robot policies in simulation, export them to ONNX, adapt on-line.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the whole chain: short meta-training, export, torch-free on-line adaptation on "
        "held-out objects in the PyBullet twin; table, plots and GIF",
    )
    _launch_arguments(demo, "launch/demo.yaml", "deploy.objects=4")

    experts = sub.add_parser(
        "experts", help="scripted experts on every task family and engine: table and GIFs"
    )
    _launch_arguments(experts, "launch/experts.yaml", "seed=3")

    train = sub.add_parser("train", help="meta-train (or train a baseline) from a launch file")
    _launch_arguments(train, "launch/point_maml.yaml", "algo.inner_lr=0.05")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in out_dir from its checkpoint"
    )

    export = sub.add_parser("export", help="export a trained run to an ONNX bundle")
    export.add_argument("run_dir", help="training run directory (with checkpoint.pt)")
    export.add_argument("-o", "--out", required=True, help="bundle directory to write")
    export.add_argument(
        "--capacity", type=int, default=None, help="inner-step batch capacity N (rows)"
    )
    export.add_argument("--fp16", action="store_true", help="also write policy_fp16.onnx")
    export.add_argument(
        "--sign-key",
        default=None,
        metavar="KEYFILE",
        help="sign the bundle: bundle.sig, the HMAC-SHA256 of bundle.lock under this key",
    )

    ev = sub.add_parser("eval", help="held-out evaluation: success before/after adapting, 95%% CIs")
    ev.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run(s); several: compared")
    ev.add_argument("--backend", default=None, help="engine override, e.g. pybullet (sim-to-sim)")
    ev.add_argument("--tasks", type=int, default=50, help="held-out tasks")
    ev.add_argument("--episodes", type=int, default=10, help="exploration episodes K per task")
    ev.add_argument("--steps", type=int, default=3, help="inner steps scored: 1..steps (<= 3)")
    ev.add_argument("--post-episodes", type=int, default=3, help="episodes scored per step")
    ev.add_argument("--seed", type=int, default=0, help="seed of the tasks and rollouts")
    ev.add_argument("--out", default=None, help="output dir (default RUN_DIR/eval[-BACKEND])")

    render = sub.add_parser("render", help="write a GIF of a scripted expert episode")
    render.add_argument("family", help="task family (point, grasp, door, or a registered one)")
    render.add_argument(
        "--engine", default=None, help="physics engine (default: the family's first)"
    )
    render.add_argument("--split", default="test", choices=["train", "test"])
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--width", type=int, default=320)
    render.add_argument("--height", type=int, default=240)
    render.add_argument(
        "--strip",
        default=None,
        metavar="PNG",
        help="also write 4 frames (start to end) side by side as a PNG",
    )
    render.add_argument(
        "-o", "--out", default=None, help="GIF path (default runs/FAMILY_ENGINE.gif)"
    )

    dep = sub.add_parser(
        "deploy",
        help="run a bundle in the real control loop on a simulated robot, adapting on-line to "
        "held-out objects: success before/after, timings",
    )
    dep.add_argument("bundle", help="bundle directory (written by `adapt-robot export`)")
    dep.add_argument(
        "--robot",
        default="sim:pybullet",
        help="sim:ENGINE, an engine of the bundle's family (grasp/door: sim:pybullet or "
        "sim:mujoco; point: sim:numpy); default sim:pybullet",
    )
    dep.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (repeatable): it registers a plug-in task family",
    )
    dep.add_argument("--task-split", default="test", choices=["train", "test"])
    dep.add_argument("--rate", type=float, default=100.0, help="control rate, 100-1000 Hz")
    dep.add_argument("--objects", type=int, default=20, help="held-out objects or doors")
    dep.add_argument(
        "--episodes", type=int, default=None, help="exploration episodes K (default: bundle)"
    )
    dep.add_argument("--post-episodes", type=int, default=3, help="episodes scored after")
    dep.add_argument("--steps", type=int, default=None, help="inner steps n (default: bundle)")
    dep.add_argument(
        "--keep-on-success",
        action="store_true",
        help="do not adapt when the last exploration episode succeeded",
    )
    dep.add_argument(
        "--sequential",
        action="store_true",
        help="adapt after each of the K exploration episodes, on all of them so far (only the "
        "first, with the meta-parameters, is scored before)",
    )
    dep.add_argument("--seed", type=int, default=0, help="seed of the objects, robot and noise")
    dep.add_argument("--providers", default="cpu", help="ONNX Runtime providers, e.g. cuda,cpu")
    dep.add_argument(
        "--verify-key",
        default=None,
        metavar="KEYFILE",
        help="load only a bundle signed with this key (export --sign-key)",
    )
    dep.add_argument("--gif", default=None, metavar="PATH", help="before/after GIF, 1st object")
    dep.add_argument(
        "--out", default=None, metavar="DIR", help="report directory (default BUNDLE/../deploy)"
    )

    board = sub.add_parser(
        "scoreboard",
        help="adaptive arms vs the oracle and the best robust arm on the same held-out tasks: "
        "success with 95%% CIs, headroom, share of the gap closed",
    )
    _launch_arguments(board, "launch/scoreboard_grasp.yaml", "tasks=8")
    board.add_argument("--out", default=None, metavar="DIR", help="output dir (default out_dir)")

    conf = sub.add_parser(
        "config", help="every launch-file key of a job: type, default and what it does"
    )
    conf.add_argument("job", choices=["train", "scoreboard", "demo", "experts"])

    check = sub.add_parser(
        "check-family",
        help="check a task family against the plug-in contract (spaces, seeds, set_task "
        "isolation, time limit, success, pickling, task records, expert)",
    )
    check.add_argument("family", metavar="[MODULE:]NAME", help="e.g. my_tasks:slider, or grasp")
    check.add_argument("--engine", default=None, help="engine (default: the family's first)")
    check.add_argument("--tasks", type=int, default=4, help="tasks drawn per split")

    scene = sub.add_parser(
        "scene",
        help="write one sampled task's MuJoCo scene (scene.xml, gripper.xml, task.json) to a "
        "folder, loadable by mujoco.viewer and mujoco.MjModel",
    )
    scene.add_argument("family", metavar="FAMILY", help="a family with a MuJoCo scene: grasp, door")
    scene.add_argument("--split", default="test", choices=["train", "test"])
    scene.add_argument("--seed", type=int, default=0, help="seed of the task draw and the pose")
    scene.add_argument("--index", type=int, default=0, help="which task of the draw (default 0)")
    scene.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")

    spec = sub.add_parser("spec", help="print families' observation/action layouts and parameters")
    spec.add_argument("families", nargs="+", metavar="FAMILY")

    bench = sub.add_parser("bench", help="benchmarks that print tables of measured ratios")
    bench.add_argument(
        "suite",
        choices=["sim", "export", "sampler", "runtime"],
        help="sim: env steps/s vs physics ceiling; export: ONNX inner step vs torch; "
        "sampler: 1 vs 2 processes vs Ray; runtime BUNDLE: act() vs a numpy floor, adaptation, "
        "control loop with adaptation alongside, RSS (one thread: sets OPENBLAS/OMP/"
        "MKL_NUM_THREADS=1 before numpy loads)",
    )
    bench.add_argument("bundle", nargs="?", default=None, help="runtime: the bundle directory")
    bench.add_argument("--seconds", type=float, default=60.0, help="runtime: seconds per loop")
    bench.add_argument(
        "--rates", type=float, nargs="+", default=[100.0, 1000.0], help="runtime: loop rates, Hz"
    )
    bench.add_argument("--calls", type=int, default=20000, help="runtime: act() calls per repeat")
    bench.add_argument("--json", default=None, metavar="PATH", help="runtime: also write figures")
    bench.add_argument("--families", nargs="+", default=["grasp", "door"])
    bench.add_argument("--engines", nargs="+", default=["mujoco", "pybullet"])
    bench.add_argument("--batch", type=int, default=64)
    bench.add_argument("--steps", type=int, default=100, help="control steps per measurement")
    bench.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported")
    return p


def _bench_runtime(args: argparse.Namespace) -> None:
    """``bench runtime BUNDLE``: print the table (and write the figures with ``--json``)."""
    if args.bundle is None:
        raise UsageError(
            "bench runtime: give the bundle directory, e.g. `adapt-robot bench runtime "
            "runs/grasp_bundle` (write one with `adapt-robot export RUN_DIR -o DIR`)"
        )
    from pathlib import Path

    from adapt_robot.bench.runtime_bench import measure_runtime

    result = measure_runtime(
        args.bundle, seconds=args.seconds, rates=args.rates, calls=args.calls, repeats=args.repeats
    )
    print(result.table())
    if args.json is not None:
        Path(args.json).write_text(result.to_json() + "\n")
        print(f"\nfigures: {args.json}")


def _demo(args: argparse.Namespace) -> None:
    from adapt_robot.config import load
    from adapt_robot.jobs.demo import DemoConfig, run_demo, summary_table

    cfg = load(DemoConfig, args.launch, args.set)
    print(summary_table(run_demo(cfg)))
    print(f"\nsummary, plots, GIF, bundle and training run in {cfg.out_dir}/")


def _experts(args: argparse.Namespace) -> None:
    from adapt_robot.config import load
    from adapt_robot.jobs.experts import ExpertsConfig, experts_table, run_experts_job
    from adapt_robot.plugins import import_plugins

    cfg = load(ExpertsConfig, args.launch, args.set)
    import_plugins(cfg.imports, [Path(args.launch).resolve().parent, Path.cwd()])
    rows = run_experts_job(cfg)
    print(experts_table(rows, cfg.tasks_per_split))
    print(f"\nresults, GIFs and the resolved config in {cfg.out_dir}/")


def _train(args: argparse.Namespace) -> None:
    from adapt_robot.jobs.train import run_train

    print(f"run directory: {run_train(args.launch, args.set, args.resume)}")


def _export(args: argparse.Namespace) -> None:
    from adapt_robot.export.cli_entry import export_main

    print(export_main(args.run_dir, args.out, args.capacity, args.fp16, args.sign_key))


def _eval(args: argparse.Namespace) -> None:
    from adapt_robot.jobs.evaluate import eval_main

    print(eval_main(args))


def _deploy(args: argparse.Namespace) -> None:
    from adapt_robot.jobs.deploy import deploy_main

    print(deploy_main(args))


def _render(args: argparse.Namespace) -> None:
    from adapt_robot.jobs.render import render_gif

    print(
        render_gif(
            args.family,
            args.engine,
            args.split,
            args.seed,
            args.width,
            args.height,
            args.out,
            args.strip,
        )
    )


def _scoreboard(args: argparse.Namespace) -> None:
    from adapt_robot.scoreboard.run import scoreboard_main

    print(scoreboard_main(args.launch, args.set, args.out))


def _spec(args: argparse.Namespace) -> None:
    from adapt_robot.jobs.render import family_spec

    print("\n\n".join(family_spec(name) for name in args.families))


def _scene(args: argparse.Namespace) -> None:
    from adapt_robot.sim.engines.scene_files import sample_task, write_scene
    from adapt_robot.sim.registry import get_family

    family = get_family(args.family)
    try:
        task = sample_task(family, args.split, args.seed, args.index)
        path = write_scene(family, task, args.out, seed=args.seed)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"{path} ({family.name}, {args.split} task {args.index} of seed {args.seed})")
    print(f"view it: python -m mujoco.viewer --mjcf={path}")


def _check_family(args: argparse.Namespace) -> None:
    from adapt_robot.jobs.check_family import check_family, report

    if args.tasks < 2:
        raise UsageError(f"--tasks: expected an integer >= 2, got {args.tasks}")
    checks = check_family(args.family, args.engine, args.tasks)
    print(report(args.family, checks))
    failed = sum(not c.ok for c in checks)
    if failed:
        raise UsageError(f"{failed} check(s) failed (see the table)")


def _config(args: argparse.Namespace) -> None:
    from adapt_robot.config_reference import reference

    print(reference(args.job))


def _bench(args: argparse.Namespace) -> None:
    if args.bundle is not None and args.suite != "runtime":
        raise UsageError(f"a bundle ({args.bundle}) is only read by `bench runtime`")
    if args.suite == "runtime":
        _bench_runtime(args)
    elif args.suite == "sim":
        from adapt_robot.bench.sim_bench import run_sim_bench

        print(run_sim_bench(args.families, args.engines, args.batch, args.steps, args.repeats))
    elif args.suite == "export":
        from adapt_robot.bench.export_bench import run_export_bench

        print(run_export_bench())
    else:
        from adapt_robot.bench.sampler_bench import run_sampler_bench

        print(run_sampler_bench())


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "demo": _demo,
    "experts": _experts,
    "train": _train,
    "export": _export,
    "eval": _eval,
    "deploy": _deploy,
    "render": _render,
    "scoreboard": _scoreboard,
    "spec": _spec,
    "config": _config,
    "check-family": _check_family,
    "scene": _scene,
    "bench": _bench,
}
"""Subcommand -> what runs it (each imports its job when called, so ``--help`` stays fast)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status.

    A project error (:class:`~adapt_robot.errors.AdaptRobotError`: a bad launch file, flag,
    run directory or bundle) prints one line and returns 2 (``ADAPT_ROBOT_DEBUG=1`` re-raises
    it for the traceback). Any other exception is a bug and propagates with its traceback.
    """
    args = _parser().parse_args(argv)
    bench_runtime = args.command == "bench" and args.suite == "runtime"
    if args.command == "deploy" or bench_runtime:
        # Single-threaded BLAS for the adapter (multithreaded BLAS made one adaptation several
        # times slower on 2 cores). BLAS reads these once, when numpy loads, and nothing
        # imported above loads numpy. The benchmark always measures 1 thread; for deploy an
        # explicit setting in the environment wins.
        for var in BLAS_THREAD_VARS:
            if bench_runtime:
                os.environ[var] = "1"
            else:
                os.environ.setdefault(var, "1")
    try:
        COMMANDS[args.command](args)
    except AdaptRobotError as err:
        if os.environ.get("ADAPT_ROBOT_DEBUG"):
            raise
        print(f"adapt-robot {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
