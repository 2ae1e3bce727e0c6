"""``scoreboard.png``: success per arm and stage (Wilson error bars), one panel per engine.

The oracle and best-robust success are horizontal lines. Reads only the report mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_figure(report: Mapping[str, Any], path: Path) -> Path:
    """Draw the grouped bars (matplotlib Agg) to ``path``; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boards = report["engines"]
    bars = max(len(b["rows"]) for b in boards)
    width = max(5.0, 0.45 * bars + 2.0)
    fig, axes = plt.subplots(1, len(boards), figsize=(width * len(boards), 4.5), squeeze=False)
    for ax, board in zip(axes[0], boards, strict=True):
        rows = board["rows"]
        arms = list(dict.fromkeys(r["arm"] for r in rows))
        x, ticks, labels = 0.0, [], []
        colors = plt.get_cmap("tab10")
        for i, arm in enumerate(arms):
            for r in (r for r in rows if r["arm"] == arm):
                s = r["success"]
                mean = 100 * s["mean"]
                err = [[mean - 100 * s["low"]], [100 * s["high"] - mean]]
                ax.bar(x, mean, width=0.8, color=colors(i % 10), yerr=err, capsize=3)
                ticks.append(x)
                labels.append(f"{arm}\n{r['stage']}")
                x += 1.0
            x += 0.6
        ax.axhline(100 * board["oracle"]["success"], color="k", ls="--", lw=1, label="oracle")
        ax.axhline(
            100 * board["best_robust"]["success"],
            color="grey",
            ls=":",
            lw=1.5,
            label="best robust",
        )
        ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_ylabel("success % (95% Wilson)")
        ax.set_title(
            f"{report['family']} / {board['engine']}: headroom {board['headroom_points']:.0f} pts"
        )
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
