"""Confidence intervals as table cells: one spelling for every report.

A success rate is written in percent (``80% [49%, 94%]``), a mean with two decimals
(``1.25 [0.80, 1.70]``), a change of success rate in percentage points (``+12 [+3, +21]``).
A t interval of one sample has no bounds: it is written as the mean and ``(one UNIT: no CI)``,
never with infinite bounds.
"""

from __future__ import annotations

import math

from adapt_robot.reporting.stats import Interval


def _bounded(iv: Interval) -> bool:
    return math.isfinite(iv.low) and math.isfinite(iv.high)


def rate_cell(iv: Interval) -> str:
    """A success rate and its interval in percent, e.g. ``80% [49%, 94%]``."""
    return f"{iv.mean:.0%} [{iv.low:.0%}, {iv.high:.0%}]"


def mean_cell(iv: Interval, *, sign: bool = False, unit: str = "sample") -> str:
    """A mean and its interval with two decimals; ``sign`` writes ``+`` on a positive mean.

    ``unit`` names what the interval is over (``task``, ``object``) for the unbounded case.
    """
    fmt = "+.2f" if sign else ".2f"
    if not _bounded(iv):
        return f"{iv.mean:{fmt}} (one {unit}: no CI)"
    return f"{iv.mean:{fmt}} [{iv.low:.2f}, {iv.high:.2f}]"


def points_cell(iv: Interval, *, unit: str = "sample") -> str:
    """A change of a rate in signed percentage points, e.g. ``+12 [+3, +21]``."""
    if not _bounded(iv):
        return f"{100 * iv.mean:+.0f} (one {unit}: no CI)"
    return f"{100 * iv.mean:+.0f} [{100 * iv.low:+.0f}, {100 * iv.high:+.0f}]"
