"""``adapt-robot scoreboard LAUNCH.yaml``: every arm on the same tasks, seed and episode budget.

The tasks are the ``tasks`` tasks of ``split`` that ``adapt-robot eval`` and ``deploy`` score
for the same seed (:func:`adapt_robot.jobs.deploy.held_out_tasks`). Each arm is scored in each
engine (one progress line per arm and engine); then the report is built and written as
``scoreboard.md``, ``scoreboard.json`` and ``scoreboard.png`` beside the resolved
``config.yaml``. Data, rendering and files are separate steps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapt_robot.config import dump
from adapt_robot.progress import progress
from adapt_robot.reporting.loggers import log_scoreboard
from adapt_robot.scoreboard.arms import ARM_TYPES
from adapt_robot.scoreboard.config import ScoreboardConfig
from adapt_robot.scoreboard.figure import write_figure
from adapt_robot.scoreboard.markdown import render_markdown
from adapt_robot.scoreboard.report import build_report
from adapt_robot.scoreboard.results import ArmResult


@dataclass(frozen=True, kw_only=True)
class ScoreboardOutput:
    """What a run produced."""

    report: dict[str, Any]
    """The report mapping (what ``scoreboard.json`` holds)."""
    markdown: str
    """The text of ``scoreboard.md``."""
    out_dir: Path
    """Where the files are."""


def score_arms(cfg: ScoreboardConfig) -> dict[str, list[ArmResult]]:
    """Every arm in every engine: engine -> results in the launch file's arm order."""
    from adapt_robot.jobs.deploy import held_out_tasks
    from adapt_robot.sim.registry import get_family

    family = get_family(cfg.family)
    tasks = held_out_tasks(family, cfg.tasks, cfg.split, cfg.seed)
    settings = cfg.settings()
    arms = [ARM_TYPES[spec.type].build(spec, settings) for spec in cfg.arms]
    pairs = [(arm, engine) for engine in cfg.engines for arm in arms]
    results: dict[str, list[ArmResult]] = {engine: [] for engine in cfg.engines}
    labels = [f"{arm.spec.name} in {engine}" for arm, engine in pairs]
    for label in progress(labels, desc=f"scoreboard {cfg.family}", unit="arm/engine"):
        arm, engine = pairs[labels.index(label)]
        results[engine].append(arm.score(family, engine, tasks, cfg.seed))
    return results


def _strict(x: Any) -> Any:
    """NaN/inf as ``None`` so the JSON file is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    return x


def write_outputs(report: Mapping[str, Any], out: Path) -> str:
    """Write ``scoreboard.json``, ``scoreboard.md`` and ``scoreboard.png``; returns the text."""
    out.mkdir(parents=True, exist_ok=True)
    text = render_markdown(report)
    (out / "scoreboard.json").write_text(
        json.dumps(_strict(report), indent=2, allow_nan=False) + "\n"
    )
    (out / "scoreboard.md").write_text(text)
    write_figure(report, out / "scoreboard.png")
    return text


def run_scoreboard(cfg: ScoreboardConfig, out_dir: str | Path | None = None) -> ScoreboardOutput:
    """Score every arm, build the report and write it to ``out_dir`` (default ``cfg.out_dir``)."""
    out = Path(out_dir if out_dir is not None else cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dump(cfg, out / "config.yaml")
    report = build_report(cfg, score_arms(cfg))
    markdown = write_outputs(report, out)
    log_scoreboard(_strict(report), out, cfg.loggers)
    return ScoreboardOutput(report=report, markdown=markdown, out_dir=out)


def scoreboard_main(launch: str, overrides: Sequence[str], out_dir: str | None) -> str:
    """The CLI's ``scoreboard`` subcommand: load, run, write; returns the text to print."""
    from adapt_robot.scoreboard.config import load_scoreboard_config

    cfg = load_scoreboard_config(launch, overrides)
    output = run_scoreboard(cfg, out_dir)
    return (
        f"{output.markdown}\nscoreboard.md, scoreboard.json, scoreboard.png and config.yaml in "
        f"{output.out_dir}/"
    )
