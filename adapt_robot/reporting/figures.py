"""Figure plumbing shared by the reports' plots (matplotlib's Agg canvas, no display needed).

matplotlib is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from adapt_robot.reporting.stats import Interval

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def agg_figure(width: float, height: float) -> Figure:
    """A new figure of ``width`` x ``height`` inches on an Agg canvas (headless)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path, dpi: int) -> Path:
    """Lay ``fig`` out tightly and write it to ``path`` (parents created); returns the path."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def error_bars(intervals: Sequence[Interval]) -> tuple[list[float], list[float]]:
    """Distances below and above each mean to its bounds, for ``errorbar(yerr=...)``.

    An unbounded end (a t interval of one sample) gets no bar (0) rather than an infinite one.
    """
    below = [iv.mean - iv.low if math.isfinite(iv.low) else 0.0 for iv in intervals]
    above = [iv.high - iv.mean if math.isfinite(iv.high) else 0.0 for iv in intervals]
    return below, above
