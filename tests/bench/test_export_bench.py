"""The export benchmark (adapt_robot.bench.export_bench) on one small policy: a table of ratios."""

from __future__ import annotations

import pytest

from adapt_robot.bench.export_bench import run_export_bench


@pytest.mark.slow
def test_one_small_policy_gives_one_row_of_positive_timings() -> None:
    table = run_export_bench(budget_s=0.01, hidden=[(8,)], capacities=[16])
    lines = table.splitlines()
    assert lines[0].startswith("| policy | N | ONNX Runtime (ms) |") and lines[1].startswith("|---")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:2] == ["8", "16"]
    timings = [float(c) for c in cells[2:5]]
    assert all(t > 0 for t in timings)
    # The ratios are the timings divided (timings of a few us are printed to 3 decimals of a ms,
    # so the printed quotient can be off by a few percent).
    assert float(cells[5].rstrip("x")) == pytest.approx(timings[1] / timings[0], rel=0.1)
    assert float(cells[6].rstrip("x")) == pytest.approx(timings[2] / timings[0], rel=0.1)
    assert "1 thread" in table
