"""The scripted-expert arms: ``expert`` (the oracle) and ``fixed_expert`` (the best robust one).

Both run :func:`adapt_robot.sim.experts.evaluate.run_experts` (batched envs), ``post_episodes``
episodes per task: each task is repeated ``post_episodes`` times in the env list, so episode ``e``
of task ``i`` is env entry ``i * post_episodes + e``. ``run_experts`` reports success and return per
episode, not the step of the first success, so these arms leave ``steps_to_success`` unset.

``fixed_expert`` uses :mod:`adapt_robot.sim.experts.headroom`: candidate hidden settings from train
tasks, the best one chosen on train-split validation tasks (never on the scored split), then that
setting substituted into every scored task's hidden fields (visible fields stay true). A task for
which the substitution is invalid counts as failed episodes with no return (NaN).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.config import setting
from adapt_robot.scoreboard.arms.base import ArmSpec, ScoreSettings
from adapt_robot.scoreboard.results import FIXED, ArmResult, stage_from_episodes
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams


@dataclass(frozen=True, kw_only=True)
class ExpertSpec(ArmSpec):
    """``type: expert``: the scripted expert told each task's true parameters (an oracle)."""

    batch: int = setting(16, doc="Environments stepped together.", ge=1)


@dataclass(frozen=True, kw_only=True)
class FixedExpertSpec(ArmSpec):
    """``type: fixed_expert``: the expert told the visible parameters and one hidden setting."""

    candidates: int = setting(
        16, doc="Train tasks whose hidden settings are candidates (plus their average).", ge=1
    )
    val_tasks: int = setting(
        48, doc="Train-split validation tasks the best candidate is chosen on.", ge=1
    )
    batch: int = setting(16, doc="Environments stepped together.", ge=1)


def _repeat(tasks: Sequence[TaskParams], times: int) -> list[TaskParams]:
    return [t for t in tasks for _ in range(times)]


def _run(
    family: TaskFamily[Any],
    engine: str,
    tasks: Sequence[TaskParams],
    told: Sequence[TaskParams],
    episodes: int,
    seed: int,
    batch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Success and return ``[tasks, episodes]`` of experts told ``told`` on ``tasks``."""
    from adapt_robot.sim.experts.evaluate import run_experts

    result = run_experts(
        family,
        engine,
        _repeat(tasks, episodes),
        expert_tasks=_repeat(told, episodes),
        seed=seed,
        batch=batch,
    )
    shape = (len(tasks), episodes)
    return result.success.reshape(shape), result.returns.reshape(shape)


class ExpertArm:
    """Scores :class:`ExpertSpec` (stage ``fixed``)."""

    def __init__(self, spec: ExpertSpec, settings: ScoreSettings) -> None:
        self.spec = spec
        self.settings = settings

    def score(
        self, family: TaskFamily[Any], engine: str, tasks: Sequence[TaskParams], seed: int
    ) -> ArmResult:
        """The expert told the true task, ``post_episodes`` episodes per task."""
        t0 = time.perf_counter()
        ok, ret = _run(
            family, engine, tasks, tasks, self.settings.post_episodes, seed, self.spec.batch
        )
        return ArmResult(
            arm=self.spec.name,
            kind=self.spec.kind,
            type=self.spec.type,
            engine=engine,
            stages={FIXED: stage_from_episodes(FIXED, ok, ret)},
            seconds=time.perf_counter() - t0,
        )


class FixedExpertArm:
    """Scores :class:`FixedExpertSpec` (stage ``fixed``)."""

    def __init__(self, spec: FixedExpertSpec, settings: ScoreSettings) -> None:
        self.spec = spec
        self.settings = settings

    def score(
        self, family: TaskFamily[Any], engine: str, tasks: Sequence[TaskParams], seed: int
    ) -> ArmResult:
        """Choose the hidden setting on train tasks in this engine, then score it on ``tasks``."""
        from adapt_robot.sim.experts.headroom import (
            CANDIDATE_STREAM,
            VALIDATION_STREAM,
            best_fixed_hidden,
            fixed_hidden_candidates,
            with_hidden,
        )

        t0 = time.perf_counter()
        spec = self.spec
        cand_seed = int(np.random.default_rng([seed, CANDIDATE_STREAM]).integers(2**31))
        candidates = fixed_hidden_candidates(family, spec.candidates, cand_seed)
        val_rng = np.random.default_rng([seed, VALIDATION_STREAM])
        val = family.sample_tasks(val_rng, spec.val_tasks, "train")
        chosen, val_rate = best_fixed_hidden(
            family, engine, candidates=candidates, val_tasks=val, seed=seed, batch=spec.batch
        )
        substituted = [with_hidden(t, chosen) for t in tasks]
        valid = np.array([t is not None for t in substituted], dtype=bool)
        told = [s if s is not None else t for s, t in zip(substituted, tasks, strict=True)]
        ok, ret = _run(family, engine, tasks, told, self.settings.post_episodes, seed, spec.batch)
        ok &= valid[:, None]
        ret = np.where(valid[:, None], ret, np.nan)
        stage = stage_from_episodes(FIXED, ok, ret)
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items()
        )
        notes = [
            f"hidden setting {shown}: {100 * val_rate:.1f}% on {len(val)} train validation tasks "
            f"(best of {len(candidates)} candidates)"
        ]
        if not valid.all():
            notes.append(
                f"{int((~valid).sum())} scored task(s) reject that setting: counted as failures, "
                "no return"
            )
        return ArmResult(
            arm=spec.name,
            kind=spec.kind,
            type=spec.type,
            engine=engine,
            stages={FIXED: stage},
            notes=tuple(notes),
            seconds=time.perf_counter() - t0,
        )
