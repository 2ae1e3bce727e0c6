"""Show every task family working in both engines, with scripted experts (`adapt-robot experts`).

For each (family, engine): scripted experts that know the true task parameters, on held-in
(train) and held-out (test) tasks, and the same experts run on mismatched tasks (hidden
parameters matter); a GIF of one expert episode. Results go to ``out_dir`` as JSON, a
Markdown table and GIFs; the table is printed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapt_robot.config import dump, setting
from adapt_robot.progress import progress
from adapt_robot.reporting.tables import markdown_table


@dataclass(frozen=True, kw_only=True)
class ExpertsConfig:
    """Launch settings of ``adapt-robot experts``."""

    imports: tuple[str, ...] = setting(
        (),
        doc="Python modules imported first: they register plug-in task families (as in a "
        "training launch file). Looked up on sys.path, then beside the launch file, then in the "
        "working directory.",
    )
    out_dir: str = setting("runs/experts", doc="Directory for results.json, results.md and GIFs.")
    families: tuple[str, ...] = setting(("point", "grasp", "door"), doc="Task families to show.")
    engines: tuple[str, ...] = setting(
        ("mujoco", "pybullet"), doc="Engines to run each family in (unsupported pairs skipped)."
    )
    tasks_per_split: int = setting(20, doc="Tasks per split for the expert success rates.", ge=1)
    seed: int = setting(0, doc="Seed for task sampling and initial conditions.", ge=0)
    gif: bool = setting(True, doc="Write a GIF of one expert episode per (family, engine).")
    gif_width: int = setting(320, doc="GIF width in pixels.", ge=16)
    gif_height: int = setting(240, doc="GIF height in pixels.", ge=16)


@dataclass(frozen=True)
class ExpertRow:
    """Expert figures for one (family, engine)."""

    family: str
    engine: str
    train_success: float
    test_success: float
    own_task_success: float
    mismatched_success: float
    seconds: float
    gif: str


def run_experts_job(cfg: ExpertsConfig) -> list[ExpertRow]:
    """Run the experts on every (family, engine); returns the rows also written to ``out_dir``."""
    from adapt_robot.reporting.gif import write_gif
    from adapt_robot.sim.experts.evaluate import cross_task, solvability
    from adapt_robot.sim.experts.record import record_expert
    from adapt_robot.sim.registry import get_family

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dump(cfg, out / "config.yaml")
    pairs = []
    for name in cfg.families:
        engines = get_family(name).engines
        # A family that runs in none of the requested engines (point: numpy) uses its own.
        pairs += [(name, e) for e in (tuple(e for e in cfg.engines if e in engines) or engines)]
    rows: list[ExpertRow] = []
    for name, engine in progress(pairs, desc="experts", unit="family/engine"):
        family = get_family(name)
        t0 = time.perf_counter()
        n = cfg.tasks_per_split
        train = solvability(family, engine, "train", n, seed=cfg.seed).rate
        test = solvability(family, engine, "test", n, seed=cfg.seed + 1).rate
        own, other = cross_task(family, engine, n, seed=cfg.seed + 2)
        gif = ""
        if cfg.gif:
            task = family.sample_tasks(np.random.default_rng(cfg.seed), 1, "test")[0]
            ep = record_expert(family, engine, task, cfg.seed, cfg.gif_width, cfg.gif_height)
            path = write_gif(ep.frames, out / f"{family.name}_{engine}.gif", family.control_hz)
            gif = path.name
        rows.append(
            ExpertRow(family.name, engine, train, test, own, other, time.perf_counter() - t0, gif)
        )
    (out / "results.json").write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    table = experts_table(rows, cfg.tasks_per_split)
    (out / "results.md").write_text(table + "\n")
    return rows


def experts_table(rows: list[ExpertRow], n: int) -> str:
    """Markdown table of the expert rows."""
    head = ["family", "engine", "train success", "test success", "own task", "mismatched", "s"]
    body = [
        [
            r.family,
            r.engine,
            f"{r.train_success:.0%}",
            f"{r.test_success:.0%}",
            f"{r.own_task_success:.0%}",
            f"{r.mismatched_success:.0%}",
            f"{r.seconds:.1f}",
        ]
        for r in rows
    ]
    intro = (
        f"Scripted experts given the true task parameters ({n} tasks per split); "
        "'mismatched' runs each expert on another task's object/door."
    )
    return f"{intro}\n\n{markdown_table(head, body)}"
