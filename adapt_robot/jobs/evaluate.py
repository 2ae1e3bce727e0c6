"""``adapt-robot eval RUN [RUN ...]``: the held-out evaluation protocol, reports, table and plot.

Each run is scored by :func:`adapt_robot.meta.evaluation.evaluate_learner`. Every run gets the
same seed, so all runs are scored on the same held-out tasks. Each run gets ``RUN/eval/``
(``RUN/eval-ENGINE/`` with ``--backend``), holding ``report.json``, ``adaptation_curve.png``
and ``table.md``. With several runs, one comparison table and one plot of every run go to
``--out`` (default: ``eval-compare[-ENGINE]`` in the runs' common parent directory). Every run
is checked (directory, checkpoint, engine) before any episode is rolled out.

Heavy imports (torch, matplotlib) happen inside the functions, so ``adapt-robot --help`` stays
fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapt_robot.config import ConfigError
from adapt_robot.errors import InputNotFound

if TYPE_CHECKING:
    from adapt_robot.meta.algorithms import Learner
    from adapt_robot.meta.evaluation import EvalProtocol, EvalReport

REPORT = "report.json"
CURVE = "adaptation_curve.png"
TABLE = "table.md"

_FLAGS = {
    "tasks": "--tasks",
    "exploration_episodes": "--episodes",
    "max_inner_steps": "--steps",
    "post_episodes": "--post-episodes",
    "seed": "--seed",
}
"""Protocol field -> the ``adapt-robot eval`` flag that sets it (for error messages)."""


def eval_dir_name(engine: str | None) -> str:
    """``eval`` for the run's own engine, ``eval-ENGINE`` for an override."""
    return "eval" if engine is None else f"eval-{engine}"


def open_run(run_dir: str | Path, engine: str | None) -> tuple[Learner, dict[str, Any]]:
    """The learner of a run, its sampler built for ``engine`` (None: the run's), and its source.

    Raises :class:`~adapt_robot.errors.InputNotFound` (a ``FileNotFoundError``) for a missing
    directory or checkpoint and ``ConfigError`` (a ``ValueError``) for an engine the run's
    family does not have.
    """
    from adapt_robot.meta.samplers import make_sampler
    from adapt_robot.meta.trainer import CHECKPOINT, load_run

    path = Path(run_dir)
    if not path.is_dir():
        raise InputNotFound(
            f"{path}: no such run directory; pass the out_dir of an `adapt-robot train` run"
        )
    if not (path / CHECKPOINT).is_file():
        raise InputNotFound(
            f"{path}: no {CHECKPOINT} in this directory; it is not a training run or it has not "
            "checkpointed yet (train it, or pass the run's out_dir)"
        )
    cfg, learner, ckpt = load_run(path)
    trained_engine = learner.sampler.engine
    family = learner.sampler.family
    if engine is not None and engine != trained_engine:
        learner.close()
        if engine not in family.engines:
            raise ConfigError(
                f"{path}: --backend {engine}: family {family.name!r} runs only in "
                f"{list(family.engines)}; evaluate this run without --backend"
            )
        sampler_cfg = dataclasses.replace(cfg.sampler, engine=engine)
        learner.sampler = make_sampler(family, learner.policy, sampler_cfg)
    source = {
        "run_dir": str(path),
        "iteration": int(ckpt["iteration"]),
        "trained_env_steps": int(ckpt["env_steps"]),
        "trained_engine": trained_engine,
        "trained_inner_steps": learner.inner_steps,
        "trained_episodes_per_task": cfg.sampler.episodes_per_task,
        "threads": cfg.threads,
    }
    return learner, source


def make_protocol(**fields: Any) -> EvalProtocol:
    """An :class:`EvalProtocol`; a bad value is a ConfigError naming its ``eval`` flag."""
    from adapt_robot.meta.evaluation import EvalProtocol

    try:
        return EvalProtocol(**fields)
    except ConfigError as err:
        msg = str(err)
        for name, flag in _FLAGS.items():
            if msg.startswith(f"eval.{name}:"):
                msg = f"{flag}{msg[len('eval.' + name) :]}"
        raise ConfigError(msg) from None


def eval_main(args: argparse.Namespace) -> str:
    """``adapt-robot eval``: build the protocol from the flags, run it, return the table."""
    protocol = make_protocol(
        tasks=args.tasks,
        exploration_episodes=args.episodes,
        max_inner_steps=args.steps,
        post_episodes=args.post_episodes,
        seed=args.seed,
        engine=args.backend,
    )
    return run_eval(args.runs, protocol, args.out)[1]


def run_eval(
    run_dirs: Sequence[str | Path], protocol: EvalProtocol, out: str | Path | None = None
) -> tuple[list[EvalReport], str]:
    """Evaluate every run, write reports, plots and tables; returns the reports and the table."""
    import torch

    from adapt_robot.meta.evaluation import evaluate_learner
    from adapt_robot.progress import progress

    if not run_dirs:
        raise ValueError("runs: expected at least one run directory")
    opened: list[tuple[Learner, dict[str, Any]]] = []
    reports: list[EvalReport] = []
    try:
        for d in run_dirs:  # every run checked before any work
            opened.append(open_run(d, protocol.engine))
        labels = _labels([Path(d) for d in run_dirs])
        for label, (learner, source) in zip(labels, opened, strict=True):
            torch.set_num_threads(int(source["threads"]))
            track = functools.partial(progress, desc=f"eval {label}", unit="stage")
            reports.append(evaluate_learner(learner, protocol, track=track, source=source))
    finally:
        for learner, _ in opened:
            learner.close()
    name = eval_dir_name(protocol.engine)
    own_dirs = [Path(d) / name for d in run_dirs]
    if out is not None and len(run_dirs) == 1:
        own_dirs = [Path(out)]
    for own, label, report in zip(own_dirs, labels, reports, strict=True):
        write_outputs(own, [label], [report])
    table = comparison_table(labels, reports)
    written = ", ".join(f"{d}/" for d in own_dirs)
    if len(run_dirs) > 1:
        where = Path(out) if out is not None else _common_parent(run_dirs) / f"{name}-compare"
        write_outputs(where, labels, reports)
        table += f"\n\nreports in {written}; comparison table and plot in {where}/"
    else:
        table += f"\n\n{REPORT}, {TABLE} and {CURVE} in {written}"
    return reports, table


def write_outputs(out_dir: Path, labels: list[str], reports: list[EvalReport]) -> None:
    """Write ``report.json`` (one run) or ``reports.json`` (several), the table and the plot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(reports) == 1:
        payload: Any = reports[0].to_json()
        (out_dir / REPORT).write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
    else:
        payload = [{"label": lb, **r.to_json()} for lb, r in zip(labels, reports, strict=True)]
        text = json.dumps(payload, indent=1, allow_nan=False)
        (out_dir / "reports.json").write_text(text + "\n")
    (out_dir / TABLE).write_text(comparison_table(labels, reports) + "\n")
    plot_curves(labels, reports, out_dir / CURVE)


def comparison_table(labels: list[str], reports: list[EvalReport]) -> str:
    """Markdown tables of success and return, pre and after each inner step, with 95% CIs."""
    from adapt_robot.reporting.cells import mean_cell, points_cell, rate_cell
    from adapt_robot.reporting.tables import markdown_table

    p = reports[0].protocol
    steps = max(r.protocol.max_inner_steps for r in reports)
    stages = ["pre", *(f"post@{n}" for n in range(1, steps + 1))]
    success_rows: list[list[object]] = []
    return_rows: list[list[object]] = []
    for label, r in zip(labels, reports, strict=True):
        curve = r.curve()
        pad: list[object] = [None] * (steps + 1 - len(curve))
        s_gain, r_gain = curve[-1].success_gain, curve[-1].return_gain
        s_cell = points_cell(s_gain, unit="task") if s_gain else None
        r_cell = mean_cell(r_gain, sign=True, unit="task") if r_gain else None
        run = [label, r.algo, r.engine]
        success_rows.append([*run, *(rate_cell(s.success) for s in curve), *pad, s_cell])
        return_rows.append([*run, *(mean_cell(s.ret, unit="task") for s in curve), *pad, r_cell])
    lines = [
        f"Held-out evaluation: {p.tasks} {p.split} tasks (seed {p.seed}), "
        f"K={p.exploration_episodes} exploration episodes (pre-adaptation and the inner-step "
        f"batch), {p.post_episodes} episodes after each inner step.",
        "Success: mean [95% Wilson CI] over episodes; return: mean [95% Student-t CI] over "
        "tasks; gain: paired change from pre-adaptation after the last step [95% t CI].",
        "",
        markdown_table(
            ["run", "algo", "engine", f"success {stages[0]}", *stages[1:], "gain (points)"],
            success_rows,
        ),
        "",
        markdown_table(
            ["run", "algo", "engine", f"return {stages[0]}", *stages[1:], "gain"], return_rows
        ),
    ]
    rolled = [f"{lb}: {sum(r.rolled_back)}" for lb, r in zip(labels, reports, strict=True)]
    if any(sum(r.rolled_back) for r in reports):
        lines += ["", f"Non-finite inner steps rolled back (task-steps): {', '.join(rolled)}"]
    return "\n".join(lines)


def plot_curves(labels: list[str], reports: list[EvalReport], path: Path) -> None:
    """The adaptation curve (success and return vs inner steps, 95% CIs) as a PNG (Agg)."""
    from adapt_robot.reporting.figures import agg_figure, error_bars, save_figure

    fig = agg_figure(10, 4)
    ax_s, ax_r = fig.subplots(1, 2)
    width = 0.06 * (len(reports) - 1)
    for i, (label, r) in enumerate(zip(labels, reports, strict=True)):
        curve = r.curve()
        shift = (i / max(len(reports) - 1, 1) - 0.5) * width if len(reports) > 1 else 0.0
        x = [s.inner_steps + shift for s in curve]
        for ax, ivs in ((ax_s, [s.success for s in curve]), (ax_r, [s.ret for s in curve])):
            # An unbounded end (a t interval of one task) is drawn without a bar.
            ax.errorbar(
                x,
                [iv.mean for iv in ivs],
                yerr=error_bars(ivs),
                marker="o",
                capsize=3,
                label=f"{label} ({r.algo})",
            )
    steps = max(r.protocol.max_inner_steps for r in reports)
    p = reports[0].protocol
    for ax, what in ((ax_s, "success rate (95% Wilson CI)"), (ax_r, "return (95% t CI)")):
        ax.set_xticks(range(steps + 1))
        ax.set_xlabel("inner steps (0 = pre-adaptation)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    ax_s.set_ylim(-0.02, 1.02)
    ax_s.legend(fontsize=8)
    engines = ", ".join(sorted({r.engine for r in reports}))
    fig.suptitle(
        f"{reports[0].family} ({engines}): {p.tasks} held-out {p.split} tasks, "
        f"K={p.exploration_episodes}, {p.post_episodes} episodes per step"
    )
    save_figure(fig, path, dpi=120)


def _labels(paths: list[Path]) -> list[str]:
    """Short, unique run labels: directory names, or full paths where names collide."""
    names = [p.name or str(p) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths, strict=True)]


def _common_parent(run_dirs: Sequence[str | Path]) -> Path:
    """The deepest directory containing every run."""
    parents = [str(Path(d).resolve().parent) for d in run_dirs]
    return Path(os.path.commonpath(parents))
