"""Intervals as table cells and as error bars (adapt_robot.reporting.cells, .figures)."""

from __future__ import annotations

import math

from adapt_robot.reporting.cells import mean_cell, points_cell, rate_cell
from adapt_robot.reporting.figures import error_bars
from adapt_robot.reporting.stats import Interval, t_interval


def _iv(mean: float, low: float, high: float) -> Interval:
    return Interval(mean=mean, low=low, high=high, n=5, method="t")


def test_cells_by_hand() -> None:
    assert rate_cell(_iv(0.8, 0.49, 0.944)) == "80% [49%, 94%]"
    assert mean_cell(_iv(1.254, 0.8, 1.7)) == "1.25 [0.80, 1.70]"
    assert mean_cell(_iv(0.5, -0.1, 1.1), sign=True) == "+0.50 [-0.10, 1.10]"
    assert points_cell(_iv(0.12, 0.03, 0.21)) == "+12 [+3, +21]"


def test_one_sample_has_no_interval_and_says_so() -> None:
    one = t_interval([2.5])
    assert mean_cell(one, unit="task") == "2.50 (one task: no CI)"
    assert points_cell(t_interval([-0.25]), unit="object") == "-25 (one object: no CI)"


def test_error_bars_are_distances_and_zero_for_unbounded_ends() -> None:
    below, above = error_bars([_iv(1.0, 0.25, 1.5), t_interval([3.0])])
    assert below == [0.75, 0.0] and above == [0.5, 0.0]
    assert all(math.isfinite(v) for v in below + above)
