"""Confidence intervals of the reports (adapt_robot.reporting.stats), hand-computed."""

from __future__ import annotations

import math

import pytest

from adapt_robot.reporting.stats import (
    student_t_quantile,
    student_t_two_sided,
    t_interval,
    wilson_interval,
)


def test_wilson_interval_of_8_in_10_by_hand() -> None:
    # z = 1.959964; center = (0.8 + z^2/20) / (1 + z^2/10) = 0.716738,
    # half = z / (1 + z^2/10) * sqrt(0.016 + z^2/400) = 0.226578.
    iv = wilson_interval(8, 10)
    assert iv.mean == 0.8 and iv.n == 10 and iv.method == "wilson"
    assert iv.low == pytest.approx(0.716738 - 0.226578, abs=1e-5)
    assert iv.high == pytest.approx(0.716738 + 0.226578, abs=1e-5)


def test_wilson_interval_at_the_edges_stays_in_range_and_contains_the_rate() -> None:
    zero, full = wilson_interval(0, 10), wilson_interval(10, 10)
    # Closed form at p = 0: high = z^2 / (n + z^2) = 3.841459 / 13.841459.
    assert zero.low == 0.0 and zero.high == pytest.approx(0.277533, abs=1e-6)
    assert full.high == 1.0 and full.low == pytest.approx(1 - 0.277533, abs=1e-6)
    for n in range(1, 60):
        for s in (0, n // 3, n):
            iv = wilson_interval(s, n)
            assert 0.0 <= iv.low <= iv.mean <= iv.high <= 1.0


def test_wilson_interval_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="trials: expected at least 1 trial, got 0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match=r"successes: expected a count in \[0, 5\], got 6"):
        wilson_interval(6, 5)


@pytest.mark.parametrize(
    ("df", "table"),
    [(1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157), (30, 2.042272), (120, 1.979930)],
)
def test_student_t_quantile_matches_tables(df: int, table: float) -> None:
    assert student_t_quantile(0.95, df) == pytest.approx(table, abs=1e-6)
    assert student_t_two_sided(table, df) == pytest.approx(0.95, abs=1e-6)


def test_t_interval_by_hand_and_with_one_value() -> None:
    # mean 3, s = sqrt(2.5), half = t(0.975, 4) * s / sqrt(5) = 2.776445 * 0.707107 = 1.963243.
    iv = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (iv.mean, iv.n, iv.method) == (3.0, 5, "t")
    assert iv.low == pytest.approx(3 - 1.963243, abs=1e-6)
    assert iv.high == pytest.approx(3 + 1.963243, abs=1e-6)
    one = t_interval([2.5])
    assert one.mean == 2.5 and math.isinf(one.low) and math.isinf(one.high)
    assert one.to_dict()["low"] is None and one.to_dict()["high"] is None
    with pytest.raises(ValueError, match="at least one value"):
        t_interval([])


# --- the protocol ---------------------------------------------------------------------------
