"""Parity of the exported graphs: ONNX Runtime (graph optimisations on) vs torch / numpy.

The relative error of one output is ``max|onnx - ref| / max(max|ref|, FLOOR)`` (the infinity
norm of the difference over that of the reference; for the loss, a signed mean, the reference
scale is the mean magnitude of its terms, :func:`loss_scale`); a check reports the largest over
its outputs. References are the training code itself: the policy's :meth:`Policy.forward`,
:func:`adapt_robot.meta.inner.inner_step` (torch autograd), the context encoder's
:meth:`~adapt_robot.meta.context_encoder.ContextEncoder.posterior` and the family's numpy reward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from adapt_robot.meta.context_encoder import ContextEncoder
from adapt_robot.meta.inner import (
    InnerBatch,
    InnerLoss,
    PolicyGradientLoss,
    field,
    inner_step,
)
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.runtime.buffer import ContextBatch
from adapt_robot.runtime.bundle_format import ENCODER_OUTPUTS, LR_PREFIX, NEW_PREFIX
from adapt_robot.sim.core.family import TaskFamily

RTOL_FP32 = 1e-5
"""Largest relative error accepted for every fp32 graph."""
RTOL_FP16 = 2e-2
"""Largest relative error accepted for the fp16 policy."""
FLOOR = 1e-6
"""Smallest reference scale in the relative error (avoids dividing by an all-zero tensor)."""
CHAINED_STEPS = 3


class ParityError(RuntimeError):
    """An exported graph disagrees with the training code beyond tolerance."""


def session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with every graph optimisation on."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def rel_err(got: np.ndarray, ref: np.ndarray, scale: float = 0.0) -> float:
    """``max|got - ref| / max(max|ref|, scale, FLOOR)``; inf for a shape mismatch or NaN.

    ``scale`` is the magnitude of the terms a reduction summed: a loss is a signed mean, and
    when its terms nearly cancel, float32 rounding of the terms is large relative to the sum.
    """
    g, r = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if g.shape != r.shape or not np.all(np.isfinite(g)):
        return float("inf")
    denom = max(float(np.abs(r).max(initial=0.0)), scale, FLOOR)
    return float(np.abs(g - r).max(initial=0.0)) / denom


def loss_scale(policy: Policy, params: Mapping[str, torch.Tensor], batch: InnerBatch) -> float:
    """Mean magnitude of the inner loss's terms, ``sum(mask * |logp * adv|) / max(sum(mask), 1)``.

    The denominator of the loss's relative error (see :func:`rel_err`).
    """
    with torch.no_grad():
        logp = policy.log_prob(params, batch.obs, batch.act)
        terms = (batch.mask * (logp * batch.adv).abs()).sum()
        return float(terms / torch.clamp(batch.mask.sum(), min=1.0))


def random_batch(
    policy: Policy, params: Mapping[str, torch.Tensor], n: int, rng: np.random.Generator
) -> InnerBatch:
    """A fresh batch: obs around the normaliser's statistics, actions from the policy.

    About a fifth of the rows at the end are padding (``mask = 0``), as on the robot.
    """
    std = np.sqrt(policy.normalizer.var + 1e-8)
    obs = policy.normalizer.mean + std * rng.standard_normal((n, policy.obs_dim)) * 1.5
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    noise = torch.as_tensor(rng.standard_normal((n, policy.act_dim)), dtype=torch.float32)
    with torch.no_grad():
        mean, log_std, _ = policy.forward(params, obs_t)
        act = mean + torch.exp(log_std) * noise
    adv = torch.as_tensor(rng.standard_normal(n), dtype=torch.float32)
    mask = torch.ones(n)
    mask[n - n // 5 :] = 0.0
    step = std * rng.standard_normal((n, policy.obs_dim)) * 0.1
    nxt = torch.as_tensor(obs + step, dtype=torch.float32)
    return InnerBatch(obs=obs_t, act=act, adv=adv * mask, mask=mask, next_obs=nxt)


def _np(params: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy() for k, v in params.items()}


def check_policy(
    path: Path,
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    low: np.ndarray,
    high: np.ndarray,
    rng: np.random.Generator,
    rows: int = 64,
) -> float:
    """Max relative error of ``action_mean`` and ``action_log_std`` vs torch.

    A recurrent policy is run over a multi-episode trial from its initial state
    (:func:`_check_recurrent`), each side carrying its own state (ONNX feeds ``next_state``
    back as ``state``); ``next_state`` is compared too.
    """
    sess = session(path)
    lo, hi = torch.as_tensor(low), torch.as_tensor(high)
    flat = _np(params)
    if policy.state_dim == 0:
        batch = random_batch(policy, params, rows, rng)
        with torch.no_grad():
            mean, log_std, _ = policy.forward(params, batch.obs)
            mean = torch.clamp(mean, lo, hi)
        out = sess.run(None, {"obs": batch.obs.numpy(), **flat})
        return max(rel_err(out[0], mean.numpy()), rel_err(out[1], log_std.numpy()))
    return _check_recurrent(sess, policy, params, lo, hi, rng, rows)


RECURRENT_STEPS = 600
"""Steps a recurrent policy's export parity feeds the state back (a multi-episode trial)."""
RECURRENT_EPISODE = 100
"""Episode length of that trial (``episode_start`` is 1 every this many steps)."""


def _check_recurrent(
    sess: ort.InferenceSession,
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    lo: torch.Tensor,
    hi: torch.Tensor,
    rng: np.random.Generator,
    rows: int,
) -> float:
    """Largest error of the mean, log std and next state over a long chain of steps.

    :data:`RECURRENT_STEPS` steps, each side carrying its own state.

    Fresh feedback every step: observations around the normaliser's statistics, the previous
    step's clipped mean as ``prev_action``, random rewards, ``episode_start`` every
    :data:`RECURRENT_EPISODE` steps (the state is not reset there, as on the robot).
    """
    from adapt_robot.meta.recurrent_policy import trial_input

    flat = _np(params)
    rows = min(rows, 8)
    state = policy.initial_state((rows,), torch.float32)
    if state is None:
        return float("inf")
    onnx_state = state.numpy()
    n_obs = len(policy.normalizer.mean)
    std = np.sqrt(policy.normalizer.var + 1e-8)
    prev_a = np.zeros((rows, policy.act_dim), dtype=np.float32)
    worst = 0.0
    for t in range(RECURRENT_STEPS):
        obs = (policy.normalizer.mean + std * rng.standard_normal((rows, n_obs))).astype(np.float32)
        start = np.full((rows, 1), float(t % RECURRENT_EPISODE == 0), dtype=np.float32)
        if start[0, 0]:
            prev_a[:] = 0.0
        reward = (rng.standard_normal((rows, 1)) * (1 - start)).astype(np.float32)
        feed = {"obs": obs, "prev_action": prev_a, "prev_reward": reward, "episode_start": start}
        x = trial_input(*(torch.as_tensor(v) for v in feed.values()))
        with torch.no_grad():
            mean, log_std, state = policy.forward(params, x, state)
            mean = torch.clamp(mean, lo, hi)
        if state is None:
            return float("inf")
        out = sess.run(None, {**feed, "state": onnx_state, **flat})
        worst = max(
            worst,
            rel_err(out[0], mean.numpy()),
            rel_err(out[1], log_std.numpy()),
            rel_err(out[2], state.numpy()),
        )
        onnx_state, prev_a = out[2], mean.numpy().astype(np.float32)
    return worst


def check_adapt_step(
    path: Path,
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    capacity: int,
    rng: np.random.Generator,
    steps: int = 1,
    loss_fn: InnerLoss | None = None,
) -> float:
    """Max relative error over ``steps`` chained steps (new params, loss, grad norm each step).

    The ONNX chain feeds its own outputs back; the torch chain is
    :func:`adapt_robot.meta.inner.inner_step` (autograd) with the same inner loss (the policy
    gradient unless ``loss_fn`` is given), from the same start.

    Later steps' loss and gradient norm are measured against the first step's scale as well as
    their own: a step that lands on the loss's minimum (a supervised step with rate 1 does)
    leaves a gradient that is float32 cancellation residue, whose error relative to itself says
    nothing about the graph. New parameters are always measured against themselves.
    """
    sess = session(path)
    out_names = [o.name for o in sess.get_outputs()]
    batch = random_batch(policy, params, capacity, rng)
    fields = PolicyGradientLoss.fields if loss_fn is None else loss_fn.fields
    feed_batch = {f: field(batch, f).numpy() for f in fields}
    lr_feed = {LR_PREFIX + k: v.detach().float().numpy() for k, v in lrs.items()}
    onnx_params = _np(params)
    torch_params = {k: v.detach().float() for k, v in params.items()}
    torch_lrs = {k: v.detach().float() for k, v in lrs.items()}
    worst = 0.0
    start = torch_params
    first_loss = first_gnorm = 0.0
    for _ in range(steps):
        res = dict(
            zip(out_names, sess.run(None, {**onnx_params, **lr_feed, **feed_batch}), strict=True)
        )
        torch_params, loss, gnorm = inner_step(
            policy, torch_params, torch_lrs, batch, create_graph=False, loss_fn=loss_fn
        )
        scale = loss_scale(policy, start, batch) if loss_fn is None else float(abs(loss))
        first_loss = first_loss or scale
        first_gnorm = first_gnorm or float(gnorm)
        start = torch_params = {k: v.detach() for k, v in torch_params.items()}
        worst = max(
            worst,
            rel_err(res["loss"], loss.numpy(), max(scale, first_loss)),
            rel_err(res["grad_norm"], gnorm.numpy(), first_gnorm),
        )
        for k in lrs:
            worst = max(worst, rel_err(res[NEW_PREFIX + k], torch_params[k].numpy()))
            onnx_params[k] = res[NEW_PREFIX + k]
    return worst


ENCODER_CONTEXTS = ("full", "padded", "scattered", "nan_padding")
"""The random contexts of :func:`check_encoder` (besides the empty one)."""


def random_context(
    encoder: ContextEncoder, capacity: int, rng: np.random.Generator, kind: str
) -> ContextBatch:
    """A fresh context of ``capacity`` rows: obs around the normaliser's statistics.

    ``kind``: ``full`` (every row live), ``padded`` (about a fifth of the rows at the end are
    padding, zeros as the robot packs them), ``scattered`` (padding anywhere, holding garbage),
    ``nan_padding`` (as ``padded``, the padding rows NaN: they must count for nothing) or
    ``empty`` (no live row: the posterior is the prior).
    """
    policy = encoder.policy
    o, a = policy.obs_dim, policy.act_dim
    std = np.sqrt(policy.normalizer.var + 1e-8)
    batch = ContextBatch.zeros(capacity, o, a)
    batch.obs[:] = policy.normalizer.mean + std * rng.standard_normal((capacity, o)) * 1.5
    batch.next_obs[:] = batch.obs + std * rng.standard_normal((capacity, o)) * 0.1
    batch.act[:] = rng.uniform(-1.2, 1.2, (capacity, a))
    batch.rew[:] = rng.standard_normal(capacity) * 3.0
    live = np.ones(capacity, dtype=bool)
    if kind in ("padded", "nan_padding"):
        live[capacity - max(1, capacity // 5) :] = False
    elif kind == "scattered":
        live = rng.uniform(size=capacity) < 0.7
    elif kind == "empty":
        live[:] = False
    batch.mask[:] = live
    fill = {"padded": 0.0, "nan_padding": np.nan}.get(kind)  # else: padding keeps its garbage
    if fill is not None:
        for x in (batch.obs, batch.act, batch.rew, batch.next_obs):
            x[~live] = fill
    return batch


def check_encoder(
    path: Path,
    encoder: ContextEncoder,
    params: Mapping[str, torch.Tensor],
    capacity: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """``(error, prior error)`` of ``encoder.onnx`` vs :meth:`ContextEncoder.posterior`.

    ``error``: the largest relative error of ``z_mean`` and ``z_var`` over the
    :data:`ENCODER_CONTEXTS`, against torch on the same context with its padding rows zeroed
    (so a padding row that leaks into the graph's posterior, NaN or not, is caught).
    ``prior error``: the largest ``|onnx - prior|`` for an empty context, whose posterior must
    be the prior ``N(0, I)`` itself (mean 0, variance 1), as torch's is.
    """
    sess = session(path)
    enc = {k: v.detach().float() for k, v in params.items()}
    feed_params = _np(enc)
    worst = 0.0
    for kind in ENCODER_CONTEXTS:
        batch = random_context(encoder, capacity, rng, kind)
        clean = ContextBatch(
            **{
                f: np.where(_rows(batch.mask, v), v, 0.0).astype(np.float32)
                for f, v in batch.feed().items()
            }
        )
        with torch.no_grad():
            mean, var = encoder.posterior_of_batch(enc, clean)
        out = sess.run(list(ENCODER_OUTPUTS), {**feed_params, **batch.feed()})
        worst = max(worst, rel_err(out[0], mean.numpy()), rel_err(out[1], var.numpy()))
    empty = random_context(encoder, capacity, rng, "empty")
    out = sess.run(list(ENCODER_OUTPUTS), {**feed_params, **empty.feed()})
    with torch.no_grad():
        mean, var = encoder.posterior_of_batch(enc, empty)
    prior = [np.zeros(encoder.z_dim), np.ones(encoder.z_dim)]
    errors = [
        float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want), initial=0.0))
        for got, want in zip([*out, mean.numpy(), var.numpy()], prior * 2, strict=True)
    ]
    return worst, max(e if math.isfinite(e) else math.inf for e in errors)


def _rows(mask: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``mask [N] > 0`` broadcast against ``value [N, ...]``."""
    return (mask > 0).reshape(mask.shape + (1,) * (value.ndim - 1))


def reward_inputs(
    family: TaskFamily[Any], rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``(obs, action, next_obs)`` float32, uniform within the spaces' bounds.

    Unbounded entries are drawn in [-5, 5]; uniform draws cross every threshold of the
    reward and success (contact, lift, timer, door angle) with probability near one.
    """

    def draw(low: np.ndarray, high: np.ndarray) -> np.ndarray:
        lo = np.where(np.isfinite(low), low, -5.0)
        hi = np.where(np.isfinite(high), high, 5.0)
        return rng.uniform(lo, hi, size=(rows, lo.shape[0])).astype(np.float32)

    o, a = family.obs_spec, family.action_spec
    return draw(o.low, o.high), draw(a.low, a.high), draw(o.low, o.high)


def check_reward(
    path: Path,
    family: TaskFamily[Any],
    obs: np.ndarray,
    action: np.ndarray,
    next_obs: np.ndarray,
) -> tuple[float, int]:
    """Relative error of ``reward`` and the number of ``success`` mismatches vs numpy.

    The reference is the family's numpy functions on the same float32 values in float64.
    """
    ctx = np.zeros(0)
    o, a, n = (np.asarray(x, dtype=np.float32) for x in (obs, action, next_obs))
    reward, success = session(path).run(None, {"obs": o, "action": a, "next_obs": n})
    o64, a64, n64 = (x.astype(np.float64) for x in (o, a, n))
    ref_r = np.asarray(family.reward(o64, a64, n64, ctx), dtype=np.float64)
    ref_s = np.asarray(family.success(n64, ctx), dtype=bool)
    return rel_err(reward, ref_r), int(np.sum(np.asarray(success, dtype=bool) != ref_s))


def require(figures: Mapping[str, float], limits: Mapping[str, float]) -> None:
    """Raise :class:`ParityError` listing every figure above its limit."""
    bad = [
        f"{k}: {figures[k]:.3g} > {limits[k]:.3g}" for k in limits if not figures[k] <= limits[k]
    ]
    if bad:
        raise ParityError(
            "ONNX Runtime disagrees with the training code: "
            + "; ".join(bad)
            + ". The bundle was not written."
        )


def names_of(seq: Sequence[Any]) -> list[str]:
    """Names of ONNX Runtime inputs or outputs."""
    return [x.name for x in seq]
