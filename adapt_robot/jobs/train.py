"""``adapt-robot train LAUNCH [--set k=v] [--resume]``: meta-train a policy on a task family."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def run_train(launch_path: str, overrides: Sequence[str], resume: bool) -> Path:
    """Validate the launch file (before any work), train, plot the curve; returns the run dir.

    Raises ``ConfigError`` for a bad launch file, ``FileExistsError`` when the run directory
    already has a checkpoint and ``resume`` is false, and ``TrainingDiverged`` when a loss
    becomes non-finite (the last good checkpoint is kept).
    """
    from adapt_robot.jobs.learning_curve import plot_learning_curve
    from adapt_robot.meta.train_config import load_train_config
    from adapt_robot.meta.trainer import Trainer

    cfg = load_train_config(launch_path, list(overrides))
    run_dir = Trainer(cfg).run(resume=resume)
    plot_learning_curve(run_dir)
    return run_dir
