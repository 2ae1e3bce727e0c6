"""What ``adapt-robot deploy`` prints and writes: the table of a :class:`DeployReport`, its files.

Three steps kept apart: the report is data (:mod:`adapt_robot.jobs.deploy_report`),
:func:`render_table` and :func:`adapt_robot.jobs.deploy_figures.plot_report` render it, and
:func:`write_report` writes ``deploy.json``, ``table.md`` and ``deploy.png``. Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from adapt_robot.deploy.scoring import AFTER, BEFORE
from adapt_robot.jobs.deploy_report import DeployReport
from adapt_robot.reporting.cells import mean_cell, points_cell, rate_cell
from adapt_robot.reporting.tables import markdown_table

JSON_FILE = "deploy.json"
"""Everything measured, as :meth:`DeployReport.to_json` gives it."""
TABLE_FILE = "table.md"
"""The table :func:`render_table` renders."""
PLOT_FILE = "deploy.png"
"""Return per episode and success before/after (:func:`.deploy_figures.plot_report`)."""


def _triple(v: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in v)


def _schedule(r: DeployReport) -> str:
    if r.sequential:
        return (
            f"sequential: 1 episode with the meta-parameters, an adaptation after each of "
            f"{r.episodes} exploration episodes (on all so far), {r.post_episodes} scored after"
        )
    return (
        f"batch: {r.episodes} episode(s) with the meta-parameters, one adaptation on them, "
        f"{r.post_episodes} scored after"
    )


def _figures(r: DeployReport) -> list[tuple[str, str | None]]:
    """(figure, value) rows of the table; a value of None is a figure not measured."""
    k, n = r.counts(BEFORE)
    ka, na = r.counts(AFTER)
    after, gain, r_gain = r.success_after, r.success_gain, r.return_gain
    p50, mx = r.adapt_ms
    w50, wmx = r.adapt_wall_ms
    lp = r.loop
    outcomes = ", ".join(f"{c} {reason}" for reason, c in sorted(r.adapt_outcomes.items()))
    dropped = sum(o.dropped_rows for o in r.objects)
    if dropped:
        outcomes += f"; {dropped} rows dropped (K x horizon > capacity {r.capacity})"
    rollbacks = ", ".join(
        f"{key.removeprefix('rollbacks_')} {v}"
        for key, v in r.safety.items()
        if key.startswith("rollbacks_") and v
    )
    unit = "object"
    return [
        ("success before (meta-params)", f"{rate_cell(r.success_before)} ({k}/{n} episodes)"),
        ("success after (adapted)", f"{rate_cell(after)} ({ka}/{na} episodes)" if after else None),
        ("success gain (points)", points_cell(gain, unit=unit) if gain else None),
        ("return before", mean_cell(r.return_before, unit=unit) if r.return_before else None),
        ("return after", mean_cell(r.return_after, unit=unit) if r.return_after else None),
        ("return gain", mean_cell(r_gain, sign=True, unit=unit) if r_gain else None),
        ("schedule", _schedule(r)),
        ("adaptations", outcomes if not r.sequential else f"last per object: {outcomes}"),
        ("post episodes on meta-params", f"{r.post_on_meta} (rolled back or kept)"),
        ("transition episodes", f"{r.transition_episodes} (adapting; not scored)"),
        ("adapt ms p50 / max", f"{p50:.2f} / {mx:.2f} (worker thread)"),
        ("adapt to swap ms p50 / max", f"{w50:.2f} / {wmx:.2f} (episode end to new params)"),
        ("act latency us p50/p99/max", _triple(lp.act_us)),
        ("tick compute us p50/p99/max", _triple(lp.compute_us)),
        ("jitter us p50/p99/max", _triple(lp.jitter_us)),
        (
            "deadline misses",
            f"{lp.misses} of {lp.ticks} ticks (+{lp.reset_misses} on reset ticks), "
            f"{lp.skipped_slots} slots skipped",
        ),
        ("rate", f"{lp.rate_hz:g} Hz requested, {lp.achieved_hz:.1f} Hz achieved"),
        (
            "safety",
            f"{r.safety.get('obs_faults', 0)} obs faults, "
            f"{r.safety.get('reward_faults', 0)} reward faults, "
            f"{r.safety.get('clipped_actions', 0)} clipped actions, "
            f"{r.safety.get('rollbacks', 0)} rollbacks" + (f" ({rollbacks})" if rollbacks else ""),
        ),
        (
            "loop errors",
            f"{lp.robot_errors} robot, {lp.controller_errors} controller, "
            f"{lp.safe_actions} safe actions sent",
        ),
        ("wall time", f"{r.seconds:.1f} s ({lp.elapsed_s:.1f} s in the loops)"),
    ]


def render_table(report: DeployReport) -> str:
    """The figures that matter as a Markdown table, under a header line and a note."""
    r = report
    head = (
        f"Deploy {r.bundle}: {r.family} on {r.robot} (trained in {r.trained_engine}), "
        f"{len(r.objects)} {r.split} objects, K={r.episodes} exploration episodes, "
        f"n={r.steps} inner steps, {r.post_episodes} post episodes, {r.rate_hz:g} Hz, "
        f"seed {r.seed}."
    )
    note = (
        "Success: mean [95% Wilson CI] over episodes; return: mean [95% t CI] over objects; "
        "gains: paired over objects. Actions sampled, as in `adapt-robot eval`."
    )
    return "\n".join([head, note, "", markdown_table(["figure", "value"], _figures(r))])


def write_report(report: DeployReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``deploy.json``, ``table.md`` and ``deploy.png`` into ``out_dir``; their paths."""
    from adapt_robot.jobs.deploy_figures import plot_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_FILE, "table": out / TABLE_FILE, "plot": out / PLOT_FILE}
    text = json.dumps(report.to_json(), indent=1, allow_nan=False)
    paths["json"].write_text(text + "\n")
    paths["table"].write_text(render_table(report) + "\n")
    plot_report(report, paths["plot"])
    return paths
