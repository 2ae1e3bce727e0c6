"""Deadline accounting of the control loop: the per-tick record and its summary.

Every tick ``k`` of :class:`adapt_robot.runtime.loop.ControlLoop` has a deadline on an absolute
grid, ``t0 + slot_k * period`` (``slot`` skips ahead only after an overrun, so the grid never
drifts). For each tick the loop records the slot, when the tick started and when it ended:

- **jitter** = start - deadline: how late the loop woke up (scheduler latency);
- **compute** = end - start: the tick's own work (read, act, send, observe);
- **miss**: the tick ended after the next slot's deadline, so the next tick could not start on
  time; the loop then realigns to the first future slot and counts the slots it **skipped**.

:class:`TickRecorder` keeps the last ``window`` ticks in preallocated arrays (no allocation per
tick); maxima and counts cover every tick of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, kw_only=True)
class TickTrace:
    """The recorded ticks in order (at most the last ``window``), as int64 nanoseconds."""

    period_ns: int
    """Grid spacing."""
    t0_ns: int
    """Deadline of slot 0 (``time.perf_counter_ns`` clock)."""
    slot: np.ndarray
    """Grid slot of each tick (strictly increasing)."""
    start_ns: np.ndarray
    """When each tick started."""
    end_ns: np.ndarray
    """When each tick ended."""

    @property
    def deadline_ns(self) -> np.ndarray:
        """Deadline of each tick, ``t0 + slot * period``."""
        return self.t0_ns + self.slot * self.period_ns


@dataclass(frozen=True, kw_only=True)
class LoopStats:
    """Summary of a control-loop run (times in microseconds)."""

    rate_hz: float
    """Requested tick rate."""
    ticks: int
    """Ticks executed."""
    episodes: int
    """Episodes completed (``done()`` seen)."""
    successes: int
    """Completed episodes whose robot reported ``success() is True``."""
    misses: int
    """Ticks (not counting episode resets) that overran into the next slot."""
    reset_misses: int
    """Ticks that ran an episode reset and overran (resets may be slow: new object, homing)."""
    skipped_slots: int
    """Grid slots dropped to realign after overruns."""
    robot_errors: int
    """Exceptions raised by the robot (reset, read_obs, send_action, reward, done)."""
    controller_errors: int
    """Exceptions raised by the controller (act, observe)."""
    bad_actions: int
    """Actions of the wrong shape or with NaN/inf, replaced by the safe action."""
    safe_actions: int
    """Ticks on which the safe action was sent instead of the controller's."""
    jitter_us_p50: float
    """Median lateness of tick starts versus their deadlines (recorded window)."""
    jitter_us_p99: float
    """99th percentile of the lateness (recorded window)."""
    jitter_us_max: float
    """Largest lateness of the whole run."""
    compute_us_p50: float
    """Median tick compute time (recorded window)."""
    compute_us_p99: float
    """99th percentile of the tick compute time (recorded window)."""
    compute_us_max: float
    """Largest tick compute time of the whole run."""
    elapsed_s: float
    """Wall time from the first deadline to the end of the last tick."""
    stop_reason: str
    """Why the loop ended (budget, stop(), errors) or ``running``."""
    last_error: str = ""
    """The most recent exception, as ``where: Type: message`` (empty when none)."""
    controller: dict[str, float | int] = field(default_factory=dict)
    """The controller's own counters (adaptations, adapt durations, faults, ...)."""

    @property
    def achieved_hz(self) -> float:
        """Ticks per second actually run."""
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """All counted exceptions."""
        return self.robot_errors + self.controller_errors

    def table(self) -> str:
        """Plain-text table of the run, one figure per line (controller counters last)."""
        rows: list[tuple[str, str]] = [
            ("rate", f"{self.rate_hz:g} Hz requested, {self.achieved_hz:.1f} Hz achieved"),
            ("ticks", str(self.ticks)),
            ("elapsed", f"{self.elapsed_s:.3f} s"),
            ("episodes", f"{self.episodes} ({self.successes} successful)"),
            ("deadline misses", f"{self.misses} (+{self.reset_misses} on reset ticks)"),
            ("skipped slots", str(self.skipped_slots)),
            (
                "jitter p50/p99/max",
                f"{self.jitter_us_p50:.1f} / {self.jitter_us_p99:.1f} / "
                f"{self.jitter_us_max:.1f} us",
            ),
            (
                "compute p50/p99/max",
                f"{self.compute_us_p50:.1f} / {self.compute_us_p99:.1f} / "
                f"{self.compute_us_max:.1f} us",
            ),
            ("robot errors", str(self.robot_errors)),
            ("controller errors", str(self.controller_errors)),
            ("bad actions", str(self.bad_actions)),
            ("safe actions sent", str(self.safe_actions)),
            ("stop reason", self.stop_reason),
        ]
        if self.last_error:
            rows.append(("last error", self.last_error))
        rows.extend((f"controller.{k}", _fmt(v)) for k, v in self.controller.items())
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _fmt(value: float | int) -> str:
    """Integers as is, floats with four significant digits."""
    return str(value) if isinstance(value, int) else f"{value:.4g}"


class TickRecorder:
    """Preallocated ring of the last ``window`` ticks plus whole-run maxima."""

    def __init__(self, period_ns: int, window: int) -> None:
        if window < 1:
            raise ValueError(f"window: expected an integer >= 1, got {window}")
        self.period_ns = period_ns
        self.window = window
        self.t0_ns = 0
        self._slot = np.zeros(window, dtype=np.int64)
        self._start = np.zeros(window, dtype=np.int64)
        self._end = np.zeros(window, dtype=np.int64)
        self.count = 0
        self.jitter_max_ns = 0
        self.compute_max_ns = 0

    def begin(self, t0_ns: int) -> None:
        """Start a run whose slot 0 is due at ``t0_ns``."""
        self.t0_ns = t0_ns
        self.count = 0
        self.jitter_max_ns = 0
        self.compute_max_ns = 0

    def record(self, slot: int, start_ns: int, end_ns: int) -> None:
        """Store one tick (overwrites the oldest once the window is full)."""
        i = self.count % self.window
        self._slot[i] = slot
        self._start[i] = start_ns
        self._end[i] = end_ns
        self.count += 1
        jitter = start_ns - (self.t0_ns + slot * self.period_ns)
        self.jitter_max_ns = max(self.jitter_max_ns, jitter)
        self.compute_max_ns = max(self.compute_max_ns, end_ns - start_ns)

    def trace(self) -> TickTrace:
        """Copy of the recorded ticks, oldest first."""
        n = min(self.count, self.window)
        first = self.count % self.window if self.count > self.window else 0
        order = (np.arange(n) + first) % self.window
        return TickTrace(
            period_ns=self.period_ns,
            t0_ns=self.t0_ns,
            slot=self._slot[order].copy(),
            start_ns=self._start[order].copy(),
            end_ns=self._end[order].copy(),
        )

    def percentiles_us(self) -> tuple[float, float, float, float]:
        """Jitter p50, p99 and compute p50, p99 over the window, in microseconds."""
        n = min(self.count, self.window)
        if n == 0:
            return 0.0, 0.0, 0.0, 0.0
        slot, start, end = self._slot[:n], self._start[:n], self._end[:n]
        jitter = (start - (self.t0_ns + slot * self.period_ns)) / 1e3
        compute = (end - start) / 1e3
        jp50, jp99 = np.percentile(jitter, [50, 99])
        cp50, cp99 = np.percentile(compute, [50, 99])
        return float(jp50), float(jp99), float(cp50), float(cp99)
