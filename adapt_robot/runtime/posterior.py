"""One posterior update (PEARL), off the control thread: context, encoder pass, safety verdict.

A posterior bundle (``manifest.memory.kind: posterior``) adapts by inference, not by a gradient
step: ``encoder.onnx`` maps the robot's transitions with their rewards to a Gaussian posterior
over the latent ``z`` (Rakelly et al. ICML 2019), and the policy acts with its mean as its
``context`` parameter (``memory.state_input``). :class:`PosteriorUpdate` is the counterpart of
:class:`~adapt_robot.runtime.adaptation.InnerLoop` with the same :meth:`PosteriorUpdate.run`
contract. Given padded episodes and the start (meta-)parameters it

1. packs the transitions ``(obs_t, act_t, rew_t, obs_t+1)`` into a preallocated
   :class:`~adapt_robot.runtime.buffer.ContextBatch` of ``inner_loop.capacity`` rows with
   :func:`~adapt_robot.runtime.buffer.pack_context` (the function training uses; padding has
   ``mask = 0``);
2. refuses a batch with a reward that is NaN/inf or beyond ``max_abs_reward``
   (:func:`~adapt_robot.runtime.safety.rewards_ok`: ``bad_reward``), then non-finite or
   implausible transitions (:func:`~adapt_robot.runtime.safety.transition_rejection`:
   ``bad_transitions``), as the identification step does;
3. runs ``encoder.onnx`` once, stopped by the adaptation's
   :class:`~adapt_robot.runtime.adaptation.Stop` (deadline, ``close()``);
4. builds a new parameter dict with ``context := z_mean`` (float32, read-only) and applies the
   one acceptance rule :func:`~adapt_robot.runtime.safety.rejection` with no loss: a
   non-finite or too large change of ``z`` (beyond ``max_update_norm`` from the bundle's
   ``context``, the prior mean) is rolled back.

Its :class:`~adapt_robot.runtime.adaptation.AdaptResult` has ``steps`` 1, no loss or gradient
figures (NaN) and the mean posterior variance in ``posterior_var``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import onnxruntime as ort

from adapt_robot.runtime.adaptation import (
    ACCEPTED,
    AdaptResult,
    Stop,
    finished,
    readonly,
    run_or_stop,
)
from adapt_robot.runtime.buffer import ContextBatch, Episodes, pack_context
from adapt_robot.runtime.bundle_format import ENCODER_ONNX, ENCODER_OUTPUTS, Manifest
from adapt_robot.runtime.safety import (
    BAD_REWARD,
    SafetyConfig,
    rejection,
    rewards_ok,
    transition_rejection,
    transition_scale,
)


class PosteriorUpdate:
    """Runs ``encoder.onnx`` on the robot's context and judges the result (one thread at a time)."""

    def __init__(
        self, session: ort.InferenceSession, manifest: Manifest, safety: SafetyConfig
    ) -> None:
        mem = manifest.memory
        if not mem.posterior:
            raise ValueError(
                f"PosteriorUpdate: the bundle's memory.kind is {mem.kind}, not posterior"
            )
        self.session = session
        self.safety = safety
        self.state_input = mem.state_input
        """The parameter the posterior sets (``context``)."""
        self.z_dim = mem.state_dim
        self.encoder_names = manifest.encoder_names()
        self.output_names = list(ENCODER_OUTPUTS)
        il = manifest.inner_loop
        self.batch = ContextBatch.zeros(il.capacity, manifest.observation.dim, manifest.action.dim)
        norm = manifest.normalizer
        self._obs_std = transition_scale(np.asarray(norm.var, dtype=np.float64), norm.eps)

    def posterior(
        self, params: Mapping[str, np.ndarray], run_options: ort.RunOptions | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(z_mean, z_var) [Z]`` of the current batch under the ``enc.*`` of ``params``."""
        feed = {n: params[n] for n in self.encoder_names}
        feed.update(self.batch.feed())
        mean, var = self.session.run(self.output_names, feed, run_options)
        for name, out in zip(self.output_names, (mean, var), strict=True):
            if np.shape(out) != (self.z_dim,):
                raise ValueError(
                    f"{ENCODER_ONNX}: output {name} has shape {list(np.shape(out))}, the "
                    f"manifest's memory.state_dim is {self.z_dim}; the graph does not compute "
                    "what it declares: re-export the bundle"
                )
        return mean, var

    def _fill_batch(self, episodes: Episodes) -> str | None:
        """Pack ``episodes`` into the context the graph reads; the refusal reason, or None."""
        with np.errstate(over="ignore"):  # beyond float32: refused below (or clipped inside)
            rows = pack_context(episodes.obs, episodes.act, episodes.rew, episodes.mask, self.batch)
        if not rewards_ok(self.safety, episodes.rew[episodes.mask > 0]):
            return BAD_REWARD
        b = self.batch
        return transition_rejection(b.obs[:rows], b.act[:rows], b.next_obs[:rows], self._obs_std)

    def run(
        self,
        start: Mapping[str, np.ndarray],
        episodes: Episodes,
        steps: int,
        stop: Stop | None = None,
    ) -> tuple[dict[str, np.ndarray] | None, AdaptResult]:
        """``start`` with ``context`` the posterior mean of ``episodes``; None if rolled back.

        ``steps`` is the mode's (1: a posterior is one encoder pass; the adapter refuses any
        other). ``stop`` (default: a :class:`Stop` with ``safety.adapt_deadline_s``) ends the
        pass with reason ``cancelled`` or ``deadline``.
        """
        t0 = time.perf_counter()
        stop = stop if stop is not None else Stop(self.safety.adapt_deadline_s)
        refused = self._fill_batch(episodes)
        rows = int(self.batch.mask.sum())
        if refused is not None:
            return None, finished(refused, episodes, rows, t0)
        out = run_or_stop(stop, lambda options: self.posterior(start, options))
        if isinstance(out, str):
            return None, finished(out, episodes, rows, t0)
        mean, var = out
        new = dict(start)
        new[self.state_input] = readonly(np.array(mean, dtype=np.float32))
        with np.errstate(all="ignore"):
            spread = float(np.mean(var, dtype=np.float64))
        names = [self.state_input]
        reason, norm = rejection(self.safety, start, new, names, [], math.nan, None)
        result = finished(
            reason or ACCEPTED, episodes, rows, t0, steps=1, update_norm=norm, posterior_var=spread
        )
        return (None if reason is not None else new), result
