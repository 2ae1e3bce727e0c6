"""One adaptation, off the control thread: advantages, ``n`` inner steps, safety verdict.

:class:`InnerLoop` owns the ``adapt_step.onnx`` session and a preallocated batch. Given padded
episodes (:class:`~adapt_robot.runtime.buffer.Episodes`) and start parameters it

1. for a policy-gradient bundle (``inner_loop.loss: policy_gradient``): refuses a batch with
   a reward that is NaN/inf or beyond ``max_abs_reward``, computes advantages in numpy with the
   bundle's settings (:class:`~adapt_robot.runtime.advantages.AdvantageSettings`, as training
   did) and packs the live rows into the fixed-capacity batch (padding has ``mask = 0``);
2. for an identification bundle (``identification``, the latent learner): packs the robot's
   transitions ``(obs, act, next_obs)`` with :func:`~adapt_robot.runtime.buffer.pack_transitions`
   (the function training uses) and refuses non-finite or implausible ones
   (:func:`~adapt_robot.runtime.safety.transitions_ok`); no reward is needed;
4. runs the graph ``n`` times, feeding ``new.*`` back, as the training ``adapt()`` does;
5. measures the inner loss of the result on the same batch and applies
   :func:`~adapt_robot.runtime.safety.rejection`.

It returns the new parameter dict (fully built, read-only arrays) or None with the reason.
The swap itself is the caller's (one reference assignment under its lock). A posterior bundle
(PEARL) adapts by :class:`~adapt_robot.runtime.posterior.PosteriorUpdate` instead, with the
same contract, :class:`Stop` (:func:`run_or_stop`) and result (:func:`finished`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import onnxruntime as ort

from adapt_robot.runtime.advantages import AdvantageSettings
from adapt_robot.runtime.buffer import (
    PG_FIELDS,
    TRANSITION_FIELDS,
    Batch,
    Episodes,
    pack,
    pack_transitions,
)
from adapt_robot.runtime.bundle_format import LR_PREFIX, NEW_PREFIX, Manifest
from adapt_robot.runtime.safety import (
    DEADLINE,
    NONFINITE_ADVANTAGES,
    SafetyConfig,
    batch_rejection,
    rejection,
    rewards_ok,
    transition_rejection,
    transition_scale,
)

ACCEPTED = "accepted"
DISCARDED = "discarded"
"""The adaptation finished after ``reset_to_meta()``: its result belonged to the old object."""
KEPT_SUCCESS = "kept_success"
"""No adaptation: the last episode succeeded and the mode keeps a behaviour that works."""
CANCELLED = "cancelled"
"""The adaptation was stopped by :meth:`OnlineAdapter.close` (not a rollback: no verdict)."""


class Stop:
    """Stops one adaptation from another thread, or when its deadline passes.

    :meth:`InnerLoop.run` checks :meth:`reason` before every inner step; :meth:`cancel` also
    sets ONNX Runtime's ``terminate`` flag on :attr:`run_options`, which ends a step already
    running. A stopped adaptation returns no parameters.
    """

    def __init__(self, deadline_s: float) -> None:
        self.run_options = ort.RunOptions()
        """Passed to every ``session.run`` of the adaptation."""
        self._deadline = time.monotonic() + deadline_s
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop the adaptation at once (thread-safe; idempotent)."""
        self._cancelled.set()
        self.run_options.terminate = True

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def reason(self) -> str | None:
        """``cancelled``, ``deadline`` (past it) or None (carry on)."""
        if self._cancelled.is_set():
            return CANCELLED
        if time.monotonic() > self._deadline:
            return DEADLINE
        return None


@dataclass(frozen=True, kw_only=True)
class AdaptResult:
    """What one adaptation did."""

    accepted: bool
    """Whether the new parameters were swapped in."""
    reason: str
    """``accepted``, ``discarded`` or the rollback reason (``adapt_robot.runtime.safety``)."""
    steps: int
    """Inner steps run."""
    rows: int
    """Live rows in the batch (steps; for an identification batch, transitions ``t -> t+1``)."""
    episodes: int
    """Episodes (segments) in the batch."""
    dropped_rows: int
    """Rows of the requested episodes that did not fit the capacity."""
    loss_before: float
    """Inner loss of the start parameters on the batch (NaN if no step ran)."""
    loss_after: float
    """Inner loss of the new parameters on the batch (NaN if not measured)."""
    grad_norm: float
    """Gradient norm at the first step (NaN if no step ran)."""
    update_norm: float
    """L2 norm of ``new - start`` over the adapted parameters (NaN if no step ran)."""
    duration_ms: float
    """Wall time of the adaptation, advantages to verdict."""
    posterior_var: float = math.nan
    """A posterior update (PEARL): the mean of the posterior's variance over ``z`` (1 with no
    transition, smaller the more the context pins ``z`` down); NaN for the other bundles."""


T = TypeVar("T")


def run_or_stop(stop: Stop, call: Callable[[ort.RunOptions], T]) -> T | str:
    """``call(stop.run_options)`` (one graph run), or the reason to stop instead.

    The reason is ``stop``'s before the run, or ``cancelled`` when ONNX Runtime ended the run
    on its terminate flag; any other error propagates.
    """
    reason = stop.reason()
    if reason is not None:
        return reason
    try:
        return call(stop.run_options)
    except Exception:
        if stop.cancelled:  # ONNX Runtime ended the run on the terminate flag
            return CANCELLED
        raise


def finished(
    reason: str,
    episodes: Episodes,
    rows: int,
    t0: float,
    *,
    steps: int = 0,
    loss_before: float = math.nan,
    loss_after: float = math.nan,
    grad_norm: float = math.nan,
    update_norm: float = math.nan,
    posterior_var: float = math.nan,
) -> AdaptResult:
    """The :class:`AdaptResult` of an adaptation on ``episodes`` begun at ``t0`` (perf_counter).

    ``rows`` are the batch's live rows; figures not given are NaN (not measured).
    """
    return AdaptResult(
        accepted=reason == ACCEPTED,
        reason=reason,
        steps=steps,
        rows=rows,
        episodes=episodes.count,
        dropped_rows=episodes.dropped_rows,
        loss_before=loss_before,
        loss_after=loss_after,
        grad_norm=grad_norm,
        update_norm=update_norm,
        duration_ms=(time.perf_counter() - t0) * 1e3,
        posterior_var=posterior_var,
    )


def readonly(a: np.ndarray) -> np.ndarray:
    """``a``, marked read-only (a parameter the policy session may read at any time)."""
    a.flags.writeable = False
    return a


class InnerLoop:
    """Runs ``adapt_step.onnx`` on a batch and judges the result (one thread at a time)."""

    def __init__(
        self,
        session: ort.InferenceSession,
        manifest: Manifest,
        lrs: Mapping[str, np.ndarray],
        safety: SafetyConfig,
    ) -> None:
        self.session = session
        self.safety = safety
        self.names = [p.name for p in manifest.parameters]
        self.adapted = manifest.adapted_names()
        self.settings = AdvantageSettings.from_inner_loop(manifest.inner_loop)
        self.output_names = [o.name for o in session.get_outputs()]
        self._new_index = [self.output_names.index(NEW_PREFIX + n) for n in self.adapted]
        self._loss_index = self.output_names.index("loss")
        self._gnorm_index = self.output_names.index("grad_norm")
        self._lr_feed = {LR_PREFIX + n: np.ascontiguousarray(lrs[n]) for n in self.adapted}
        il = manifest.inner_loop
        self.batch = Batch.zeros(il.capacity, manifest.observation.dim, manifest.action.dim)
        self.identification = il.loss == "identification"
        self.fields = TRANSITION_FIELDS if self.identification else PG_FIELDS
        inputs = {i.name for i in session.get_inputs()}
        self._param_inputs = [n for n in self.names if n in inputs]
        """Parameters the graph reads (an identification step does not read the policy's)."""
        self._run_options: ort.RunOptions | None = None
        """The running adaptation's options (its :class:`Stop` terminates a step with them)."""
        norm = manifest.normalizer
        self._obs_std = transition_scale(np.asarray(norm.var, dtype=np.float64), norm.eps)

    def step(self, params: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, float]:
        """One inner step on the current batch: ``(new params, loss, grad norm)``.

        ``loss`` and ``grad_norm`` are those of ``params`` (before the step).
        """
        feed = {n: params[n] for n in self._param_inputs}
        feed.update(self._lr_feed)
        feed.update(self.batch.feed(self.fields))
        out = self.session.run(self.output_names, feed, self._run_options)
        new = dict(params)
        for name, i in zip(self.adapted, self._new_index, strict=True):
            new[name] = readonly(np.ascontiguousarray(out[i], dtype=np.float32))
        return new, float(out[self._loss_index]), float(out[self._gnorm_index])

    def _fill_batch(self, episodes: Episodes) -> str | None:
        """Pack ``episodes`` into the batch the graph reads; the refusal reason, or None."""
        if self.identification:
            rows = pack_transitions(episodes.obs, episodes.act, episodes.mask, self.batch)
            b = self.batch
            return transition_rejection(
                b.obs[:rows], b.act[:rows], b.next_obs[:rows], self._obs_std
            )
        rewards = episodes.rew[episodes.mask > 0]
        adv = self.advantages(episodes) if rewards_ok(self.safety, rewards) else None
        refused = batch_rejection(self.safety, rewards, adv)
        if refused is not None or adv is None:
            return refused or NONFINITE_ADVANTAGES
        with np.errstate(over="ignore"):  # beyond float32: inf, then a non-finite loss
            pack(episodes, adv, self.batch)
        return None

    def advantages(self, episodes: Episodes) -> np.ndarray | None:
        """Advantages of ``episodes`` with the bundle's settings (None if not finite)."""
        try:
            with np.errstate(all="ignore"):
                adv = self.settings.compute(episodes.obs, episodes.rew, episodes.mask)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            return None
        return adv if bool(np.all(np.isfinite(adv))) else None

    def run(
        self,
        start: Mapping[str, np.ndarray],
        episodes: Episodes,
        steps: int,
        stop: Stop | None = None,
    ) -> tuple[dict[str, np.ndarray] | None, AdaptResult]:
        """Adapt ``start`` on ``episodes`` with ``steps`` inner steps; None if rolled back.

        ``stop`` (default: a :class:`Stop` with ``safety.adapt_deadline_s``) ends the steps
        early with reason ``cancelled`` or ``deadline``.
        """
        t0 = time.perf_counter()
        nan = float("nan")
        stop = stop if stop is not None else Stop(self.safety.adapt_deadline_s)

        live = [episodes.rows]  # the batch's live rows once packed (transitions: one fewer each)

        def done(reason: str, steps: int = 0, **figures: float) -> AdaptResult:
            return finished(reason, episodes, live[0], t0, steps=steps, **figures)

        refused = self._fill_batch(episodes)
        live[0] = int(self.batch.mask.sum()) if self.identification else episodes.rows
        if refused is not None:
            return None, done(refused)
        current: dict[str, np.ndarray] = dict(start)
        scalars: list[float] = []
        loss_before = grad_norm = nan
        ran = 0
        for i in range(steps):
            halted = self._step_or_stop(current, stop)
            if isinstance(halted, str):
                return None, done(halted, steps=ran, loss_before=loss_before, grad_norm=grad_norm)
            current, loss, gnorm = halted
            ran += 1
            scalars += [loss, gnorm]
            if i == 0:
                loss_before, grad_norm = loss, gnorm
            if not (math.isfinite(loss) and math.isfinite(gnorm)):
                break
        loss_after: float | None = None
        if self.safety.reject_loss_increase and all(math.isfinite(s) for s in scalars):
            halted = self._step_or_stop(current, stop)
            if isinstance(halted, str):
                return None, done(halted, steps=ran, loss_before=loss_before, grad_norm=grad_norm)
            loss_after = halted[1]
        reason, norm = rejection(
            self.safety, start, current, self.adapted, scalars, loss_before, loss_after
        )
        figures = {
            "loss_before": loss_before,
            "loss_after": nan if loss_after is None else loss_after,
            "grad_norm": grad_norm,
            "update_norm": norm,
        }
        if reason is not None:
            return None, done(reason, steps=ran, **figures)
        return current, done(ACCEPTED, steps=ran, **figures)

    def _step_or_stop(
        self, params: Mapping[str, np.ndarray], stop: Stop
    ) -> tuple[dict[str, np.ndarray], float, float] | str:
        """:meth:`step`, or the reason to stop instead (also when a step was terminated)."""
        self._run_options = stop.run_options
        return run_or_stop(stop, lambda _: self.step(params))
