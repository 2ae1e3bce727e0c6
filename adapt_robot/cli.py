"""``adapt-robot``: the one entry point. ``adapt-robot --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from adapt_robot.config import ConfigError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="adapt-robot",
        description="Meta-train robot policies in simulation, export them to ONNX, adapt on-line.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    experts = sub.add_parser(
        "experts", help="scripted experts on every task family and engine: table and GIFs"
    )
    experts.add_argument("launch", help="launch file, e.g. launch/experts.yaml")
    experts.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a launch-file key (repeatable), e.g. --set seed=3",
    )

    train = sub.add_parser("train", help="meta-train (or train a baseline) from a launch file")
    train.add_argument("launch", help="launch file, e.g. launch/point_maml.yaml")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a launch-file key (repeatable), e.g. --set algo.inner_lr=0.05",
    )
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

    spec = sub.add_parser("spec", help="print families' observation/action layouts and parameters")
    spec.add_argument("families", nargs="+", metavar="FAMILY")

    bench = sub.add_parser("bench", help="benchmarks that print tables of measured ratios")
    bench.add_argument(
        "suite",
        choices=["sim", "export", "sampler"],
        help="sim: env steps/s vs physics ceiling; export: ONNX inner step vs torch; "
        "sampler: 1 vs 2 processes vs Ray",
    )
    bench.add_argument("--families", nargs="+", default=["grasp", "door"])
    bench.add_argument("--engines", nargs="+", default=["mujoco", "pybullet"])
    bench.add_argument("--batch", type=int, default=64)
    bench.add_argument("--steps", type=int, default=100, help="control steps per measurement")
    bench.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors print one clear line, status 2)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "experts":
            from adapt_robot.config import load
            from adapt_robot.jobs.experts import ExpertsConfig, experts_table, run_experts_job

            cfg = load(ExpertsConfig, args.launch, args.set)
            rows = run_experts_job(cfg)
            print(experts_table(rows, cfg.tasks_per_split))
            print(f"\nresults, GIFs and the resolved config in {cfg.out_dir}/")
        elif args.command == "train":
            from adapt_robot.jobs.train import run_train

            print(f"run directory: {run_train(args.launch, args.set, args.resume)}")
        elif args.command == "export":
            from export.cli_entry import export_main

            print(export_main(args.run_dir, args.out, args.capacity, args.fp16))
        elif args.command == "eval":
            from adapt_robot.jobs.evaluate import eval_main

            print(eval_main(args))
        elif args.command == "render":
            from adapt_robot.jobs.render import render_gif

            path = render_gif(
                args.family,
                args.engine,
                args.split,
                args.seed,
                args.width,
                args.height,
                args.out,
                args.strip,
            )
            print(path)
        elif args.command == "spec":
            from adapt_robot.jobs.render import family_spec

            print("\n\n".join(family_spec(name) for name in args.families))
        elif args.command == "bench":
            if args.suite == "sim":
                from adapt_robot.bench.sim_bench import run_sim_bench

                print(
                    run_sim_bench(args.families, args.engines, args.batch, args.steps, args.repeats)
                )
            elif args.suite == "export":
                from export.bench import run_export_bench

                print(run_export_bench())
            else:
                from adapt_robot.bench.sampler_bench import run_sampler_bench

                print(run_sampler_bench())
    except (ConfigError, ValueError, TypeError, OSError, FloatingPointError) as err:
        # Bad input, a refused output directory or a diverged run: one clear line, no
        # traceback. ADAPT_ROBOT_DEBUG=1 re-raises for a full traceback.
        if os.environ.get("ADAPT_ROBOT_DEBUG"):
            raise
        print(f"adapt-robot {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
