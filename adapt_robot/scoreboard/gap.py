"""Headroom and the share of the gap closed: ``(adaptive - robust) / (oracle - robust)``.

All three figures are success rates on the same tasks. ``gap_closed`` is 0 for an adaptive arm
no better than the best robust one, 1 for one as good as the oracle, negative for one worse than
the robust reference, above 1 for one better than the oracle. With no headroom
(``oracle <= robust``) there is no gap to close and the figure is refused, never divided out.

The interval is a **paired bootstrap over tasks**: each resample draws task indices with
replacement and recomputes all three rates on the same drawn tasks, so the correlation between
arms on a task (an easy object is easy for every arm) is kept. Resamples in which the drawn
tasks leave no headroom are dropped and counted; the percentile interval is taken over the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.reporting.stats import CONFIDENCE

NO_HEADROOM = "no headroom"
"""Why gap_closed is refused when the oracle is no better than the best robust arm."""
MIN_KEPT = 0.5
"""Least share of bootstrap resamples with headroom for an interval to be reported."""


class NoHeadroomError(ValueError):
    """``oracle <= robust``: there is no gap for adaptation to close."""


def headroom_points(oracle: float, robust: float) -> float:
    """``oracle - robust`` in points (0-100 scale) from two success rates in [0, 1]."""
    return 100.0 * (oracle - robust)


def gap_closed(adaptive: float, robust: float, oracle: float) -> float:
    """``(adaptive - robust) / (oracle - robust)``; raises :class:`NoHeadroomError` without gap."""
    if not oracle > robust:
        raise NoHeadroomError(
            f"{NO_HEADROOM}: oracle success {oracle:.3f} is not above the best robust "
            f"{robust:.3f}, so there is no gap for adaptation to close"
        )
    return (adaptive - robust) / (oracle - robust)


@dataclass(frozen=True, kw_only=True)
class GapClosed:
    """gap_closed of one adaptive arm and stage, with its paired bootstrap interval."""

    value: float | None
    """The point estimate on all tasks; ``None`` when refused."""
    low: float | None
    """Lower end of the interval (``None``: refused, or too few resamples with headroom)."""
    high: float | None
    """Upper end of the interval."""
    refused: str | None
    """Why the figure is not given (:data:`NO_HEADROOM`), else ``None``."""
    resamples: int
    """Bootstrap resamples drawn."""
    dropped: int
    """Resamples without headroom on their drawn tasks (left out of the interval)."""
    confidence: float = CONFIDENCE
    """Confidence level of the interval."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of the figure alone: every number in it is a share of the gap."""
        return {"value": self.value, "low": self.low, "high": self.high, "refused": self.refused}

    def bootstrap_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of how the interval was drawn (kept apart from the figure)."""
        return {"resamples": self.resamples, "dropped": self.dropped, "confidence": self.confidence}


def _rates(x: np.ndarray, name: str, n: int | None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0 or (n is not None and a.size != n):
        raise ValueError(
            f"{name}: expected one success rate per task ({n if n is not None else '>= 1'} "
            f"tasks, paired with the other arms), got {a.size}"
        )
    if not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"{name}: success rates must lie in [0, 1]")
    return a


def paired_gap_closed(
    adaptive: np.ndarray,
    robust: np.ndarray,
    oracle: np.ndarray,
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> GapClosed:
    """gap_closed from per-task success rates of three arms on the same tasks (see module doc).

    The same ``seed`` gives the same interval. Refused (``refused = "no headroom"``) when the
    mean oracle rate is not above the mean robust rate.
    """
    if resamples < 1:
        raise ValueError(f"resamples: expected an integer >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    a = _rates(adaptive, "adaptive", None)
    r = _rates(robust, "robust", a.size)
    o = _rates(oracle, "oracle", a.size)
    try:
        value = gap_closed(float(a.mean()), float(r.mean()), float(o.mean()))
    except NoHeadroomError:
        return GapClosed(
            value=None,
            low=None,
            high=None,
            refused=NO_HEADROOM,
            resamples=0,
            dropped=0,
            confidence=confidence,
        )
    idx = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    am, rm, om = a[idx].mean(axis=1), r[idx].mean(axis=1), o[idx].mean(axis=1)
    room = om - rm
    keep = room > 0
    dropped = int((~keep).sum())
    low = high = None
    if keep.sum() >= MIN_KEPT * resamples:
        ratios = (am[keep] - rm[keep]) / room[keep]
        tail = 50.0 * (1.0 - confidence)
        low, high = (float(q) for q in np.percentile(ratios, [tail, 100.0 - tail]))
    return GapClosed(
        value=value,
        low=low,
        high=high,
        refused=None,
        resamples=resamples,
        dropped=dropped,
        confidence=confidence,
    )
