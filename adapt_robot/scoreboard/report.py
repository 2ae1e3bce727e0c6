"""The scoreboard report as data: a JSON-ready mapping built from the arms' results.

Per engine: every arm and stage with its success (95% Wilson interval over episodes), mean
return (95% t interval over tasks), time to success, adaptation compute and rejections; the
references (the best oracle arm and the best robust arm on ``fixed`` success), the headroom and
whether it reaches ``min_headroom``; ``gap_closed`` per adaptive arm and stage with its paired
bootstrap interval (only shares of the gap), and ``gap_bootstrap`` beside it, in the same order,
with how each interval was drawn (resamples, those dropped for want of headroom, confidence).
Across engines: each arm and stage's success in every other engine minus the first engine's, a
t interval over the per-task differences (the tasks are the same).

Rendering (:mod:`~adapt_robot.scoreboard.markdown`, :mod:`~adapt_robot.scoreboard.figure`)
reads only this mapping, so the JSON file is the Markdown's machine-readable twin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adapt_robot.config import to_dict
from adapt_robot.reporting.stats import t_interval, wilson_interval
from adapt_robot.scoreboard.config import ScoreboardConfig
from adapt_robot.scoreboard.gap import headroom_points, paired_gap_closed
from adapt_robot.scoreboard.results import ADAPTIVE_STAGES, FIXED, ArmResult, StageResult

REPORT_FORMAT = 3
"""Version of the ``scoreboard.json`` layout; bumped on any incompatible change."""


def stage_summary(arm: ArmResult, stage: StageResult) -> dict[str, Any]:
    """One arm and stage: intervals and the figures of the report's tables."""
    finite = stage.mean_return[np.isfinite(stage.mean_return)]
    q = stage.adapt_ms_quantiles()
    time_to: dict[str, Any] | None = None
    if stage.steps_to_success is not None:
        steps = stage.steps_to_success
        hit = steps[np.isfinite(steps)]
        time_to = {
            "median_steps": float(np.median(hit)) if hit.size else None,
            "tasks_succeeded": int(hit.size),
            "tasks": int(steps.size),
        }
    return {
        "arm": arm.arm,
        "kind": arm.kind,
        "type": arm.type,
        "stage": stage.stage,
        "success": wilson_interval(
            int(stage.successes.sum()), stage.episodes * stage.tasks
        ).to_dict(),
        "mean_return": t_interval(finite).to_dict() if finite.size else None,
        "return_tasks": int(finite.size),
        "time_to_success": time_to,
        "adapt_ms_median": None if q is None else q[0],
        "adapt_ms_p90": None if q is None else q[1],
        "adaptations": int(stage.adapt_ms.size),
        "rejections": dict(stage.rejections),
    }


def _best(arms: Sequence[ArmResult], kind: str) -> ArmResult:
    """The arm of ``kind`` with the highest ``fixed`` success (ties: the first)."""
    pool = [a for a in arms if a.kind == kind and FIXED in a.stages]
    if not pool:
        raise ValueError(f"no {kind} arm with a 'fixed' stage among {[a.arm for a in arms]}")
    return max(pool, key=lambda a: a.stages[FIXED].rate)


def engine_report(
    engine: str, arms: Sequence[ArmResult], cfg: ScoreboardConfig, seed: int
) -> dict[str, Any]:
    """The report of one engine (see the module docstring)."""
    oracle, robust = _best(arms, "oracle"), _best(arms, "robust")
    o, r = oracle.stages[FIXED], robust.stages[FIXED]
    room = headroom_points(o.rate, r.rate)
    gaps, draws = [], []
    for arm in arms:
        if arm.kind != "adaptive":
            continue
        for stage in arm.stages.values():
            gap = paired_gap_closed(
                stage.rate_per_task,
                r.rate_per_task,
                o.rate_per_task,
                resamples=cfg.report.bootstrap,
                seed=seed,
            )
            key = {"arm": arm.arm, "stage": stage.stage}
            gaps.append({**key, **gap.to_dict()})
            draws.append({**key, **gap.bootstrap_dict()})
    return {
        "engine": engine,
        "rows": [stage_summary(a, s) for a in arms for s in a.stages.values()],
        "oracle": {"arm": oracle.arm, "success": o.rate},
        "best_robust": {"arm": robust.arm, "success": r.rate},
        "headroom_points": room,
        "tests_adaptation": room >= cfg.report.min_headroom,
        "gap_closed": gaps,
        "gap_bootstrap": draws,
        "best_adaptive": best_adaptive(arms, gaps),
        "notes": {a.arm: list(a.notes) for a in arms if a.notes},
        "seconds": {a.arm: a.seconds for a in arms},
    }


def best_adaptive(
    arms: Sequence[ArmResult], gaps: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per adaptive stage, the adaptive arm with the highest success, and its gap closed.

    One entry per stage in :data:`ADAPTIVE_STAGES` order (ties: the first arm); the headline
    figures, e.g. the best success after two episodes, without reading every row.
    """
    gap = {(g["arm"], g["stage"]): g for g in gaps}
    out = []
    for name in ADAPTIVE_STAGES:
        pool = [a for a in arms if a.kind == "adaptive" and name in a.stages]
        if not pool:
            continue
        top = max(pool, key=lambda a: a.stages[name].rate)
        g = gap.get((top.arm, name), {})
        out.append(
            {
                "stage": name,
                "arm": top.arm,
                "success": top.stages[name].rate,
                "gap_closed": g.get("value"),
                "gap_closed_low": g.get("low"),
                "gap_closed_high": g.get("high"),
            }
        )
    return out


def engine_differences(results: Mapping[str, Sequence[ArmResult]]) -> list[dict[str, Any]]:
    """Success of every arm and stage in each later engine minus the first (points, paired)."""
    engines = list(results)
    if len(engines) < 2:
        return []
    ref = {(a.arm, s): st for a in results[engines[0]] for s, st in a.stages.items()}
    out = []
    for engine in engines[1:]:
        for arm in results[engine]:
            for name, stage in arm.stages.items():
                base = ref.get((arm.arm, name))
                if base is None:
                    continue
                diff = 100.0 * (stage.rate_per_task - base.rate_per_task)
                out.append(
                    {
                        "arm": arm.arm,
                        "stage": name,
                        "engine": engine,
                        "reference": engines[0],
                        "difference_points": t_interval(diff).to_dict(),
                    }
                )
    return out


def build_report(
    cfg: ScoreboardConfig, results: Mapping[str, Sequence[ArmResult]]
) -> dict[str, Any]:
    """The whole report: settings, per-engine boards, engine differences, raw per-task figures."""
    return {
        "format": REPORT_FORMAT,
        "family": cfg.family,
        "split": cfg.split,
        "tasks": cfg.tasks,
        "seed": cfg.seed,
        "post_episodes": cfg.episodes.post_episodes,
        "min_headroom_points": cfg.report.min_headroom,
        "engines": [engine_report(e, arms, cfg, cfg.seed) for e, arms in results.items()],
        "engine_differences": engine_differences(results),
        "results": {e: [a.to_dict() for a in arms] for e, arms in results.items()},
        "config": to_dict(cfg),
    }
