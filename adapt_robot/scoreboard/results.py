"""What an arm of the scoreboard measured: per stage, per task figures (data only, no rendering).

Stages:

- ``fixed``: a non-adaptive arm (oracle or robust), scored on ``post_episodes`` episodes;
- ``before``: an adaptive arm with its meta-parameters (no adaptation), ``post_episodes``;
- ``after_1``, ``after_2``, ``after_3``: adapted on 1/2/3 episodes of the robot's own experience
  on the task (from the meta-parameters), then scored on ``post_episodes`` new episodes;
- ``first_attempt``: sliding-window adaptation inside the very first episode on the task,
  scored on that one episode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIXED = "fixed"
"""Stage of a non-adaptive arm."""
BEFORE = "before"
"""Adaptive arm, meta-parameters, no adaptation."""
FIRST_ATTEMPT = "first_attempt"
"""Adaptive arm, sliding-window adaptation inside the first episode."""
AFTER_EPISODES = (1, 2, 3)
"""Episodes of experience behind the ``after_k`` stages."""


def after(k: int) -> str:
    """Name of the stage adapted on ``k`` episodes: ``after_k``."""
    return f"after_{k}"


def experience_episodes(stage: str) -> int:
    """Episodes of experience behind ``stage``: ``k`` for ``after_k``, else 0."""
    return int(stage.rsplit("_", 1)[1]) if stage.startswith("after_") else 0


ADAPTIVE_STAGES = (BEFORE, *(after(k) for k in AFTER_EPISODES), FIRST_ATTEMPT)
"""Every stage an adaptive arm can score, in report order."""
STAGES = (FIXED, *ADAPTIVE_STAGES)
"""Every stage name, in report order."""


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """One stage of one arm in one engine: a figure per task (tasks in the scoreboard's order)."""

    stage: str
    """Stage name (see :data:`STAGES`)."""
    successes: np.ndarray
    """Successful episodes per task (int ``[tasks]``)."""
    episodes: int
    """Scored episodes per task (the same for every task)."""
    mean_return: np.ndarray
    """Mean undiscounted return of the scored episodes, per task (float ``[tasks]``)."""
    steps_to_success: np.ndarray | None = None
    """Control steps from the start of the first scored episode to the first successful step,
    per task (NaN: never succeeded); ``None`` when the arm does not record it."""
    adapt_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """On-device compute of every adaptation of this stage (ms; empty for no adaptation)."""
    rejections: Mapping[str, int] = field(default_factory=dict)
    """Adaptations not kept, counted by reason (``adapt_robot.runtime.safety`` names)."""

    def __post_init__(self) -> None:
        n = self.successes.shape
        if self.successes.ndim != 1 or self.mean_return.shape != n:
            raise ValueError(
                f"stage {self.stage}: successes {self.successes.shape} and mean_return "
                f"{self.mean_return.shape} must be one value per task"
            )
        if self.steps_to_success is not None and self.steps_to_success.shape != n:
            raise ValueError(
                f"stage {self.stage}: steps_to_success {self.steps_to_success.shape} must be one "
                f"value per task {n}"
            )
        if self.episodes < 1:
            raise ValueError(
                f"stage {self.stage}: episodes per task must be >= 1, got {self.episodes}"
            )
        if np.any(self.successes < 0) or np.any(self.successes > self.episodes):
            raise ValueError(
                f"stage {self.stage}: successes must lie in [0, {self.episodes}] per task"
            )

    @property
    def tasks(self) -> int:
        """Number of tasks."""
        return int(self.successes.size)

    @property
    def rate_per_task(self) -> np.ndarray:
        """Success rate per task (float ``[tasks]``)."""
        return self.successes.astype(np.float64) / self.episodes

    @property
    def rate(self) -> float:
        """Success rate over all scored episodes."""
        return float(self.successes.sum()) / (self.episodes * self.tasks)

    def adapt_ms_quantiles(self) -> tuple[float, float] | None:
        """(median, p90) of :attr:`adapt_ms`, or ``None`` when no adaptation ran."""
        if self.adapt_ms.size == 0:
            return None
        return float(np.median(self.adapt_ms)), float(np.percentile(self.adapt_ms, 90))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (NaN written as ``null``)."""
        q = self.adapt_ms_quantiles()
        return {
            "stage": self.stage,
            "episodes_per_task": self.episodes,
            "successes": [int(s) for s in self.successes],
            "mean_return": [float(r) for r in self.mean_return],
            "steps_to_success": None
            if self.steps_to_success is None
            else [None if math.isnan(s) else float(s) for s in self.steps_to_success],
            "adapt_ms": [float(x) for x in self.adapt_ms],
            "adapt_ms_median": None if q is None else q[0],
            "adapt_ms_p90": None if q is None else q[1],
            "rejections": dict(self.rejections),
        }


@dataclass(frozen=True, kw_only=True)
class ArmResult:
    """Everything one arm scored in one engine."""

    arm: str
    """The arm's name (unique in the launch file)."""
    kind: str
    """``oracle``, ``robust`` or ``adaptive``."""
    type: str
    """Arm type (a key of ``adapt_robot.scoreboard.arms.ARM_TYPES``)."""
    engine: str
    """Physics engine the arm was scored in."""
    stages: Mapping[str, StageResult]
    """Stage name -> result, in :data:`STAGES` order."""
    notes: tuple[str, ...] = ()
    """What the reader should know (a chosen hidden setting, a stage not run and why)."""
    seconds: float = math.nan
    """Wall time of the arm in this engine."""

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"arm {self.arm}: no stage was scored")
        sizes = {s.tasks for s in self.stages.values()}
        if len(sizes) != 1:
            raise ValueError(f"arm {self.arm}: stages scored different task counts {sorted(sizes)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "arm": self.arm,
            "kind": self.kind,
            "type": self.type,
            "engine": self.engine,
            "seconds": self.seconds,
            "notes": list(self.notes),
            "stages": {name: s.to_dict() for name, s in self.stages.items()},
        }


def stage_from_episodes(
    stage: str,
    success: Sequence[Sequence[bool]] | np.ndarray,
    returns: Sequence[Sequence[float]] | np.ndarray,
    **extra: Any,
) -> StageResult:
    """A :class:`StageResult` from per-episode outcomes ``[tasks][episodes]``."""
    s = np.asarray(success, dtype=bool)
    r = np.asarray(returns, dtype=np.float64)
    if s.ndim != 2 or r.shape != s.shape or s.shape[1] < 1:
        raise ValueError(
            f"stage {stage}: expected success and returns shaped [tasks, episodes >= 1], got "
            f"{s.shape} and {r.shape}"
        )
    return StageResult(
        stage=stage,
        successes=s.sum(axis=1).astype(np.int64),
        episodes=int(s.shape[1]),
        mean_return=r.mean(axis=1),
        **extra,
    )
