"""``scoreboard.md``: the report mapping as Markdown tables.

The mapping is :func:`adapt_robot.scoreboard.report.build_report`'s; nothing else is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapt_robot.reporting.tables import markdown_table


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.1f}%"


def _interval(d: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 1) -> str | None:
    """``mean [low, high]``; an unbounded end is written as ``?``."""
    if d is None:
        return None

    def f(v: float | None) -> str:
        return "?" if v is None else f"{scale * v:.{digits}f}"

    return f"{f(d['mean'])} [{f(d['low'])}, {f(d['high'])}]"


def _ms(row: Mapping[str, Any]) -> str | None:
    if row["adapt_ms_median"] is None:
        return None
    return f"{row['adapt_ms_median']:.1f} / {row['adapt_ms_p90']:.1f}"


def _time(row: Mapping[str, Any]) -> str | None:
    t = row["time_to_success"]
    if t is None:
        return None
    med = "never" if t["median_steps"] is None else f"{t['median_steps']:.0f}"
    return f"{med} ({t['tasks_succeeded']}/{t['tasks']} tasks)"


def _rejections(row: Mapping[str, Any]) -> str | None:
    if not row["adaptations"] and not row["rejections"]:
        return None
    parts = [f"{k} {v}" for k, v in sorted(row["rejections"].items())]
    return "; ".join(parts) if parts else "0"


def _gap(g: Mapping[str, Any]) -> str:
    if g["refused"] is not None:
        return f"refused: {g['refused']}"
    ci = "[?]" if g["low"] is None else f"[{g['low']:.2f}, {g['high']:.2f}]"
    return f"{g['value']:.2f} {ci}"


def engine_section(board: Mapping[str, Any], min_headroom: float) -> str:
    """The tables of one engine."""
    rows = [
        [
            r["arm"],
            r["kind"],
            r["stage"],
            _interval(r["success"], 100.0),
            _interval(r["mean_return"], 1.0, 2),
            _time(r),
            _ms(r),
            _rejections(r),
        ]
        for r in board["rows"]
    ]
    table = markdown_table(
        [
            "arm",
            "kind",
            "stage",
            "success % [95% Wilson]",
            "mean return [95% t]",
            "steps to 1st success (median)",
            "adapt ms median / p90",
            "rejected",
        ],
        rows,
        ["left", "left", "left", "right", "right", "right", "right", "left"],
    )
    room = board["headroom_points"]
    flag = (
        f"headroom {room:.1f} points >= {min_headroom:g}: tests adaptation"
        if board["tests_adaptation"]
        else f"**headroom {room:.1f} points < {min_headroom:g}: this family and engine does not "
        "test adaptation**"
    )
    refs = (
        f"Oracle: {board['oracle']['arm']} {_pct(board['oracle']['success'])}; best robust: "
        f"{board['best_robust']['arm']} {_pct(board['best_robust']['success'])}; {flag}."
    )
    parts = [f"### {board['engine']}", "", table, "", refs]
    if board["gap_closed"]:
        gap = markdown_table(
            ["arm", "stage", "gap closed [95% paired bootstrap]", "resamples dropped"],
            [
                [g["arm"], g["stage"], _gap(g), b["dropped"]]
                for g, b in zip(board["gap_closed"], board["gap_bootstrap"], strict=True)
            ],
            ["left", "left", "right", "right"],
        )
        parts += ["", gap]
    if board["notes"]:
        parts.append("")
        parts += [f"- {arm}: " + "; ".join(notes) for arm, notes in board["notes"].items()]
    return "\n".join(parts)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The whole ``scoreboard.md`` text."""
    head = (
        f"## Scoreboard: {report['family']}, {report['tasks']} {report['split']} tasks, seed "
        f"{report['seed']}, {report['post_episodes']} scored episodes per task and stage"
    )
    parts = [
        head,
        "",
        "gap closed = (adaptive - best robust) / (oracle - best robust), on the same tasks. "
        "Success intervals are over episodes; return, gap and engine intervals are over tasks.",
    ]
    for board in report["engines"]:
        parts += ["", engine_section(board, report["min_headroom_points"])]
    diffs = report["engine_differences"]
    if diffs:
        table = markdown_table(
            ["arm", "stage", "engine - reference", "success difference, points [95% t]"],
            [
                [
                    d["arm"],
                    d["stage"],
                    f"{d['engine']} - {d['reference']}",
                    _interval(d["difference_points"]),
                ]
                for d in diffs
            ],
            ["left", "left", "left", "right"],
        )
        parts += ["", "### Engine differences", "", table]
    return "\n".join(parts) + "\n"
