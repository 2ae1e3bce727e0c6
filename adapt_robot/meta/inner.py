"""THE inner-loop loss and step: exactly what the robot runs (export traces these functions).

The loss is pluggable (:class:`InnerLoss`); every loss reads a fixed-capacity batch with a
``mask [N]`` (0 on padding). The policy-gradient loss (MAML, Meta-SGD, FO-MAML, Reptile,
PPO-DR fine-tuning) reads ``obs [N, O]``, ``act [N, A]``, ``adv [N]``::

    loss = -(mask * log pi(act | obs) * adv).sum() / max(mask.sum(), 1)

and the supervised identification loss of the latent learner
(:mod:`adapt_robot.meta.identification`) reads ``obs``, ``act`` and ``next_obs [N, O]``.

A step is plain SGD on the adapted subset with positive learning rates, scalar or
per-parameter (Meta-SGD, Li et al. 2017), written once in :func:`sgd_update` and used by
training, evaluation and export (``adapt_step.onnx``). Learned rates are stored as raw tensors
and made positive with softplus (:func:`positive_rates`), so no optimiser step can make them
negative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import torch
import torch.nn.functional as F

from adapt_robot.limits import MAX_INNER_STEPS as MAX_INNER_STEPS  # declared there, once
from adapt_robot.limits import MIN_RATE as MIN_RATE
from adapt_robot.meta.policy_protocol import Params, Policy


@dataclass(frozen=True)
class InnerBatch:
    """One task's adaptation data, padded to a fixed capacity ``N`` (``mask`` 0 on padding).

    ``obs [N, O]``, ``act [N, A]``, ``adv [N]``, ``mask [N]``; or the same with a leading task
    axis ``[M, N, ...]`` (:func:`stack_batches`).
    """

    obs: torch.Tensor
    act: torch.Tensor
    adv: torch.Tensor
    mask: torch.Tensor
    next_obs: torch.Tensor | None = None
    """Observation after each action ``[N, O]`` (the identification loss only)."""

    def to(self, dtype: torch.dtype) -> InnerBatch:
        """The same batch in ``dtype``."""
        return InnerBatch(
            obs=self.obs.to(dtype),
            act=self.act.to(dtype),
            adv=self.adv.to(dtype),
            mask=self.mask.to(dtype),
            next_obs=None if self.next_obs is None else self.next_obs.to(dtype),
        )

    def __post_init__(self) -> None:
        rows = tuple(self.obs.shape[:-1])
        names = ("act", "adv", "mask") + (("next_obs",) if self.next_obs is not None else ())
        for name in names:
            t = getattr(self, name)
            got = tuple(t.shape[:-1]) if name in ("act", "next_obs") else tuple(t.shape)
            if got != rows:
                raise ValueError(
                    f"InnerBatch.{name}: expected leading shape {rows} (as obs), got "
                    f"{tuple(t.shape)}"
                )


def field(batch: InnerBatch, name: str) -> torch.Tensor:
    """Batch tensor ``name`` (one of :data:`BATCH_FIELDS`), or a ValueError if it is absent."""
    if name not in BATCH_FIELDS:
        raise ValueError(f"batch field: expected one of {list(BATCH_FIELDS)}, got {name!r}")
    t = getattr(batch, name)
    if t is None:
        raise ValueError(f"InnerBatch.{name}: this inner loss needs it, and the batch has none")
    out: torch.Tensor = t
    return out


LossKind = Literal["policy_gradient", "identification"]
"""The inner losses a bundle may carry (``inner_loop.loss``)."""
BATCH_FIELDS = ("obs", "act", "adv", "next_obs", "mask")
"""Every tensor an inner batch may carry (a loss declares the ones it reads)."""


class InnerLoss(Protocol):
    """An inner-loop loss: a scalar of the params on one task's fixed-capacity batch.

    ``kind`` is written into the bundle manifest (``inner_loop.loss``) and tells the runtime
    which batch to build; ``fields`` are the batch tensors the loss reads, in the order they
    are inputs of ``adapt_step.onnx``.
    """

    kind: ClassVar[LossKind]
    fields: ClassVar[tuple[str, ...]]

    def __call__(self, params: Mapping[str, torch.Tensor], batch: InnerBatch) -> torch.Tensor:
        """The loss (scalar, differentiable in ``params``)."""
        ...


class PolicyGradientLoss:
    """The policy-gradient surrogate of :func:`inner_loss` as an :class:`InnerLoss`."""

    kind: ClassVar[LossKind] = "policy_gradient"
    fields: ClassVar[tuple[str, ...]] = ("obs", "act", "adv", "mask")

    def __init__(self, policy: Policy, *, lvc: bool = False) -> None:
        self.policy = policy
        self.lvc = lvc

    def __call__(self, params: Mapping[str, torch.Tensor], batch: InnerBatch) -> torch.Tensor:
        """:func:`inner_loss` of ``params`` on ``batch``."""
        return inner_loss(self.policy, params, batch, lvc=self.lvc)


def _loss_of(policy: Policy, loss: InnerLoss | None, lvc: bool = False) -> InnerLoss:
    """``loss``, or the policy-gradient loss of ``policy`` when None."""
    return PolicyGradientLoss(policy, lvc=lvc) if loss is None else loss


def sgd_update(
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor | None],
) -> tuple[Params, torch.Tensor]:
    """THE update ``p - lr * g`` on the parameters named in ``lrs``; returns (new, grad norm).

    Parameters not in ``lrs`` are passed through; a missing gradient (``None``) counts as zero.
    The gradient norm is the L2 norm over every adapted parameter (detached; per task when the
    tensors have a leading task axis, summed otherwise).
    """
    new: Params = {}
    sq: torch.Tensor | None = None
    for k, v in params.items():
        g = grads.get(k)
        if k not in lrs:
            new[k] = v
            continue
        if g is None:
            g = torch.zeros_like(v)
        part = (g.detach() ** 2).sum()
        sq = part if sq is None else sq + part
        new[k] = v - lrs[k] * g
    norm = torch.zeros(()) if sq is None else torch.sqrt(sq)
    return new, norm


def inner_loss(
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    *,
    lvc: bool = False,
) -> torch.Tensor:
    """Policy-gradient surrogate ``-(mask * logp * adv).sum() / mask.sum()`` (scalar).

    ``lvc`` (training only) replaces ``logp`` by ``exp(logp - stop_grad(logp))``: the same
    gradient (so the same inner step), but its Hessian gains the score outer-product term,
    ProMP's low-variance curvature estimate of the sampling distribution's dependence.
    """
    logp = policy.log_prob(params, batch.obs, batch.act)
    if lvc:
        logp = torch.exp(logp - logp.detach())
    denom = torch.clamp(batch.mask.sum(), min=1.0)
    return -(batch.mask * logp * batch.adv).sum() / denom


def raw_rate(lr: float) -> float:
    """The raw value whose :func:`positive_rates` is ``lr`` (inverse softplus)."""
    if not lr > MIN_RATE:
        raise ValueError(f"inner_lr: expected a value > {MIN_RATE}, got {lr}")
    x = lr - MIN_RATE
    return x + math.log(-math.expm1(-x))


def init_raw_rates(
    params: Mapping[str, torch.Tensor], names: list[str], lr: float, per_parameter: bool
) -> Params:
    """Raw rates for ``names``: one scalar each, or one per entry (Meta-SGD)."""
    value = raw_rate(lr)
    out: Params = {}
    for n in names:
        p = params[n]
        shape = p.shape if per_parameter else ()
        out[n] = torch.full(shape, value, dtype=p.dtype)
    return out


def positive_rates(raw: Mapping[str, torch.Tensor]) -> Params:
    """Learning rates ``softplus(raw) + MIN_RATE > 0`` (differentiable: Meta-SGD learns them)."""
    return {k: F.softplus(v) + MIN_RATE for k, v in raw.items()}


def inner_step(
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    *,
    create_graph: bool,
    loss_fn: InnerLoss | None = None,
) -> tuple[Params, torch.Tensor, torch.Tensor]:
    """One SGD step on the parameters named in ``lrs``; returns ``(new_params, loss, grad_norm)``.

    ``lrs`` are positive rates (already through :func:`positive_rates`), scalars or shaped like
    their parameter. With ``create_graph`` the new params stay differentiable w.r.t. ``params``
    and ``lrs`` through the gradient (second-order MAML); without it the gradient is a
    constant and the new params depend on ``params`` and ``lrs`` only through ``p - lr * g``
    (first-order MAML). Pass detached params to get detached results. There is no
    data-dependent branch (export traces this function): callers check results for NaN.
    """
    names = list(lrs)
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"inner_step: lrs name parameters not in params: {missing}")
    if create_graph:
        at = dict(params)
    else:  # gradient only: evaluate on leaf copies, so params need not require grad
        at = {k: v.detach().requires_grad_(k in lrs) for k, v in params.items()}
    loss = _loss_of(policy, loss_fn)(at, batch)
    grads = torch.autograd.grad(
        loss, [at[n] for n in names], create_graph=create_graph, allow_unused=True
    )
    # First order (create_graph=False): g is a constant, but new params still depend on
    # params and lrs through the identity, as FO-MAML and first-order Meta-SGD need.
    new, norm = sgd_update(params, lrs, dict(zip(names, grads, strict=True)))
    loss = loss.detach() if not create_graph else loss
    return new, loss, norm.to(loss.dtype)


def adapt(
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    steps: int,
    *,
    create_graph: bool,
    loss_fn: InnerLoss | None = None,
) -> Params:
    """``steps`` (1-3) inner steps on the same batch, as the robot does."""
    if not 1 <= steps <= MAX_INNER_STEPS:
        raise ValueError(f"inner_steps: expected 1..{MAX_INNER_STEPS}, got {steps}")
    out: Params = dict(params)
    for _ in range(steps):
        out, _, _ = inner_step(policy, out, lrs, batch, create_graph=create_graph, loss_fn=loss_fn)
    return out


def stack_batches(batches: list[InnerBatch]) -> InnerBatch:
    """Stack per-task batches (same capacity ``N``) along a leading task axis ``[M, N, ...]``."""
    nxt = [b.next_obs for b in batches if b.next_obs is not None]
    return InnerBatch(
        obs=torch.stack([b.obs for b in batches]),
        act=torch.stack([b.act for b in batches]),
        adv=torch.stack([b.adv for b in batches]),
        mask=torch.stack([b.mask for b in batches]),
        next_obs=torch.stack(nxt) if len(nxt) == len(batches) else None,
    )


def batched_inner_loss(
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    *,
    lvc: bool = False,
    loss_fn: InnerLoss | None = None,
) -> torch.Tensor:
    """The inner loss of ``M`` tasks at once, ``[M]``.

    Params ``[M, ...]``, batch from :func:`stack_batches`; ``torch.func.vmap`` of the very
    same function the robot runs (the policy-gradient loss unless ``loss_fn`` is given).
    """
    fn = _loss_of(policy, loss_fn, lvc)
    nxt = batch.next_obs if batch.next_obs is not None else batch.obs

    def one(
        p: Params,
        obs: torch.Tensor,
        act: torch.Tensor,
        adv: torch.Tensor,
        mask: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> torch.Tensor:
        b = InnerBatch(obs=obs, act=act, adv=adv, mask=mask, next_obs=next_obs)
        return fn(p, b)

    out: torch.Tensor = torch.func.vmap(one)(
        dict(params), batch.obs, batch.act, batch.adv, batch.mask, nxt
    )
    return out


def batched_adapt(
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    steps: int,
    *,
    create_graph: bool,
    per_task: bool = False,
    lvc: bool = False,
    loss_fn: InnerLoss | None = None,
) -> Params:
    """:func:`adapt` for ``M`` tasks from shared ``params``; returns params ``[M, ...]``.

    With ``per_task`` the params already have a leading task axis (each task starts from its
    own params).

    Task ``i``'s result equals ``adapt(policy, params, lrs, batch_i, steps)`` (a test checks
    it); the tasks' losses are independent, so one backward of their sum gives every
    per-task gradient.
    """
    if not 1 <= steps <= MAX_INNER_STEPS:
        raise ValueError(f"inner_steps: expected 1..{MAX_INNER_STEPS}, got {steps}")
    m = batch.obs.shape[0]
    if per_task:
        cur: Params = dict(params)
    else:
        cur = {k: v.unsqueeze(0).expand(m, *v.shape) for k, v in params.items()}
    names = list(lrs)
    for _ in range(steps):
        if create_graph:
            at = cur
        else:
            at = {k: v.detach().requires_grad_(k in lrs) for k, v in cur.items()}
        loss = batched_inner_loss(policy, at, batch, lvc=lvc, loss_fn=loss_fn).sum()
        grads = torch.autograd.grad(
            loss, [at[n] for n in names], create_graph=create_graph, allow_unused=True
        )
        cur, _ = sgd_update(cur, lrs, dict(zip(names, grads, strict=True)))
    return cur
