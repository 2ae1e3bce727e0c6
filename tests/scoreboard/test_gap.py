"""gap_closed arithmetic, the no-headroom refusal and the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from adapt_robot.scoreboard.gap import (
    NO_HEADROOM,
    NoHeadroomError,
    gap_closed,
    headroom_points,
    paired_gap_closed,
)


def test_gap_closed_by_hand() -> None:
    assert gap_closed(0.6, 0.2, 1.0) == pytest.approx(0.5)  # 0.4 of a 0.8 gap
    assert gap_closed(0.2, 0.2, 0.9) == 0.0
    assert gap_closed(0.9, 0.2, 0.9) == pytest.approx(1.0)
    assert headroom_points(0.9, 0.65) == pytest.approx(25.0)


def test_adaptive_worse_than_robust_gives_a_negative_gap() -> None:
    assert gap_closed(0.1, 0.3, 0.7) == pytest.approx(-0.5)


@pytest.mark.parametrize("oracle", [0.4, 0.3])
def test_no_headroom_is_refused_not_divided(oracle: float) -> None:
    with pytest.raises(NoHeadroomError, match=NO_HEADROOM):
        gap_closed(0.5, 0.4, oracle)
    same = np.full(5, 0.4)
    g = paired_gap_closed(np.full(5, 0.6), same, np.full(5, oracle))
    assert g.refused == NO_HEADROOM
    assert g.value is None and g.low is None and g.high is None


def test_paired_bootstrap_keeps_the_pairing() -> None:
    # Per task the adaptive arm closes exactly half of that task's gap: every resample, however
    # it draws tasks, gives 0.5, so the interval collapses onto the point estimate.
    robust = np.array([0.0, 0.2, 0.4, 0.1])
    oracle = np.array([1.0, 0.6, 0.8, 0.9])
    adaptive = (robust + oracle) / 2
    g = paired_gap_closed(adaptive, robust, oracle, resamples=500, seed=3)
    assert g.value == pytest.approx(0.5)
    assert g.low == pytest.approx(0.5) and g.high == pytest.approx(0.5)
    assert g.dropped == 0


def test_bootstrap_is_deterministic_with_a_seed() -> None:
    rng = np.random.default_rng(0)
    robust = rng.uniform(0.0, 0.4, 30)
    oracle = rng.uniform(0.6, 1.0, 30)
    adaptive = rng.uniform(0.2, 0.9, 30)
    a = paired_gap_closed(adaptive, robust, oracle, resamples=400, seed=7)
    b = paired_gap_closed(adaptive, robust, oracle, resamples=400, seed=7)
    c = paired_gap_closed(adaptive, robust, oracle, resamples=400, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low is not None and a.high is not None and a.value is not None
    assert a.low < a.value < a.high


def test_resamples_without_headroom_are_dropped_and_counted() -> None:
    # One task of ten holds all the headroom: resamples that miss it have none.
    robust = np.zeros(10)
    oracle = np.zeros(10)
    oracle[0] = 1.0
    g = paired_gap_closed(oracle.copy(), robust, oracle, resamples=1000, seed=0)
    assert g.value == pytest.approx(1.0)
    assert 0 < g.dropped < 1000
    # (9/10)^10 of the resamples miss task 0: about 35%, under the 50% limit.
    assert g.low == pytest.approx(1.0) and g.high == pytest.approx(1.0)


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="robust: expected one success rate per task"):
        paired_gap_closed(np.ones(3), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match=r"oracle: success rates must lie in \[0, 1\]"):
        paired_gap_closed(np.ones(3), np.zeros(3), np.full(3, 2.0))
