"""``OnlineAdapter``: act with an exported policy and adapt it on-line, without torch.

The control thread calls :meth:`OnlineAdapter.act` and :meth:`OnlineAdapter.observe` once per
tick. ``act`` runs ``policy.onnx`` with its inputs and outputs bound to preallocated buffers
(no Python-side allocation but the returned action), draws the Gaussian sample from a seeded
generator unless ``deterministic``, clips it to the bundle's bounds and never raises on a bad
observation (a counted fault answered with the safe action). ``observe`` records the
transition (the reward given, or computed on the device by ``reward.onnx``) and, when the mode
says so, starts an adaptation on the single background worker.

An adaptation (:class:`~adapt_robot.runtime.adaptation.InnerLoop`; for a posterior bundle,
PEARL, :class:`~adapt_robot.runtime.posterior.PosteriorUpdate`) builds its new parameter
dict entirely off the control thread; the swap is one reference assignment under a lock that
``act`` holds only to read that reference, so ``act`` never waits for an adaptation. A
rejected update leaves the parameters as they were and is counted by reason.

A posterior bundle acts, before its first adaptation on an object (after construction and
after every ``reset_to_meta()``), with the ``z`` its ``memory.first_episode`` says: drawn from
the prior ``N(0, I)`` by the adapter's seeded generator (``prior_sample``: the same seed gives
the same draws) or the prior mean 0 (``prior_mean``); every adaptation, in every mode, then
sets ``z`` to the posterior mean of the data the mode selects.

``act``, ``observe``, ``adapt``, ``adapt_async`` and ``reset_to_meta`` belong to one control
thread (the last three snapshot or clear the experience buffer that ``observe`` fills);
``stats`` and ``params`` may be read from any thread. Numpy's BLAS (the baseline fit) should
run single-threaded on a robot: set ``OPENBLAS_NUM_THREADS=1`` before numpy is imported.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import threading
import types
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from adapt_robot.runtime.adaptation import (
    CANCELLED,
    DISCARDED,
    KEPT_SUCCESS,
    AdaptResult,
    InnerLoop,
    Stop,
    readonly,
)
from adapt_robot.runtime.buffer import Episodes, TransitionBuffer
from adapt_robot.runtime.bundle import Bundle, graph_metadata
from adapt_robot.runtime.memory import RecurrentMemory
from adapt_robot.runtime.modes import EpisodicMode, SlidingWindowMode
from adapt_robot.runtime.posterior import PosteriorUpdate
from adapt_robot.runtime.safety import (
    ActionClip,
    ObsGuard,
    SafetyConfig,
    SafetyCounters,
)
from adapt_robot.runtime.sessions import (
    BoundRunner,
    SessionSettings,
    create_session,
    resolve_providers,
)

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0
"""How long :meth:`OnlineAdapter.close` waits for a running adaptation before cancelling it."""


class OnlineAdapter:
    """Acts with a bundle's policy and adapts it on-line (see the module docstring)."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        *,
        providers: Sequence[str] = ("cpu",),
        mode: EpisodicMode | SlidingWindowMode = EpisodicMode(),  # noqa: B008 (frozen)
        deterministic: bool = False,
        seed: int = 0,
        safety: SafetyConfig | None = None,
        auto_adapt: bool = True,
        sessions: SessionSettings | None = None,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        m = self.bundle.manifest
        if isinstance(mode, EpisodicMode):
            self._episodes_per_adapt, self._steps = mode.resolve(m.inner_loop)
        elif isinstance(mode, SlidingWindowMode):
            mode.check(m.inner_loop)
            self._episodes_per_adapt, self._steps = 0, mode.steps
        else:
            raise TypeError(
                f"mode: expected EpisodicMode or SlidingWindowMode, got {type(mode).__name__}"
            )
        if m.memory.posterior and self._steps != 1:
            raise ValueError(
                f"mode.steps: bundle {self.bundle.root} adapts by its posterior (memory.kind "
                f"posterior: one encoder.onnx pass per adaptation); expected 1 (or None for "
                f"EpisodicMode), got {self._steps}"
            )
        self.mode = mode
        self.deterministic = deterministic
        safety = self.bundle.safety if safety is None else safety  # None: the bundle's rule
        self.safety = safety
        self.auto_adapt = auto_adapt
        self.providers = resolve_providers(providers)
        settings = SessionSettings() if sessions is None else sessions
        b = self.bundle
        policy_session = create_session(b.graph_bytes("policy"), self.providers, settings)
        self.providers = _active_providers(self.providers, policy_session.get_providers())
        o, a = m.observation.dim, m.action.dim
        self._memory: RecurrentMemory | None = None
        """A recurrent bundle's state and feedback (it adapts in them: no inner step)."""
        self._inner: InnerLoop | PosteriorUpdate | None = None
        """The adaptation: a gradient step, or a posterior's encoder pass (None: recurrent)."""
        if m.memory.recurrent:
            self._memory = RecurrentMemory(m.memory, a, safety.max_abs_reward)
        elif m.memory.posterior:
            encoder = create_session(b.graph_bytes("encoder"), self.providers, settings)
            self._inner = PosteriorUpdate(encoder, m, safety)
        else:
            step_session = create_session(b.graph_bytes("adapt_step"), self.providers, settings)
            self._inner = InnerLoop(step_session, m, b.lrs, safety)
        self._meta: dict[str, np.ndarray] = dict(b.params)
        self._rng = np.random.default_rng(seed)
        self._first = self._first_params()
        """What the policy acts with before an adaptation (``memory.first_episode``)."""
        self._params = self._first
        self._bound = self._params
        self._swap_lock = threading.Lock()
        self._adapt_lock = threading.Lock()
        self._generation = 0
        # act(): every buffer preallocated; the policy reads obs and params in place. Between
        # act() and observe() these buffers hold the pending transition (obs, sample, action).
        self._guard = ObsGuard(o)
        self._clip = ActionClip(b.action_low, b.action_high)
        self._mean = np.zeros((1, a), dtype=np.float32)
        self._log_std = np.zeros(a, dtype=np.float32)
        self._noise = np.zeros(a, dtype=np.float32)
        self._sample = np.zeros(a, dtype=np.float32)
        """The Gaussian sample (unclipped): what adaptation trains on, as in training."""
        self._action = np.zeros((1, a), dtype=np.float32)
        """The clipped action sent (and, for ``hold``, the last good one)."""
        self._zero = self._clip.safe_zero()
        np.copyto(self._action[0], self._zero)
        self._held = self._zero.copy()
        """The last action sent for a good observation (``fault_action: hold``)."""
        memory_in = {} if self._memory is None else self._memory.inputs()
        memory_out = {} if self._memory is None else self._memory.outputs()
        self._policy = BoundRunner(
            policy_session,
            {"obs": self._guard.buffer, **memory_in, **self._params},
            {"action_mean": self._mean, "action_log_std": self._log_std, **memory_out},
        )
        self._acts = 0
        self._pending = False
        self._pending_ok = False
        self._reward: BoundRunner | None = None
        self._next_guard = ObsGuard(o)
        self._reward_out = np.zeros(1, dtype=np.float32)
        self._success_out = np.zeros(1, dtype=bool)
        if b.has_reward:
            reward_session = create_session(b.graph_bytes("reward"), self.providers, settings)
            self._reward = BoundRunner(
                reward_session,
                {
                    "obs": self._guard.buffer,
                    "action": self._action,
                    "next_obs": self._next_guard.buffer,
                },
                {"reward": self._reward_out, "success": self._success_out},
            )
        self._buffer = TransitionBuffer(m.inner_loop.capacity, o, a)
        self._since = 0
        self._episodes_since = 0
        self._ticks_since = 0
        self._adapted_once = False
        self._warned_dropped = False
        self._episode_ok = False
        """Some step of the current episode succeeded."""
        self._last_episode_ok = False
        """The last finished episode succeeded (EpisodicMode.keep_on_success)."""
        self._future: cf.Future[AdaptResult] | None = None
        self._stop: Stop | None = None
        """The running adaptation's stop (``close()`` cancels it)."""
        self._closed = False
        self.counters = SafetyCounters()
        self._stats: dict[str, float | int] = {
            "ticks": 0,
            "episodes": 0,
            "resets": 0,
            "params_version": 0,
            "adapt_attempts": 0,
            "adaptations": 0,
            "discarded_adaptations": 0,
            "adapt_errors": 0,
            "adapt_cancelled": 0,
            "adapt_deferred": 0,
            "adapt_no_data": 0,
            "dropped_rows": 0,
            "dropped_episodes": 0,
            "last_loss_before": float("nan"),
            "last_loss_after": float("nan"),
            "last_grad_norm": float("nan"),
            "last_update_norm": float("nan"),
            "adapt_ms_last": float("nan"),
            "adapt_ms_max": 0.0,
            "last_reward": float("nan"),
            "last_success": 0,
            "kept_on_success": 0,
            "adapts_in_state": int(self._memory is not None),
            "adapts_by_posterior": int(m.memory.posterior),
            "last_posterior_var": float("nan"),
            "state_faults": 0,
        }

    # ------------------------------------------------------------------ control thread
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action ``float32 [act_dim]`` for ``obs``: finite and within the bounds, always.

        A bad observation (shape, type, NaN/inf) is counted in ``obs_faults`` and answered with
        the safe action (``SafetyConfig.fault_action``); it is not recorded for adaptation. The
        action is checked once more after the clip: one that is still not finite (which
        validated bounds cannot give, so something else broke) is counted in
        ``action_faults``, answered with the safe action and not recorded either. A recurrent
        bundle's state advances with every policy run; a non-finite next state is counted in
        ``state_faults``, the old state kept and the safe action sent.
        """
        if self._closed:
            raise RuntimeError("OnlineAdapter.act: the adapter is closed")
        if self._memory is not None and self._pending:  # no observe() for the last tick
            self._memory.record(float("nan"), done=False)
        action = self._act(obs)
        if self._memory is not None:
            self._memory.sent(action)
        return action

    def _act(self, obs: np.ndarray) -> np.ndarray:
        self._acts += 1
        self._pending = True
        if not self._guard.load(obs):
            self.counters.obs_faults += 1
            self._pending_ok = False
            return self._safe_action()
        with self._swap_lock:
            params = self._params
        if params is not self._bound:
            for name, value in params.items():
                self._policy.bind_input(name, value)
            self._bound = params
        self._policy.run()
        if self._memory is not None and not self._memory.advance():
            self._stats["state_faults"] += 1
            self._pending_ok = False
            return self._safe_action()
        sample = self._sample
        if self.deterministic:
            np.copyto(sample, self._mean[0])
        else:
            self._rng.standard_normal(dtype=np.float32, out=self._noise)
            with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN: clipped below
                np.exp(self._log_std, out=sample)
                np.multiply(sample, self._noise, out=sample)
                np.add(sample, self._mean[0], out=sample)
        if self._clip.apply(sample, self._action[0]):
            self.counters.clipped_actions += 1
        if not self._clip.finite(self._action[0]):  # the last line: never send a non-finite
            self.counters.action_faults += 1
            self._pending_ok = False
            np.copyto(self._action[0], self._safe_action())
            return self._action[0].copy()
        np.copyto(self._held, self._action[0])
        self._pending_ok = True
        return self._action[0].copy()

    def _safe_action(self) -> np.ndarray:
        """The answer to a fault: the clipped zero, or the last good action for ``hold``."""
        return (self._held if self.safety.fault_action == "hold" else self._zero).copy()

    def observe(
        self,
        reward: float | None,
        done: bool,
        next_obs: np.ndarray | None = None,
        success: bool | None = None,
    ) -> None:
        """Record the outcome of the last :meth:`act`; ``done`` ends the episode.

        ``reward=None`` computes it on the device with ``reward.onnx`` from the last
        observation, the action sent and ``next_obs``. A reward that is not a real number (a
        string, an array, an object whose ``__float__`` raises, an int beyond float range) is
        read as NaN; a NaN/inf or out-of-range reward is counted in ``reward_faults`` (an
        adaptation on it is rolled back). ``success`` is the task's success as the robot knows
        it (None: from ``reward.onnx`` where it ran); it matters only to
        ``EpisodicMode(keep_on_success=True)``. With ``auto_adapt``, starts
        :meth:`adapt_async` when the mode says so.

        ``done`` and ``success`` are flags: ``True``/``False``, numpy bools, the numbers 0 and 1
        (int or float) or 0-d arrays of those. Anything else (``"no"``, NaN, 0.5, None, an
        array with dimensions, an object whose ``__bool__`` raises) is counted in
        ``observe_faults`` and never raises: ``done`` is then read as true (the episode is
        ended, so returns are never computed across what may have been a reset; at worst one
        episode is split in two) and ``success`` as false (no success claimed, so
        ``keep_on_success`` does not skip an adaptation on it).
        """
        if not self._pending:
            raise RuntimeError("OnlineAdapter.observe: no act() since the last observe()")
        if reward is None:
            self._check_device_reward(next_obs)
        self._pending = False
        flag = _as_flag(done)
        ok = None if success is None else _as_flag(success)
        if flag is None or (success is not None and ok is None):
            self.counters.observe_faults += 1
        done = True if flag is None else flag
        r = float("nan") if reward is None else _as_float(reward)
        if self._pending_ok:
            if reward is None:
                r = self._device_reward(next_obs)
            if not abs(r) <= self.safety.max_abs_reward:  # also catches NaN
                self.counters.reward_faults += 1
            self._stats["last_reward"] = r
            self._buffer.add(self._guard.buffer[0], self._sample, r, done)
        elif done:
            self._buffer.end_episode()
        if self._memory is not None:
            self._memory.record(r, done)
        if success is not None:
            self._episode_ok = self._episode_ok or bool(ok)
        elif reward is None:
            self._episode_ok = self._episode_ok or bool(self._stats["last_success"])
        self._stats["ticks"] += 1
        self._ticks_since += 1
        if done:
            self._stats["episodes"] += 1
            self._episodes_since += 1
            self._last_episode_ok, self._episode_ok = self._episode_ok, False
        if self.auto_adapt:
            self._maybe_adapt()

    def _check_device_reward(self, next_obs: np.ndarray | None) -> None:
        if self._reward is None:
            raise ValueError(
                f"observe(reward=None): bundle {self.bundle.root} has no reward.onnx "
                f"({self.bundle.manifest.reward_note}); pass the reward measured on the robot"
            )
        if next_obs is None:
            raise ValueError("observe(reward=None): pass next_obs so reward.onnx can compute it")

    def _device_reward(self, next_obs: np.ndarray | None) -> float:
        """Reward of the pending transition from ``reward.onnx`` (NaN for a bad next_obs)."""
        if self._reward is None or not self._next_guard.load(next_obs):
            return float("nan")
        self._reward.run()
        self._stats["last_success"] = int(self._success_out[0])
        return float(self._reward_out[0])

    def _maybe_adapt(self) -> None:
        if self._memory is not None:  # adapts in its state, at every act()
            return
        if isinstance(self.mode, EpisodicMode):
            if self.mode.once and self._adapted_once:
                return
            if self._episodes_since < self._episodes_per_adapt:
                return
        elif self._ticks_since < self.mode.every or self.warming_up:
            return
        if self._future is not None and not self._future.done():
            self._stats["adapt_deferred"] += 1  # due, but the worker is busy: next tick
            return
        try:
            self.adapt_async()
        except ValueError:  # nothing recorded to adapt on (every tick faulted): wait for data
            self._stats["adapt_no_data"] += 1
            self._episodes_since = self._ticks_since = 0

    @property
    def warming_up(self) -> bool:
        """Sliding window: fewer than ``min_window`` transitions recorded since the reset.

        No adaptation is due until then (a caller that adapts by hand asks this too). With the
        default ``min_window=1`` an adaptation is due from the first due tick (with nothing
        recorded it is counted as ``adapt_no_data``, as before the warm-up existed).
        """
        first = self.mode.min_window if isinstance(self.mode, SlidingWindowMode) else 1
        return first > 1 and self._buffer.total < first

    def reset_to_meta(self) -> None:
        """A new object or door: meta-parameters back, experience cleared.

        A recurrent bundle's state goes back to zeros here, and only here (episode ends keep
        it: that is how it adapts). A posterior bundle's ``z`` is drawn again from the prior
        (``memory.first_episode: prior_sample``) or set to its mean.

        An adaptation still running finishes but its result is discarded.
        """
        first = self._first_params()
        with self._swap_lock:
            self._generation += 1
            self._first = self._params = first
            self._stats["params_version"] = 0
        self._buffer.clear()
        self._pending = self._pending_ok = False
        self._since = self._episodes_since = self._ticks_since = 0
        self._adapted_once = False
        self._episode_ok = self._last_episode_ok = False
        np.copyto(self._action[0], self._zero)
        np.copyto(self._held, self._zero)
        if self._memory is not None:
            self._memory.reset()
        self._stats["resets"] += 1

    def _first_params(self) -> dict[str, np.ndarray]:
        """The parameters before an adaptation on an object.

        The meta-parameters, with a posterior bundle's ``z`` drawn from the prior (from this
        adapter's generator) or at its mean.
        """
        mem = self.bundle.manifest.memory
        if mem.first_episode == "meta":
            return self._meta
        z = np.zeros(mem.state_dim, dtype=np.float32)
        if mem.first_episode == "prior_sample":
            self._rng.standard_normal(dtype=np.float32, out=z)
        return {**self._meta, mem.state_input: readonly(z)}

    # ------------------------------------------------------------------ adaptation
    def _take_batch(self) -> tuple[Episodes, int]:
        """Snapshot the data the mode adapts on (copies; called on the caller's thread)."""
        if isinstance(self.mode, EpisodicMode):
            if self.mode.history is not None:  # this object's recent episodes, old and new
                episodes = self._buffer.episodes(self.mode.history, 0)
            else:
                episodes = self._buffer.episodes(self._episodes_per_adapt, self._since)
            self._since = self._buffer.total
            self._episodes_since = 0
            self._adapted_once = True
        else:
            episodes = self._buffer.window(self.mode.window)
            self._ticks_since = 0
        self._stats["dropped_rows"] += episodes.dropped_rows
        self._stats["dropped_episodes"] += episodes.dropped_episodes
        if episodes.dropped_episodes and not self._warned_dropped:  # once: the control thread
            self._warned_dropped = True
            logger.warning(
                "adaptation left out %d episode(s) (%d rows) that no longer fit the bundle's "
                "inner_loop.capacity of %d rows; re-export with `adapt-robot export RUN -o DIR "
                "--capacity N` (N >= episodes x horizon) or adapt on fewer episodes (counted in "
                "stats()['dropped_episodes'])",
                episodes.dropped_episodes,
                episodes.dropped_rows,
                self._buffer.capacity,
            )
        return episodes, self._generation

    def _check_adapts(self, what: str) -> InnerLoop | PosteriorUpdate:
        if self._inner is None:
            raise RuntimeError(
                f"OnlineAdapter.{what}: bundle {self.bundle.root} adapts in its recurrent state "
                "(manifest memory.kind: recurrent; RL2): there is no gradient step to run. Its "
                "state carries across episodes by itself; reset_to_meta() for a new object."
            )
        return self._inner

    def _run(self, episodes: Episodes, generation: int, stop: Stop) -> AdaptResult:
        inner = self._inner
        assert inner is not None  # adapt() and adapt_async() refuse a recurrent bundle first
        with self._adapt_lock:
            self._stats["adapt_attempts"] += 1
            try:
                new, result = inner.run(self._meta, episodes, self._steps, stop)
            except Exception:
                self._stats["adapt_errors"] += 1
                logger.exception("adaptation failed; the parameters are unchanged")
                raise
            with self._swap_lock:
                stale = generation != self._generation
                if stop.cancelled and result.reason != CANCELLED:  # closed after the last step
                    result = dataclasses.replace(result, accepted=False, reason=CANCELLED)
                    new = None
                if new is not None and not stale:
                    self._params = new
                    self._stats["params_version"] += 1
            if result.reason == CANCELLED:
                self._stats["adapt_cancelled"] += 1
            elif stale:
                self._stats["discarded_adaptations"] += 1
                result = dataclasses.replace(result, accepted=False, reason=DISCARDED)
            elif result.accepted:
                self._stats["adaptations"] += 1
            else:
                self.counters.rollback(result.reason)
            s = self._stats
            s["last_loss_before"], s["last_loss_after"] = result.loss_before, result.loss_after
            s["last_grad_norm"], s["last_update_norm"] = result.grad_norm, result.update_norm
            s["last_posterior_var"] = result.posterior_var  # NaN but for a posterior bundle
            s["adapt_ms_last"] = result.duration_ms
            s["adapt_ms_max"] = max(float(s["adapt_ms_max"]), result.duration_ms)
            return result

    def adapt(self) -> AdaptResult:
        """Adapt now, on this thread, on the data the mode selects; swap or roll back.

        Raises ``ValueError`` when there is nothing to adapt on yet, ``RuntimeError`` after
        :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("OnlineAdapter.adapt: the adapter is closed")
        self._check_adapts("adapt")
        episodes, generation = self._take_batch()
        if self._keeps_success():
            return self._kept(episodes)
        stop = self._stop = Stop(self.safety.adapt_deadline_s)
        return self._run(episodes, generation, stop)

    def _keeps_success(self) -> bool:
        """``EpisodicMode(keep_on_success=True)`` and the last finished episode succeeded."""
        mode = self.mode
        return isinstance(mode, EpisodicMode) and mode.keep_on_success and self._last_episode_ok

    def _kept(self, episodes: Episodes) -> AdaptResult:
        """The result of an adaptation skipped because the last episode succeeded."""
        self._stats["kept_on_success"] += 1
        nan = float("nan")
        return AdaptResult(
            accepted=False,
            reason=KEPT_SUCCESS,
            steps=0,
            rows=episodes.rows,
            episodes=episodes.count,
            dropped_rows=episodes.dropped_rows,
            loss_before=nan,
            loss_after=nan,
            grad_norm=nan,
            update_norm=nan,
            duration_ms=0.0,
        )

    def adapt_async(self) -> cf.Future[AdaptResult]:
        """Adapt on the background worker; returns the running adaptation's future if any."""
        if self._closed:
            raise RuntimeError("OnlineAdapter.adapt_async: the adapter is closed")
        self._check_adapts("adapt_async")
        if self._future is not None and not self._future.done():
            return self._future
        episodes, generation = self._take_batch()
        if self._keeps_success():
            done: cf.Future[AdaptResult] = cf.Future()
            done.set_result(self._kept(episodes))
            return done
        stop = self._stop = Stop(self.safety.adapt_deadline_s)
        future: cf.Future[AdaptResult] = cf.Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._run(episodes, generation, stop))
            except BaseException as err:  # delivered to whoever reads the future
                future.set_exception(err)

        # A daemon thread per adaptation: one that never ends cannot hold up close() or the
        # interpreter's exit (a ThreadPoolExecutor's worker joins at exit).
        threading.Thread(target=work, name="adapt", daemon=True).start()
        self._future = future
        return future

    # ------------------------------------------------------------------ inspection
    @property
    def params(self) -> Mapping[str, np.ndarray]:
        """The parameters ``act`` uses now (read-only view of read-only arrays)."""
        return types.MappingProxyType(self._params)

    @property
    def meta_params(self) -> Mapping[str, np.ndarray]:
        """The bundle's meta-parameters (read-only)."""
        return types.MappingProxyType(self._meta)

    def snapshot(self, path: str | Path, control_hz: float | None = None) -> Path:
        """Write the policy as it acts now (adapted parameters included) as a frozen graph.

        ``path``: the ``.onnx`` file to write (atomically: a temporary file, then a rename).
        The graph maps ``obs`` to ``actions`` with every parameter inside
        (:mod:`adapt_robot.runtime.frozen`), so a robot can keep what it learned on an object
        and run it without this runtime. ``control_hz`` is recorded in its metadata when given.
        Needs the ``onnx`` package.
        """
        from adapt_robot.runtime.frozen import freeze_policy

        if self._memory is not None:
            raise ValueError(
                f"snapshot: bundle {self.bundle.root} is recurrent; what it learnt of this object "
                "is in its state, and a frozen graph is a memoryless obs -> actions map"
            )
        with self._swap_lock:
            params, version = self._params, int(self._stats["params_version"])
            before = params is self._first  # a posterior's z before adapting (or the meta)
        m = self.bundle.manifest
        source = self.bundle.graph_bytes("policy")
        policy = source if isinstance(source, bytes) else Path(source).read_bytes()
        # The bundle's own facts (family, names, bounds, export id, ...), as export writes them
        # into policy_frozen.onnx; freeze_policy names the graph itself.
        meta = graph_metadata(m, "policy_frozen")
        del meta["graph"]
        first = m.memory.first_episode
        meta["adapt_robot.params"] = (
            "meta" if params is self._meta else first if before else "adapted"
        )
        meta["adapt_robot.params_version"] = version
        if control_hz is not None:
            meta["adapt_robot.control_hz"] = float(control_hz)
        frozen = freeze_policy(
            policy, params, self.bundle.action_low, self.bundle.action_high, meta
        )
        out = Path(path)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_bytes(frozen)
        tmp.replace(out)
        return out

    @property
    def adapting(self) -> bool:
        """Whether an adaptation is running on the worker."""
        return self._future is not None and not self._future.done()

    def stats(self) -> dict[str, float | int]:
        """Counters and last figures: acts, episodes, faults, adaptations, rollbacks, ..."""
        out = dict(self._stats)
        out["acts"] = self._acts
        out.update(self.counters.as_dict())
        out["faults"] = self.counters.obs_faults + self.counters.action_faults
        out["adapting"] = int(self.adapting)
        out["buffered_rows"] = min(self._buffer.total, self._buffer.capacity)
        return out

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Refuse further calls and stop adapting; returns within about ``timeout`` seconds.

        A running adaptation is given ``timeout`` seconds to finish (its result is swapped in
        as usual); past that it is cancelled (:class:`~adapt_robot.runtime.adaptation.Stop`:
        ONNX Runtime's terminate flag ends the step in progress, no further step starts), its
        result is discarded and counted in ``adapt_cancelled``, and the parameters stay the
        last good ones. ``act``, ``adapt`` and ``adapt_async`` raise ``RuntimeError`` after.
        """
        self._closed = True
        future, stop = self._future, self._stop
        if future is None or stop is None or future.done():
            return
        try:
            future.result(timeout=max(timeout, 0.0))
        except cf.TimeoutError:
            stop.cancel()
        except Exception:  # already counted and logged by _run; close() itself must not fail
            return

    def __enter__(self) -> OnlineAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_float(reward: object) -> float:
    """``reward`` as a float: a real number or a 0-d real array; NaN for anything else.

    Never raises (an int beyond float range, an object whose ``__float__`` raises, a string
    or an array with dimensions are all NaN, so the caller counts a reward fault).
    """
    try:
        if isinstance(reward, str | bytes | bytearray):
            return float("nan")  # float("1.0") would read it: a string is a caller's bug
        if isinstance(reward, np.ndarray):
            if reward.ndim != 0 or reward.dtype.kind not in "fiub":
                return float("nan")
            reward = reward.item()
        with np.errstate(all="ignore"):
            return float(reward)  # type: ignore[arg-type]
    except Exception:  # OverflowError, or whatever a hostile __float__ raises
        return float("nan")


def _as_flag(value: object) -> bool | None:
    """``value`` as a flag: a bool, a numpy bool, 0 or 1 (int or float) or a 0-d array of those.

    None for anything else; never raises.
    """
    try:
        if isinstance(value, np.ndarray):
            if value.ndim != 0:
                return None
            value = value.item()
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
            return bool(value == 1)
    except Exception:  # a hostile __eq__ / item(): unreadable
        return None
    return None


def _active_providers(requested: Sequence[str], active: Sequence[str]) -> list[str]:
    """The providers the session really runs on, with one warning for those that did not start.

    A build can list a provider it cannot start here (onnxruntime-gpu without the CUDA or
    TensorRT libraries): ONNX Runtime then falls back on its own, and ``providers`` must say so.
    """
    dropped = [p for p in requested if p not in active]
    if dropped:
        logger.warning(
            "execution providers %s did not start on this machine (missing GPU libraries or "
            "device; ONNX Runtime's own log above says which); running on %s",
            dropped,
            list(active),
        )
    return list(active)
