"""The learning curve of a training run (``metrics.jsonl``) as a PNG.

Two panels against environment steps: the training batch's return and success before and after
the inner step(s), and the periodic evaluation (``eval`` records, labelled with the split the
run's ``config.yaml`` evaluates on: held-out for ``test``, train-range tasks for ``train``).
Written at the end of every ``adapt-robot train`` as ``RUN_DIR/learning_curve.png``; torn or
foreign lines (a run killed mid-write) are skipped, never fatal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LEARNING_CURVE = "learning_curve.png"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The iteration records of a ``metrics.jsonl`` (warm-start row and torn lines skipped)."""
    rows: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "pre_return" in row and "total_env_steps" in row:
            rows.append(row)
    return rows


def _series(
    rows: list[dict[str, Any]], key: str, nested: str | None = None
) -> tuple[list[int], list[float]]:
    xs: list[int] = []
    ys: list[float] = []
    for row in rows:
        src = row.get(nested) if nested else row
        if isinstance(src, dict) and key in src:
            xs.append(int(row["total_env_steps"]))
            ys.append(float(src[key]))
    return xs, ys


def _eval_split(run: Path) -> str:
    """How the eval records are labelled: from ``eval.split`` of the run's ``config.yaml``."""
    import yaml

    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        split = cfg["eval"]["split"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "eval"
    return {"test": "held-out", "train": "eval, train-range tasks"}.get(split, "eval")


def plot_learning_curve(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """Plot ``RUN_DIR/metrics.jsonl``; returns the PNG path, or None with no iteration yet."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run = Path(run_dir)
    rows = read_metrics(run / "metrics.jsonl")
    if not rows:
        return None
    path = Path(out) if out is not None else run / LEARNING_CURVE
    split = _eval_split(run)
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax_r, ax_s = fig.subplots(1, 2)
    for ax, what in ((ax_r, "return"), (ax_s, "success")):
        for key, nested, style, label in (
            (f"pre_{what}", None, "-", "train, pre-adaptation"),
            (f"post_{what}", None, "-", "train, post-adaptation"),
            (f"pre_{what}", "eval", "o--", f"{split}, pre-adaptation"),
            (f"post_{what}", "eval", "o--", f"{split}, post-adaptation"),
        ):
            xs, ys = _series(rows, key, nested)
            if xs:
                ax.plot(xs, ys, style, label=label, markersize=3, linewidth=1)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"mean episode {what}")
        ax.grid(alpha=0.3)
    ax_s.set_ylim(-0.02, 1.02)
    ax_s.legend(fontsize=8)
    fig.suptitle(f"{run.name}: {len(rows)} iterations, {rows[-1]['total_env_steps']} env steps")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
