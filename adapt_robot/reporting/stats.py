"""Means with 95% confidence intervals for evaluation reports (numpy and the standard library).

Two estimators, chosen for what they summarise:

- **Success rates: the Wilson score interval** (Wilson 1927) over episodes, ``successes`` out of
  ``trials``. Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps its coverage
  near 0% and 100%, where evaluated policies often sit. It treats episodes as independent
  Bernoulli trials; episodes of one task are correlated, so with few tasks it is optimistic
  (use :func:`t_interval` on per-task rates, as the paired gains do, for a task-level view).
- **Returns (and paired gains): the Student-t interval** over per-task means,
  ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation (``ddof=1``).
  Tasks are the independent units; with ``n >= 30`` tasks the t interval is close to a normal
  one and needs no resampling, so no bootstrap is used. The t quantile is exact: the CDF of
  Student's t with integer degrees of freedom has a closed form (Abramowitz and Stegun 26.7.3
  and 26.7.4), inverted by bisection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

CONFIDENCE = 0.95
"""Confidence level of every interval in the evaluation reports."""


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A mean and its confidence interval ``[low, high]``."""

    mean: float
    low: float
    """Lower bound; ``-inf`` when the data cannot bound it (one sample for a t interval)."""
    high: float
    """Upper bound; ``+inf`` when the data cannot bound it."""
    n: int
    """Samples behind the estimate: trials (Wilson) or tasks (t)."""
    method: Literal["wilson", "t"]
    confidence: float = CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; an unbounded end is written as ``null`` (strict JSON)."""
        return {
            "mean": self.mean,
            "low": self.low if math.isfinite(self.low) else None,
            "high": self.high if math.isfinite(self.high) else None,
            "n": self.n,
            "method": self.method,
            "confidence": self.confidence,
        }


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of a success rate ``successes / trials``.

    ``center = (p + z^2 / 2n) / (1 + z^2 / n)`` and
    ``half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)``, with ``z`` the normal
    quantile of ``(1 + confidence) / 2``. For 8 successes in 10 trials: [0.490, 0.943].
    """
    _check_confidence(confidence)
    if trials < 1:
        raise ValueError(f"trials: expected at least 1 trial, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes: expected a count in [0, {trials}], got {successes}")
    z = NormalDist().inv_cdf((1.0 + confidence) / 2.0)
    n = float(trials)
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return Interval(
        mean=p,
        # Exact maths puts p inside; clamping keeps rounding (p = 0 or 1) from moving it out.
        low=min(p, max(0.0, center - half)),
        high=max(p, min(1.0, center + half)),
        n=trials,
        method="wilson",
        confidence=confidence,
    )


def student_t_two_sided(t: float, df: int) -> float:
    """``P(|T| < t)`` for Student's t with ``df`` (integer >= 1) degrees of freedom.

    Closed form with ``theta = atan(t / sqrt(df))`` (Abramowitz and Stegun 26.7.3-4): for odd
    ``df``, ``2/pi (theta + sin(theta) (cos(theta) + 2/3 cos^3(theta) + ...))``; for even
    ``df``, ``sin(theta) (1 + 1/2 cos^2(theta) + 1*3/(2*4) cos^4(theta) + ...)``, the series
    running to the power ``df - 2``.
    """
    if df < 1:
        raise ValueError(f"df: expected an integer >= 1, got {df}")
    if t <= 0.0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        if df > 1:
            total = term
            for k in range(3, df - 1, 2):  # powers cos^3, cos^5, ... cos^(df-2)
                term *= c2 * (k - 1) / k
                total += term
        return 2.0 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):  # powers cos^2, cos^4, ... cos^(df-2)
        term *= c2 * (k - 1) / k
        total += term
    return s * total


def student_t_quantile(confidence: float, df: int) -> float:
    """``t`` with ``P(|T| < t) = confidence`` (the two-sided critical value), by bisection."""
    _check_confidence(confidence)
    lo, hi = 0.0, 2.0
    while student_t_two_sided(hi, df) < confidence:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_two_sided(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def t_interval(values: np.ndarray | list[float], confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of ``values`` (one value per task).

    With a single value the mean is reported with unbounded ends; an empty or non-finite
    input is an error.
    """
    _check_confidence(confidence)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("values: expected at least one value, got none")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values: expected finite numbers, got {x[~np.isfinite(x)][:4]}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(
            mean=mean, low=-math.inf, high=math.inf, n=1, method="t", confidence=confidence
        )
    half = student_t_quantile(confidence, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(
        mean=mean,
        low=mean - half,
        high=mean + half,
        n=int(x.size),
        method="t",
        confidence=confidence,
    )
