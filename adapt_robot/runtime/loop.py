"""A fixed-rate control loop over a robot and a controller, with deadline accounting.

Each tick: ``read_obs -> act -> send_action -> reward/done/read_obs -> observe``. Ticks are
scheduled on an absolute grid (``t0 + slot * period`` on ``time.perf_counter_ns``): the loop
sleeps until the next deadline instead of sleeping "one period", so time spent in a tick never
accumulates into drift. After an overrun it realigns to the first future slot and counts the
miss (see :mod:`adapt_robot.runtime.loop_stats`).

Faults never take the robot out of control silently: an exception from the robot or the
controller, or an action with NaN/inf or the wrong shape, is counted and the configured safe
action is sent in its place; with ``keep_alive=False`` (or after ``max_consecutive_errors``
faulty ticks in a row) the loop sends the safe action and stops with :class:`LoopAborted`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from adapt_robot.runtime.controller import Controller
from adapt_robot.runtime.loop_stats import LoopStats, TickRecorder, TickTrace
from adapt_robot.runtime.robot import Robot
from adapt_robot.runtime.timing import sleep_until, timer_slack

__all__ = ["ControlLoop", "LoopAborted", "LoopConfig", "LoopStats", "TickTrace"]

MIN_RATE_HZ = 100.0
MAX_RATE_HZ = 1000.0


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """Settings of a :class:`ControlLoop`."""

    rate_hz: float = 100.0
    """Tick rate, 100 Hz to 1 kHz. Independent of the policy's control period in simulation."""
    max_ticks: int | None = None
    """Stop after this many ticks (``None``: no tick budget)."""
    max_episodes: int | None = None
    """Stop after this many completed episodes (``None``: no episode budget)."""
    duration_s: float | None = None
    """Stop before the first deadline later than this many seconds after start."""
    keep_alive: bool = True
    """On an exception, count it, send the safe action and go on (False: stop and raise)."""
    max_consecutive_errors: int | None = 100
    """Even when keeping alive, stop after this many faulty ticks in a row (``None``: never)."""
    safe_action: tuple[float, ...] | None = None
    """Action sent in place of a failed or invalid one (``None``: zeros of the robot's
    ``action_dim``; for end-effector deltas that means "stay where you are")."""
    spin_us: int = 0
    """Busy-wait the last microseconds before a deadline instead of sleeping (0 to 200). Off by
    default: it cut the median lateness but doubled misses under CPU contention (see
    :mod:`adapt_robot.runtime.timing` for the measurement)."""
    timer_slack_ns: int | None = 1
    """Linux timer slack of the loop thread while it runs (``None``: leave the 50 us default).
    Lowering it roughly halved the median lateness, at no CPU cost."""
    window: int = 65536
    """Ticks kept for percentiles and :meth:`ControlLoop.trace` (maxima cover the whole run)."""

    def __post_init__(self) -> None:
        if not MIN_RATE_HZ <= self.rate_hz <= MAX_RATE_HZ:
            raise ValueError(
                f"rate_hz: expected {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz, got {self.rate_hz}"
            )
        for name in ("max_ticks", "max_episodes", "max_consecutive_errors"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}: expected an integer >= 1 or None, got {value}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration_s: expected a time > 0 or None, got {self.duration_s}")
        if not 0 <= self.spin_us <= 200:
            raise ValueError(f"spin_us: expected 0 to 200 microseconds, got {self.spin_us}")
        if self.window < 1:
            raise ValueError(f"window: expected an integer >= 1, got {self.window}")
        if self.timer_slack_ns is not None and self.timer_slack_ns < 1:
            raise ValueError(
                f"timer_slack_ns: expected an integer >= 1 or None, got {self.timer_slack_ns}"
            )
        if self.safe_action is not None and not all(np.isfinite(self.safe_action)):
            raise ValueError(f"safe_action: expected finite numbers, got {self.safe_action}")

    @property
    def period_ns(self) -> int:
        """Grid spacing in nanoseconds."""
        return round(1e9 / self.rate_hz)


class LoopAborted(RuntimeError):
    """The loop stopped on an error; ``stats`` holds the accounting up to that point."""

    def __init__(self, message: str, stats: LoopStats) -> None:
        super().__init__(message)
        self.stats = stats


class _TickFault(Exception):
    """Internal: a tick failed in ``where``; carries the original exception as cause."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


class ControlLoop:
    """Drive ``controller`` on ``robot`` at ``config.rate_hz``; :meth:`run` blocks until done."""

    def __init__(self, robot: Robot, controller: Controller, config: LoopConfig) -> None:
        self.robot = robot
        self.controller = controller
        self.config = config
        dim = int(robot.action_dim)
        if config.safe_action is None:
            safe = np.zeros(dim, dtype=np.float32)
        elif len(config.safe_action) != dim:
            raise ValueError(
                f"safe_action: expected {dim} entries (robot.action_dim), "
                f"got {len(config.safe_action)}"
            )
        else:
            safe = np.asarray(config.safe_action, dtype=np.float32)
        safe.setflags(write=False)
        self._safe = safe
        self._recorder = TickRecorder(config.period_ns, config.window)
        self._stop = threading.Event()
        self._running = False
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.ticks = self.episodes = self.successes = 0
        self.misses = self.reset_misses = self.skipped_slots = 0
        self.robot_errors = self.controller_errors = self.bad_actions = self.safe_actions = 0
        self._consecutive_errors = 0
        self._last_error = ""
        self._stop_reason = "not started"
        self._need_reset = False
        self._end_ns = 0

    @property
    def running(self) -> bool:
        """True while :meth:`run` is executing."""
        return self._running

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current tick (safe from any thread)."""
        self._stop.set()

    def trace(self) -> TickTrace:
        """The recorded ticks of the current or last run (see :class:`TickTrace`)."""
        return self._recorder.trace()

    def stats(self) -> LoopStats:
        """Snapshot of the accounting (callable while running, from another thread)."""
        rec = self._recorder
        jp50, jp99, cp50, cp99 = rec.percentiles_us()
        elapsed = max(self._end_ns - rec.t0_ns, 0) / 1e9 if rec.count else 0.0
        try:
            controller_stats = dict(self.controller.stats())
        except Exception as exc:  # a broken stats() must not hide the loop's own figures
            controller_stats = {}
            self._last_error = f"controller.stats: {type(exc).__name__}: {exc}"
        return LoopStats(
            rate_hz=self.config.rate_hz,
            ticks=self.ticks,
            episodes=self.episodes,
            successes=self.successes,
            misses=self.misses,
            reset_misses=self.reset_misses,
            skipped_slots=self.skipped_slots,
            robot_errors=self.robot_errors,
            controller_errors=self.controller_errors,
            bad_actions=self.bad_actions,
            safe_actions=self.safe_actions,
            jitter_us_p50=jp50,
            jitter_us_p99=jp99,
            jitter_us_max=rec.jitter_max_ns / 1e3,
            compute_us_p50=cp50,
            compute_us_p99=cp99,
            compute_us_max=rec.compute_max_ns / 1e3,
            elapsed_s=elapsed,
            stop_reason=self._stop_reason if not self._running else "running",
            last_error=self._last_error,
            controller=controller_stats,
        )

    def run(self) -> LoopStats:
        """Reset the robot, tick until a budget is spent or :meth:`stop`; return the stats.

        Raises :class:`LoopAborted` (with the stats) when an error ends the run.
        """
        if self._running:
            raise RuntimeError("run: this loop is already running (one run at a time)")
        self._running = True
        self._reset_counters()
        self._stop_reason = "running"
        try:
            with timer_slack(self.config.timer_slack_ns):
                return self._run()
        finally:
            self._running = False
            self._stop.clear()

    def _run(self) -> LoopStats:
        cfg = self.config
        period = cfg.period_ns
        try:
            self.robot.reset()
        except Exception as exc:
            self._fault("robot.reset", exc)
            self._stop_reason = "robot.reset failed before the first tick"
            self._running = False
            raise LoopAborted(f"{self._stop_reason}: {self._last_error}", self.stats()) from exc
        t0 = time.perf_counter_ns() + period
        self._recorder.begin(t0)
        end_slot = None if cfg.duration_s is None else int(cfg.duration_s * 1e9) // period
        slot = 0
        while True:
            reason = self._budget_spent(slot, end_slot)
            if reason:
                self._stop_reason = reason
                break
            deadline = t0 + slot * period
            sleep_until(deadline, self.config.spin_us * 1000)
            if self._stop.is_set():
                self._stop_reason = "stop() called"
                break
            start = time.perf_counter_ns()
            was_reset = self._need_reset
            fault = self._tick()
            end = time.perf_counter_ns()
            self._end_ns = end
            self._recorder.record(slot, start, end)
            self.ticks += 1
            slot += 1
            if end > t0 + slot * period:
                if was_reset:
                    self.reset_misses += 1
                else:
                    self.misses += 1
                behind = (end - t0) // period + 1
                self.skipped_slots += behind - slot
                slot = behind
            if fault is not None:
                self._abort_if_needed(fault)
        self._running = False
        return self.stats()

    def _budget_spent(self, slot: int, end_slot: int | None) -> str:
        cfg = self.config
        if cfg.max_ticks is not None and self.ticks >= cfg.max_ticks:
            return f"max_ticks={cfg.max_ticks} reached"
        if cfg.max_episodes is not None and self.episodes >= cfg.max_episodes:
            return f"max_episodes={cfg.max_episodes} reached"
        if end_slot is not None and slot > end_slot:
            return f"duration_s={cfg.duration_s:g} reached"
        if self._stop.is_set():
            return "stop() called"
        return ""

    def _tick(self) -> _TickFault | None:
        """One tick; returns the fault that made it send the safe action, if any."""
        robot, controller = self.robot, self.controller
        fault: _TickFault | None = None
        if self._need_reset:
            try:
                robot.reset()
                self._need_reset = False
            except Exception as exc:
                return self._fault("robot.reset", exc)
        action: np.ndarray = self._safe
        acted = False
        try:
            obs = robot.read_obs()
        except Exception as exc:
            fault = self._fault("robot.read_obs", exc)
        else:
            try:
                action = controller.act(obs)
                acted = True
            except Exception as exc:
                fault = self._fault("controller.act", exc)
        if acted and not self._valid_action(action):
            self.bad_actions += 1
            action = self._safe
        if action is self._safe:
            self.safe_actions += 1
        try:
            robot.send_action(action)
        except Exception as exc:
            fault = self._fault("robot.send_action", exc)
            if action is not self._safe:
                try:
                    robot.send_action(self._safe)
                    self.safe_actions += 1
                except Exception as again:
                    self._note_error("robot.send_action(safe)", again)
            return fault
        if not acted and fault is not None and fault.where == "robot.read_obs":
            return fault
        try:
            reward, done, next_obs = robot.reward(), bool(robot.done()), robot.read_obs()
        except Exception as exc:
            return self._fault("robot.reward/done/read_obs", exc)
        if acted:
            try:
                controller.observe(reward, done, next_obs)
            except Exception as exc:
                fault = self._fault("controller.observe", exc)
        if done:
            self._end_episode()
        if fault is None:
            self._consecutive_errors = 0
        return fault

    def _end_episode(self) -> None:
        self.episodes += 1
        self._need_reset = True
        try:
            if self.robot.success() is True:
                self.successes += 1
        except Exception as exc:
            self._fault("robot.success", exc)

    def _valid_action(self, action: np.ndarray) -> bool:
        return (
            isinstance(action, np.ndarray)
            and action.shape == self._safe.shape
            and bool(np.isfinite(action).all())
        )

    def _note_error(self, where: str, exc: BaseException) -> None:
        self._last_error = f"{where}: {type(exc).__name__}: {exc}"

    def _fault(self, where: str, exc: Exception) -> _TickFault:
        if where.startswith("controller"):
            self.controller_errors += 1
        else:
            self.robot_errors += 1
        self._note_error(where, exc)
        fault = _TickFault(where)
        fault.__cause__ = exc
        return fault

    def _abort_if_needed(self, fault: _TickFault) -> None:
        self._consecutive_errors += 1
        cfg = self.config
        limit = cfg.max_consecutive_errors
        if cfg.keep_alive and (limit is None or self._consecutive_errors < limit):
            return
        if cfg.keep_alive:
            self._stop_reason = f"{self._consecutive_errors} faulty ticks in a row"
        else:
            self._stop_reason = f"error with keep_alive=False in {fault.where}"
        self._running = False
        raise LoopAborted(f"{self._stop_reason}: {self._last_error}", self.stats()) from (
            fault.__cause__
        )
