"""The ``bundle`` arm: an exported ONNX bundle scored through the robot's code path.

The torch-free :class:`~adapt_robot.runtime.adapter.OnlineAdapter` (its policy graph, its inner
step ``adapt_step.onnx`` or posterior ``encoder.onnx``, its acceptance rule) drives a
:class:`~adapt_robot.deploy.sim_robot.SimRobot` in a plain loop
(:func:`~adapt_robot.scoreboard.arms.episodes.run_episode`). Per task, every stage starts from
the meta-parameters (``reset_to_meta()``, experience cleared):

- ``adapt: false`` (a robust bundle, e.g. DR-PPO): stage ``fixed``, ``post_episodes`` episodes;
- ``before``: ``post_episodes`` episodes with the meta-parameters;
- ``after_k``: ``k`` episodes of experience, one synchronous ``adapt()`` on them
  (``EpisodicMode(episodes=k)``), then ``post_episodes`` new episodes with whatever the
  acceptance rule kept (the meta-parameters after a rollback, counted by reason);
  With ``experience: sequential``, an adaptation follows each of the ``k`` episodes, on all
  of them so far (``EpisodicMode(episodes=1, once=False, history=k)``), so each episode acts
  with the last result: what a robot that adapts after every attempt does;
- ``first_attempt``: one episode with ``SlidingWindowMode``: every ``window_every`` ticks a
  synchronous ``adapt()`` on the last ``window`` transitions, the new parameters used from the
  next tick. A robot adapts off the control thread, so its parameters arrive some ticks later;
  the measured compute (``adapt_ms``) says how many ticks that is at a given rate.

With ``repeats: R`` each stage runs ``R`` times per task, each from ``reset_to_meta()`` with
fresh experience (the robot's initial states differ), and the task's scored episodes are those
of all runs: a stage's scored episodes share one adaptation, so one run per task measures the
experience it happened to get, and on doors identical protocols differed by up to 15 points.

Adapting synchronously makes the scores reproducible (the same seed gives the same figures).

A posterior bundle (PEARL, ``memory.kind: posterior``) is scored as a gradient bundle is, its
adaptation the posterior ``encoder.onnx`` computes from the same experience (``adapt_ms`` times
it); its ``before`` episodes act with ``z`` drawn from the prior at each ``reset_to_meta()``.

A recurrent bundle (RL², ``memory.kind: recurrent``) adapts in its state: for every scored
episode the adapter starts a new task (``reset_to_meta()``) and plays ``k`` episodes of
experience with the state carried (``after_k``); ``before``, ``first_attempt`` and ``fixed``
are first episodes (the state still adapts within them).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from adapt_robot.config import ConfigError, setting
from adapt_robot.runtime.adaptation import KEPT_SUCCESS
from adapt_robot.runtime.modes import SlidingWindowMode
from adapt_robot.scoreboard.arms.base import ArmSpec, ScoreSettings
from adapt_robot.scoreboard.arms.episodes import EpisodeOutcome, run_episode
from adapt_robot.scoreboard.results import (
    ADAPTIVE_STAGES,
    AFTER_EPISODES,
    BEFORE,
    FIRST_ATTEMPT,
    FIXED,
    ArmResult,
    StageResult,
    after,
    experience_episodes,
    stage_from_episodes,
)
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams

if TYPE_CHECKING:
    from adapt_robot.deploy.sim_robot import SimRobot
    from adapt_robot.runtime.adapter import OnlineAdapter

NO_DATA = "no_data"
"""Rejection reason of an adaptation that had no recorded transition to adapt on."""


@dataclass(frozen=True, kw_only=True)
class BundleSpec(ArmSpec):
    """``type: bundle``: an exported bundle run by the on-device adapter on a simulated robot."""

    bundle: str = setting(doc="Bundle directory written by `adapt-robot export`.")
    adapt: bool = setting(
        True, doc="Score the adaptive stages (kind adaptive); false: stage fixed only (robust)."
    )
    stages: tuple[str, ...] = setting(
        ADAPTIVE_STAGES, doc="Adaptive stages to score (a subset of the default, any order)."
    )
    deterministic: bool = setting(
        False, doc="Act with the policy mean instead of sampling (the deploy job samples)."
    )
    providers: tuple[str, ...] = setting(("cpu",), doc="ONNX Runtime providers, in order.")
    keep_on_success: bool = setting(
        False,
        doc="after_k: skip the adaptation when the last experience episode succeeded (the "
        "runtime's EpisodicMode(keep_on_success=True)); counted as kept_success.",
    )
    experience: Literal["batch", "sequential"] = setting(
        "batch",
        doc="after_k: k episodes with the meta-parameters, then one adaptation on them "
        "(batch); or an adaptation after each of the k episodes, on all of them so far, each "
        "episode acted with the last result (sequential: EpisodicMode(episodes=1, once=False, "
        "history=k)). Every adaptation's outcome is counted.",
    )
    repeats: int = setting(
        1,
        doc="Independent runs of each stage per task, each from the meta-parameters with "
        "fresh experience (other initial states); the scored episodes of all runs are the "
        "task's (post_episodes x repeats; first_attempt: repeats). A stage's scored episodes "
        "share one adaptation, so on few tasks one run per task is noisy; repeats average over "
        "the experience too. Steps to success: the median over the runs that succeeded (a task "
        "counts as succeeded when any run did).",
        ge=1,
    )
    window_every: int = setting(
        5, doc="first_attempt: control ticks between sliding-window adaptations.", ge=1
    )
    window: int | None = setting(
        None,
        doc="first_attempt: transitions per adaptation (None: the bundle's capacity, at most "
        "one episode).",
    )
    window_min: int = setting(
        1,
        doc="first_attempt: transitions observed before the first adaptation "
        "(SlidingWindowMode.min_window).",
        ge=1,
    )
    window_steps: int | None = setting(
        None, doc="first_attempt: inner steps per adaptation (None: the bundle's)."
    )

    def validate(self, family: str) -> None:
        """Bundle readable, of ``family``, kind matching ``adapt``, capacity holding each stage."""
        from adapt_robot.runtime.bundle import Bundle

        want = "adaptive" if self.adapt else "robust"
        if self.kind != want:
            raise ConfigError(
                f"kind: a bundle arm with adapt: {str(self.adapt).lower()} is {want}, got "
                f"{self.kind!r}; set kind: {want} (or adapt: {str(not self.adapt).lower()})"
            )
        unknown = [s for s in self.stages if s not in ADAPTIVE_STAGES]
        if unknown or not self.stages or len(set(self.stages)) != len(self.stages):
            raise ConfigError(
                f"stages: expected distinct names from {list(ADAPTIVE_STAGES)}, got "
                f"{list(self.stages)}"
            )
        root = Path(self.bundle)
        if not (root / "manifest.yaml").is_file():
            raise ConfigError(
                f"bundle: {root}: not a bundle directory (no manifest.yaml); pass the directory "
                "written by `adapt-robot export`"
            )
        try:
            manifest = Bundle.load(root).manifest
        except ValueError as err:
            raise ConfigError(f"bundle: {err}") from None
        if manifest.family != family:
            raise ConfigError(
                f"bundle: {root} holds a {manifest.family!r} policy; this scoreboard scores "
                f"family {family!r}"
            )
        if self.adapt and not manifest.memory.recurrent:
            check_capacity(self, manifest.inner_loop.capacity, manifest.inner_loop.horizon)
        if manifest.memory.posterior and self.window_steps not in (None, 1):
            raise ConfigError(
                f"window_steps: bundle {root} adapts by its posterior (one encoder.onnx pass per "
                f"adaptation); leave window_steps out or set 1, got {self.window_steps}"
            )


def check_capacity(spec: BundleSpec, capacity: int, horizon: int) -> None:
    """Refuse stages whose experience does not fit the bundle's batch of ``capacity`` rows."""
    for stage in spec.stages:
        for k in AFTER_EPISODES:
            if stage == after(k) and k * horizon > capacity:
                raise ConfigError(
                    f"stages: {stage} adapts on {k} episode(s) x {horizon} steps = "
                    f"{k * horizon} rows, but bundle {spec.bundle} has inner_loop.capacity "
                    f"{capacity} ({capacity // horizon} whole episode(s)); re-export with "
                    f"`adapt-robot export RUN -o DIR --capacity {k * horizon}` or leave {stage} "
                    "out of stages"
                )
    if FIRST_ATTEMPT in spec.stages and spec.window is not None and spec.window > capacity:
        raise ConfigError(
            f"window: {spec.window} transitions do not fit bundle {spec.bundle}'s "
            f"inner_loop.capacity {capacity}; use window <= {capacity}"
        )


class BundleArm:
    """Scores :class:`BundleSpec` (see the module docstring)."""

    def __init__(self, spec: BundleSpec, settings: ScoreSettings) -> None:
        self.spec = spec
        self.settings = settings

    def score(
        self, family: TaskFamily[Any], engine: str, tasks: Sequence[TaskParams], seed: int
    ) -> ArmResult:
        """Every stage on every task, in one robot and one adapter per adaptation mode."""
        from adapt_robot.deploy.sim_robot import SimRobot, SimRobotConfig
        from adapt_robot.runtime.adapter import OnlineAdapter
        from adapt_robot.runtime.bundle import Bundle
        from adapt_robot.runtime.modes import EpisodicMode, experience_mode

        t0 = time.perf_counter()
        spec = self.spec
        bundle = Bundle.load(spec.bundle)
        inner = bundle.manifest.inner_loop
        stages = [s for s in ADAPTIVE_STAGES if s in spec.stages] if spec.adapt else [FIXED]
        recurrent = bundle.manifest.memory.recurrent
        modes: dict[str, EpisodicMode | SlidingWindowMode] = {}
        for stage in stages:
            if stage in (FIXED, BEFORE) or recurrent:  # a recurrent bundle adapts in its state
                modes[stage] = EpisodicMode(episodes=1)
            elif stage == FIRST_ATTEMPT:
                modes[stage] = SlidingWindowMode(
                    every=spec.window_every,
                    window=spec.window or min(inner.capacity, inner.horizon),
                    steps=spec.window_steps or inner.steps,
                    min_window=spec.window_min,
                )
            else:
                modes[stage] = experience_mode(
                    experience_episodes(stage),
                    sequential=spec.experience == "sequential",
                    keep_on_success=spec.keep_on_success,
                )
        robot = SimRobot(
            SimRobotConfig(family=family.name, engine=engine, split=self.settings.split, seed=seed)
        )
        adapters = {
            stage: OnlineAdapter(
                bundle,
                providers=spec.providers,
                mode=mode,
                deterministic=spec.deterministic,
                seed=seed,
                auto_adapt=False,
            )
            for stage, mode in modes.items()
        }
        runs = {
            stage: _StageRun(stage, spec.experience == "sequential", recurrent) for stage in stages
        }
        try:
            for task in tasks:
                robot.set_task(task)
                for stage in stages:
                    ad, scored = adapters[stage], []
                    for _ in range(spec.repeats):
                        ad.reset_to_meta()
                        scored.append(runs[stage].run(robot, ad, self.settings.post_episodes))
                    runs[stage].add_task(scored)
        finally:
            for ad in adapters.values():
                ad.close()
            robot.close()
        notes: tuple[str, ...] = ()
        if recurrent:
            notes = (
                "recurrent bundle (adapts in its state): each scored episode starts a new task "
                "(reset_to_meta) and follows k episodes of experience with the state carried "
                "(after_k); before and first_attempt are both a first episode, fixed one with no "
                "experience",
            )
        elif FIRST_ATTEMPT in stages:
            m = modes[FIRST_ATTEMPT]
            assert isinstance(m, SlidingWindowMode)
            notes = (
                f"first_attempt: adapt every {m.every} ticks on the last {m.window} transitions "
                f"from tick {-(-m.min_window // m.every) * m.every}, {m.steps} inner step(s), "
                "synchronously",
            )
        if spec.repeats > 1:
            notes += (
                f"{spec.repeats} runs per task and stage, each from the meta-parameters with "
                f"fresh experience: {spec.repeats} x the stage's scored episodes per task; "
                "steps to success: the median over the runs that succeeded",
            )
        return ArmResult(
            arm=spec.name,
            kind=spec.kind,
            type=spec.type,
            engine=engine,
            stages={stage: runs[stage].result() for stage in stages},
            notes=notes,
            seconds=time.perf_counter() - t0,
        )


class _StageRun:
    """Collects one stage's episodes and adaptations over the tasks."""

    def __init__(self, stage: str, sequential: bool = False, recurrent: bool = False) -> None:
        self.stage = stage
        self.sequential = sequential
        self.recurrent = recurrent
        self.success: list[list[bool]] = []
        self.returns: list[list[float]] = []
        self.first: list[float] = []
        self.adapt_ms: list[float] = []
        self.rejections: Counter[str] = Counter()

    def _adapt(self, adapter: OnlineAdapter) -> None:
        try:
            result = adapter.adapt()
        except ValueError:  # nothing recorded (every tick faulted): the parameters stay
            self.rejections[NO_DATA] += 1
            return
        if result.reason != KEPT_SUCCESS:  # kept on success: nothing was computed
            self.adapt_ms.append(result.duration_ms)
        if not result.accepted:
            self.rejections[result.reason] += 1

    def run(
        self, robot: SimRobot, adapter: OnlineAdapter, post_episodes: int
    ) -> list[EpisodeOutcome]:
        """The scored episodes of one run on the robot's current task (adapter reset to meta)."""
        if self.recurrent:
            scored = self._recurrent(robot, adapter, post_episodes)
        elif self.stage == FIRST_ATTEMPT:
            assert isinstance(adapter.mode, SlidingWindowMode)
            every = adapter.mode.every

            def on_tick(t: int) -> None:
                if t % every == 0 and not adapter.warming_up:
                    self._adapt(adapter)

            ep = run_episode(robot, adapter, on_tick=on_tick)
            scored = [ep]
        else:
            if self.stage not in (FIXED, BEFORE):
                for _ in range(experience_episodes(self.stage)):
                    run_episode(robot, adapter)
                    if self.sequential:
                        self._adapt(adapter)
                if not self.sequential:
                    self._adapt(adapter)
            scored = [run_episode(robot, adapter) for _ in range(post_episodes)]
        return scored

    def add_task(self, runs: Sequence[Sequence[EpisodeOutcome]]) -> None:
        """One task's row from its runs' scored episodes; steps to success: their median."""
        episodes = [e for scored in runs for e in scored]
        self.success.append([e.success for e in episodes])
        self.returns.append([e.ret for e in episodes])
        steps = [s for s in (_steps_to_success(scored) for scored in runs) if not math.isnan(s)]
        self.first.append(float(np.median(steps)) if steps else math.nan)

    def _recurrent(
        self, robot: SimRobot, adapter: OnlineAdapter, post_episodes: int
    ) -> list[EpisodeOutcome]:
        """A recurrent bundle: per scored episode, a new task and ``k`` episodes before it.

        The same experience as a gradient arm's ``after_k`` (``k`` episodes of this object),
        with the state carried through them instead of an inner step; no scored episode has
        more experience than ``k``.
        """
        k = experience_episodes(self.stage)
        scored = []
        for i in range(post_episodes):
            if i:
                adapter.reset_to_meta()
            for _ in range(k):
                run_episode(robot, adapter)
            scored.append(run_episode(robot, adapter))
        return scored

    def result(self) -> StageResult:
        """The stage over every task run."""
        return stage_from_episodes(
            self.stage,
            self.success,
            self.returns,
            steps_to_success=np.array(self.first, dtype=np.float64),
            adapt_ms=np.array(self.adapt_ms, dtype=np.float64),
            rejections=dict(self.rejections),
        )


def _steps_to_success(episodes: Sequence[EpisodeOutcome]) -> float:
    """Control steps from the start of the first episode to the first successful one (NaN)."""
    before = 0
    for ep in episodes:
        if ep.first_success is not None:
            return float(before + ep.first_success)
        before += ep.ticks
    return math.nan
