"""What ``adapt-robot deploy`` measured: per-object results, aggregates with 95% CIs, files.

Scoring follows the offline evaluation protocol (:mod:`adapt_robot.meta.evaluation`) so the
figures compare with ``adapt-robot eval``: actions are sampled from the policy (not its mean),
an episode is a success when the task was achieved at any step, its return is the undiscounted
sum of rewards. **Before** = the ``K`` exploration episodes with the meta-parameters (also the
adaptation batch); **after** = the post episodes with the adapted parameters. Success rates get
a Wilson interval over episodes, returns a Student-t interval over per-object means, gains a
paired t interval over objects (:mod:`adapt_robot.reporting.stats`, numpy only).

Episodes that started while the adaptation was still running on the worker (the loop never
waits for it) are **transition** episodes: they are neither before nor after, and not scored.

Torch-free (numpy and the standard library). This module holds data only: the table is
rendered by :mod:`adapt_robot.jobs.deploy_output`, the plot by
:mod:`adapt_robot.jobs.deploy_figures`, and the files are written by
:func:`adapt_robot.jobs.deploy_output.write_report`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapt_robot.deploy.scoring import AFTER, BEFORE, EXPERIENCE, TRANSITION, EpisodeRecord
from adapt_robot.reporting.stats import Interval, t_interval, wilson_interval
from adapt_robot.runtime.adaptation import ACCEPTED
from adapt_robot.runtime.loop_stats import LoopStats

REPORT_FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class ObjectResult:
    """Everything measured on one held-out object or door."""

    index: int
    """Position in the task draw (0-based)."""
    task: dict[str, Any]
    """The task's parameters (:meth:`adapt_robot.sim.core.family.TaskFamily.describe_task`)."""
    episodes: tuple[EpisodeRecord, ...]
    """Every episode of the run, in order."""
    adapt_reason: str
    """The last adaptation's: ``accepted``, a rollback reason (``loss_increase``, ...),
    ``kept_success``, ``no_data`` or ``error``."""
    adapt_ms: float
    """Duration of the last adaptation on the worker thread (NaN when none ran)."""
    adapt_wall_ms: float
    """From the episode boundary that started it to the new parameters being in (NaN: none)."""
    loss_before: float
    """Inner loss of the meta-parameters on the batch."""
    loss_after: float
    """Inner loss of the adapted parameters on the batch."""
    update_norm: float
    """L2 norm of the parameter update."""
    batch_rows: int
    """Transitions the adaptation ran on (0 when none ran)."""
    dropped_rows: int
    """Exploration transitions that did not fit the bundle's batch capacity."""
    safety: dict[str, int]
    """Safety counters of the adapter during this object's run."""
    loop: LoopStats
    """The control loop's own accounting of this run."""
    act_us: tuple[float, float, float]
    """``OnlineAdapter.act`` latency p50, p99, max in microseconds."""
    adaptations: int = 1
    """Adaptations started for this object (``K`` with the sequential schedule); the other
    ``adapt_*`` figures are the last one's."""

    def phase(self, name: str) -> list[EpisodeRecord]:
        """The episodes of one phase."""
        return [e for e in self.episodes if e.phase == name]

    @property
    def adapted(self) -> bool:
        """The post episodes ran with adapted parameters (the adaptation was accepted)."""
        return self.adapt_reason == ACCEPTED

    def successes(self, name: str) -> int:
        """Successful episodes of a phase."""
        return sum(e.success for e in self.phase(name))

    def mean_return(self, name: str) -> float:
        """Mean return of a phase (NaN when it has no episode)."""
        rets = [e.ret for e in self.phase(name)]
        return float(np.mean(rets)) if rets else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        loop = dataclasses.asdict(self.loop)
        loop.pop("controller")
        scored = {
            name: {
                "episodes": len(self.phase(name)),
                "successes": self.successes(name),
                "returns": [e.ret for e in self.phase(name)],
                "params_versions": [e.params_version for e in self.phase(name)],
            }
            for name in (BEFORE, AFTER)
        }
        return {
            "index": self.index,
            "task": self.task,
            **scored,
            "transition_episodes": len(self.phase(TRANSITION)),
            "experience_episodes": len(self.phase(EXPERIENCE)),
            "adapt": {
                "count": self.adaptations,
                "reason": self.adapt_reason,
                "accepted": self.adapted,
                "ms": self.adapt_ms,
                "wall_ms": self.adapt_wall_ms,
                "loss_before": self.loss_before,
                "loss_after": self.loss_after,
                "update_norm": self.update_norm,
                "batch_rows": self.batch_rows,
                "dropped_rows": self.dropped_rows,
            },
            "episodes": [dataclasses.asdict(e) for e in self.episodes],
            "safety": self.safety,
            "loop": loop,
            "act_us": dict(zip(("p50", "p99", "max"), self.act_us, strict=True)),
        }


def percentiles_us(samples_ns: np.ndarray) -> tuple[float, float, float]:
    """p50, p99 and max of nanosecond samples, in microseconds (NaN when empty)."""
    if samples_ns.size == 0:
        return math.nan, math.nan, math.nan
    p50, p99 = np.percentile(samples_ns, [50, 99]) / 1e3
    return float(p50), float(p99), float(samples_ns.max()) / 1e3


@dataclass(frozen=True, kw_only=True)
class LoopSummary:
    """The control loops of every object together (percentiles over all their ticks)."""

    rate_hz: float
    ticks: int
    episodes: int
    misses: int
    """Ticks (not resets) that overran into the next slot."""
    reset_misses: int
    """Episode-reset ticks that overran."""
    skipped_slots: int
    robot_errors: int
    controller_errors: int
    safe_actions: int
    elapsed_s: float
    """Time inside the loops (the objects' set-up between loops not counted)."""
    jitter_us: tuple[float, float, float]
    """Tick start lateness p50, p99, max."""
    compute_us: tuple[float, float, float]
    """Tick compute (read, act, send/step, observe) p50, p99, max."""
    act_us: tuple[float, float, float]
    """``OnlineAdapter.act`` alone p50, p99, max."""

    @property
    def achieved_hz(self) -> float:
        """Ticks per second inside the loops."""
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @classmethod
    def merge(
        cls,
        runs: Sequence[LoopStats],
        jitter_ns: np.ndarray,
        compute_ns: np.ndarray,
        act_ns: np.ndarray,
        rate_hz: float,
    ) -> LoopSummary:
        """Sum the runs' counters; percentiles from the pooled per-tick samples."""

        def total(name: str) -> int:
            return sum(int(getattr(s, name)) for s in runs)

        return cls(
            rate_hz=rate_hz,
            ticks=total("ticks"),
            episodes=total("episodes"),
            misses=total("misses"),
            reset_misses=total("reset_misses"),
            skipped_slots=total("skipped_slots"),
            robot_errors=total("robot_errors"),
            controller_errors=total("controller_errors"),
            safe_actions=total("safe_actions"),
            elapsed_s=sum(s.elapsed_s for s in runs),
            jitter_us=percentiles_us(jitter_ns),
            compute_us=percentiles_us(compute_ns),
            act_us=percentiles_us(act_ns),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        out = dataclasses.asdict(self)
        for key in ("jitter_us", "compute_us", "act_us"):
            out[key] = dict(zip(("p50", "p99", "max"), out[key], strict=True))
        out["achieved_hz"] = self.achieved_hz
        return out


@dataclass(frozen=True, kw_only=True)
class DeployReport:
    """The result of :func:`adapt_robot.jobs.deploy.run_deploy` (aggregates are properties)."""

    bundle: str
    family: str
    robot: str
    """``sim:ENGINE``."""
    engine: str
    trained_engine: str
    """Engine of the training run (differs from ``engine`` in a sim-to-sim deployment)."""
    split: str
    rate_hz: float
    episodes: int
    """Exploration episodes ``K`` per object (the adaptation batch)."""
    steps: int
    """Inner steps ``n`` of the adaptation."""
    post_episodes: int
    horizon: int
    """Control steps per episode."""
    capacity: int
    """Rows of the bundle's adaptation batch."""
    seed: int
    providers: tuple[str, ...]
    """ONNX Runtime execution providers in use."""
    objects: tuple[ObjectResult, ...]
    loop: LoopSummary
    safety: dict[str, int]
    """Safety counters summed over every object."""
    seconds: float
    """Wall time of the whole job."""
    gif: str | None = None
    """The before/after GIF of the first object, when one was asked for."""
    sequential: bool = False
    """The sequential schedule: an adaptation after each of the ``K`` exploration episodes
    (only the first, with the meta-parameters, is scored as before)."""
    environment: dict[str, str] = field(default_factory=dict)
    """Thread settings that change the timings (``OPENBLAS_NUM_THREADS``, ...)."""

    # ------------------------------------------------------------------ aggregates
    def counts(self, phase: str) -> tuple[int, int]:
        """Successful and all episodes of a phase, over every object."""
        return (
            sum(o.successes(phase) for o in self.objects),
            sum(len(o.phase(phase)) for o in self.objects),
        )

    @property
    def success_before(self) -> Interval:
        """Success rate of the exploration episodes (Wilson 95% CI over episodes)."""
        return wilson_interval(*self.counts(BEFORE))

    @property
    def success_after(self) -> Interval | None:
        """Success rate of the post episodes (Wilson 95% CI); None if none completed."""
        k, n = self.counts(AFTER)
        return wilson_interval(k, n) if n else None

    @property
    def return_before(self) -> Interval | None:
        """Mean return before adapting (Student-t 95% CI over per-object means).

        Objects whose mean is not finite (a NaN reward from the robot, counted in
        ``safety["reward_faults"]``) are left out of every return figure; None if none is left.
        """
        return _finite_t([o.mean_return(BEFORE) for o in self.objects])

    @property
    def return_after(self) -> Interval | None:
        """Mean return after adapting (Student-t 95% CI over per-object means)."""
        return _finite_t([o.mean_return(AFTER) for o in self.objects if o.phase(AFTER)])

    @property
    def success_gain(self) -> Interval | None:
        """Per-object success-rate change, after minus before (paired t 95% CI)."""
        diffs = [
            o.successes(AFTER) / len(o.phase(AFTER)) - o.successes(BEFORE) / len(o.phase(BEFORE))
            for o in self.objects
            if o.phase(AFTER) and o.phase(BEFORE)
        ]
        return t_interval(diffs) if diffs else None

    @property
    def return_gain(self) -> Interval | None:
        """Per-object return change, after minus before (paired t 95% CI)."""
        return _finite_t(
            [o.mean_return(AFTER) - o.mean_return(BEFORE) for o in self.objects if o.phase(AFTER)]
        )

    @property
    def adapt_outcomes(self) -> dict[str, int]:
        """Objects per adaptation outcome (``accepted``, rollback reasons, ``no_data``, ...)."""
        return dict(Counter(o.adapt_reason for o in self.objects))

    @property
    def adapt_ms(self) -> tuple[float, float]:
        """Adaptation duration on the worker thread, p50 and max over objects (ms)."""
        ms = [o.adapt_ms for o in self.objects if math.isfinite(o.adapt_ms)]
        return (float(np.median(ms)), float(max(ms))) if ms else (math.nan, math.nan)

    @property
    def adapt_wall_ms(self) -> tuple[float, float]:
        """Episode boundary to the swap, p50 and max over objects (ms)."""
        ms = [o.adapt_wall_ms for o in self.objects if math.isfinite(o.adapt_wall_ms)]
        return (float(np.median(ms)), float(max(ms))) if ms else (math.nan, math.nan)

    @property
    def transition_episodes(self) -> int:
        """Episodes that started while an adaptation was running (not scored)."""
        return sum(len(o.phase(TRANSITION)) for o in self.objects)

    @property
    def post_on_meta(self) -> int:
        """Post episodes that ran with the meta-parameters (their adaptation was rolled back)."""
        return sum(e.params_version == 0 for o in self.objects for e in o.phase(AFTER))

    # ------------------------------------------------------------------ output
    def to_json(self) -> dict[str, Any]:
        """Everything, as written to ``deploy.json`` (NaN and inf written as null)."""

        def iv(x: Interval | None) -> dict[str, Any] | None:
            return x.to_dict() if x is not None else None

        p50, mx = self.adapt_ms
        w50, wmx = self.adapt_wall_ms
        out = {
            "format": REPORT_FORMAT,
            "bundle": self.bundle,
            "family": self.family,
            "robot": self.robot,
            "engine": self.engine,
            "trained_engine": self.trained_engine,
            "split": self.split,
            "rate_hz": self.rate_hz,
            "episodes": self.episodes,
            "sequential": self.sequential,
            "steps": self.steps,
            "post_episodes": self.post_episodes,
            "horizon": self.horizon,
            "capacity": self.capacity,
            "seed": self.seed,
            "providers": list(self.providers),
            "seconds": self.seconds,
            "gif": self.gif,
            "environment": self.environment,
            "summary": {
                "success_before": iv(self.success_before),
                "success_after": iv(self.success_after),
                "success_gain": iv(self.success_gain),
                "return_before": iv(self.return_before),
                "return_after": iv(self.return_after),
                "return_gain": iv(self.return_gain),
                "adapt_outcomes": self.adapt_outcomes,
                "adapt_ms": {"p50": p50, "max": mx},
                "adapt_wall_ms": {"p50": w50, "max": wmx},
                "transition_episodes": self.transition_episodes,
                "experience_episodes": sum(len(o.phase(EXPERIENCE)) for o in self.objects),
                "post_on_meta": self.post_on_meta,
            },
            "loop": self.loop.to_dict(),
            "safety": self.safety,
            "objects": [o.to_dict() for o in self.objects],
        }
        return _strict(out)


def _finite_t(values: list[float]) -> Interval | None:
    """Student-t interval of the finite ``values`` (None when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return t_interval(finite) if finite else None


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, np.generic):
        return _strict(value.item())
    return value
