"""Scoring a deployment from inside the control loop: episodes, phases, the adaptation schedule.

:class:`ScoredController` is what :func:`adapt_robot.jobs.deploy.run_deploy` hands the control
loop for one object: the :class:`~adapt_robot.runtime.adapter.OnlineAdapter`, plus a record of
every episode (its phase, return, success and the parameter version it ran with) and the
``K`` exploration / adapt / post-episode schedule. Runtime imports only (no torch, no sim).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adapt_robot.runtime.adaptation import AdaptResult
from adapt_robot.runtime.adapter import OnlineAdapter

BEFORE = "before"
"""Phase of the ``K`` exploration episodes (meta-parameters)."""
EXPERIENCE = "experience"
"""Sequential schedule: phase of exploration episodes 2..K, each acting with the adaptation
on the episodes before it (not scored)."""
TRANSITION = "transition"
"""Phase of an episode that started while an adaptation was running (not scored)."""
AFTER = "after"
"""Phase of the post episodes (adapted parameters, or the meta-parameters after a rollback)."""


@dataclass(frozen=True, kw_only=True)
class EpisodeRecord:
    """One episode of the control loop."""

    phase: str
    """``before``, ``experience``, ``transition`` or ``after``."""
    ret: float
    """Undiscounted return."""
    success: bool
    """The task was achieved at some step."""
    params_version: int
    """``params_version`` of the adapter when the episode started (0: meta-parameters)."""
    ticks: int
    """Control ticks of the episode."""


@dataclass(frozen=True, kw_only=True)
class AdaptOutcome:
    """How one object's adaptation ended (as seen from the control loop)."""

    reason: str
    """``accepted``, a rollback reason, ``discarded``, ``no_data``, ``error`` or ``none``."""
    result: AdaptResult | None
    wall_ms: float
    """Episode boundary (submission) to the future's completion, in ms (NaN: none)."""


class ScoredController:
    """The controller of one object's run: the adapter plus scoring and the K/post schedule.

    ``act`` and ``observe`` forward to the adapter (``auto_adapt`` off). Each episode's phase
    is fixed at its first ``act``. Adaptations start at episode ends
    (:meth:`OnlineAdapter.adapt_async`; ``observe`` returns at once):

    - batch (``sequential=False``): ``before`` until ``K`` episodes are done, one adaptation on
      them at the end of the ``K``-th;
    - ``sequential``: one ``before`` episode (meta-parameters), then an adaptation at the end
      of each of the ``K`` exploration episodes (the adapter's mode picks the data, e.g.
      ``EpisodicMode(episodes=1, once=False, history=K)``: all of them so far), episodes 2..K
      being ``experience`` episodes that act with the last result.

    An episode that starts while an adaptation runs is a ``transition`` episode; once the last
    adaptation has finished the ``after`` episodes run (no adaptation follows, so the
    parameters cannot change during one). After ``post_episodes`` scored ``after`` episodes it
    calls ``stop``.
    """

    def __init__(
        self,
        adapter: OnlineAdapter,
        success: Callable[[], bool | None],
        *,
        episodes: int,
        post_episodes: int,
        max_ticks: int,
        sequential: bool = False,
    ) -> None:
        self.adapter = adapter
        self._success = success
        self._k = episodes
        self._post = post_episodes
        self._before = 1 if sequential else episodes
        """Episodes with the meta-parameters before the first adaptation."""
        self._adaptations = episodes if sequential else 1
        """Adaptations per object."""
        self._started = 0
        """Adaptations started (or refused for want of data) so far."""
        self._act_ns = np.zeros(max_ticks, dtype=np.int64)
        self._acts = 0
        self._stop: Callable[[], None] = lambda: None
        self._future: cf.Future[AdaptResult] | None = None
        self._submitted = math.nan
        self._finished = math.nan
        self._finished_event = threading.Event()
        self._no_data = False
        self._new_episode = True
        self._phase = BEFORE
        self._version = 0
        self._ret = 0.0
        self._ticks = 0
        self.records: list[EpisodeRecord] = []

    def attach(self, stop: Callable[[], None]) -> None:
        """The loop's ``stop``, called once the post episodes are done."""
        self._stop = stop

    def _count(self, phase: str) -> int:
        return sum(r.phase == phase for r in self.records)

    def _begin_episode(self) -> None:
        if self._started == 0 and self._count(BEFORE) < self._before:
            self._phase = BEFORE
        elif self._future is not None and not self._future.done():
            self._phase = TRANSITION
        elif self._started < self._adaptations:
            self._phase = EXPERIENCE
        else:
            self._phase = AFTER
        self._version = int(self.adapter.stats()["params_version"])
        self._ret, self._ticks = 0.0, 0
        self._new_episode = False

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The adapter's action (timed)."""
        if self._new_episode:
            self._begin_episode()
        t0 = time.perf_counter_ns()
        action = self.adapter.act(obs)
        dt = time.perf_counter_ns() - t0
        if self._acts < self._act_ns.size:
            self._act_ns[self._acts] = dt
            self._acts += 1
        return action

    def observe(self, reward: float | None, done: bool, next_obs: np.ndarray | None = None) -> None:
        """Forward to the adapter; score the episode; start the adaptation after ``K``.

        The episode is scored even when the adapter raises (the loop counts that error), so
        the records stay aligned with the robot's episodes.
        """
        try:
            self.adapter.observe(reward, done, next_obs, success=self._success())
        finally:
            self._score(reward, done)

    def _score(self, reward: float | None, done: bool) -> None:
        r = reward if reward is not None else self.adapter.stats()["last_reward"]
        self._ret += float(r)
        self._ticks += 1
        if not done:
            return
        record = EpisodeRecord(
            phase=self._phase,
            ret=self._ret,
            success=self._success() is True,
            params_version=self._version,
            ticks=self._ticks,
        )
        self.records.append(record)
        self._new_episode = True
        if (record.phase == BEFORE and self._count(BEFORE) == self._before) or (
            record.phase == EXPERIENCE
        ):
            self._start_adaptation()
        elif record.phase == AFTER and self._count(AFTER) >= self._post:
            self._stop()

    def _start_adaptation(self) -> None:
        self._started += 1
        self._submitted = time.perf_counter()
        self._finished_event.clear()
        try:
            future = self.adapter.adapt_async()
        except ValueError:  # every tick faulted: nothing to adapt on
            self._no_data, self._future = True, None
            return
        self._no_data, self._future = False, future
        future.add_done_callback(self._mark_finished)

    def _mark_finished(self, future: cf.Future[AdaptResult]) -> None:
        if future is self._future:
            self._finished = time.perf_counter()
            self._finished_event.set()

    @property
    def adaptations_started(self) -> int:
        """Adaptations started for this object (the outcome is the last one's)."""
        return self._started

    def stats(self) -> dict[str, float | int]:
        """The adapter's counters."""
        return self.adapter.stats()

    def act_ns(self) -> np.ndarray:
        """``act`` latencies recorded so far (ns)."""
        return self._act_ns[: self._acts].copy()

    def outcome(self) -> AdaptOutcome:
        """The last adaptation's outcome (waits for it if it is still running: after the loop).

        Its parameters (or, after a rollback or a kept success, those before it) are the ones
        the ``after`` episodes ran with.
        """
        if self._no_data:
            return AdaptOutcome(reason="no_data", result=None, wall_ms=math.nan)
        if self._future is None:
            return AdaptOutcome(reason="none", result=None, wall_ms=math.nan)
        try:
            result = self._future.result()
        except Exception:  # logged by the adapter; the parameters stayed the meta-parameters
            return AdaptOutcome(reason="error", result=None, wall_ms=math.nan)
        # Callbacks run just after the result is set: wait for ours before reading its time.
        self._finished_event.wait(timeout=1.0)
        wall = (self._finished - self._submitted) * 1e3
        return AdaptOutcome(reason=result.reason, result=result, wall_ms=wall)
