"""THE inner-loop loss and step: exactly what the robot runs (export traces these functions).

Loss on a fixed-capacity batch ``obs [N, O]``, ``act [N, A]``, ``adv [N]``, ``mask [N]``::

    loss = -(mask * log pi(act | obs) * adv).sum() / max(mask.sum(), 1)

and a step is plain SGD on the adapted subset with positive learning rates, scalar or
per-parameter (Meta-SGD, Li et al. 2017). Learned rates are stored as raw tensors and made
positive with softplus (:func:`positive_rates`), so no optimiser step can make them negative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from adapt_robot.meta.policy import GaussianMLPPolicy, Params

MAX_INNER_STEPS = 3
MIN_RATE = 1e-6
"""Floor added to every learned rate, so a rate stays > 0 even where softplus underflows."""


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

    def __post_init__(self) -> None:
        rows = tuple(self.obs.shape[:-1])
        for name in ("act", "adv", "mask"):
            t = getattr(self, name)
            got = tuple(t.shape[:-1]) if name == "act" else tuple(t.shape)
            if got != rows:
                raise ValueError(
                    f"InnerBatch.{name}: expected leading shape {rows} (as obs), got "
                    f"{tuple(t.shape)}"
                )


def inner_loss(
    policy: GaussianMLPPolicy,
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
    policy: GaussianMLPPolicy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    *,
    create_graph: bool,
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
    loss = inner_loss(policy, at, batch)
    grads = torch.autograd.grad(
        loss, [at[n] for n in names], create_graph=create_graph, allow_unused=True
    )
    new: Params = {}
    sq = torch.zeros((), dtype=loss.dtype)
    g_by_name = dict(zip(names, grads, strict=True))
    for k, v in params.items():
        if k not in g_by_name:
            new[k] = v
            continue
        g = g_by_name[k]
        if g is None:
            g = torch.zeros_like(v)
        sq = sq + (g.detach() ** 2).sum()
        # First order (create_graph=False): g is a constant, but new params still depend on
        # params and lrs through the identity, as FO-MAML and first-order Meta-SGD need.
        new[k] = v - lrs[k] * g
    loss = loss.detach() if not create_graph else loss
    return new, loss, torch.sqrt(sq)


def adapt(
    policy: GaussianMLPPolicy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    steps: int,
    *,
    create_graph: bool,
) -> Params:
    """``steps`` (1-3) inner steps on the same batch, as the robot does."""
    if not 1 <= steps <= MAX_INNER_STEPS:
        raise ValueError(f"inner_steps: expected 1..{MAX_INNER_STEPS}, got {steps}")
    out: Params = dict(params)
    for _ in range(steps):
        out, _, _ = inner_step(policy, out, lrs, batch, create_graph=create_graph)
    return out


def stack_batches(batches: list[InnerBatch]) -> InnerBatch:
    """Stack per-task batches (same capacity ``N``) along a leading task axis ``[M, N, ...]``."""
    return InnerBatch(
        obs=torch.stack([b.obs for b in batches]),
        act=torch.stack([b.act for b in batches]),
        adv=torch.stack([b.adv for b in batches]),
        mask=torch.stack([b.mask for b in batches]),
    )


def batched_inner_loss(
    policy: GaussianMLPPolicy,
    params: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    *,
    lvc: bool = False,
) -> torch.Tensor:
    """:func:`inner_loss` of ``M`` tasks at once, ``[M]``.

    Params ``[M, ...]``, batch from :func:`stack_batches`; ``torch.func.vmap`` of the very
    same function the robot runs.
    """

    def one(
        p: Params, obs: torch.Tensor, act: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return inner_loss(policy, p, InnerBatch(obs=obs, act=act, adv=adv, mask=mask), lvc=lvc)

    out: torch.Tensor = torch.func.vmap(one)(
        dict(params), batch.obs, batch.act, batch.adv, batch.mask
    )
    return out


def batched_adapt(
    policy: GaussianMLPPolicy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    batch: InnerBatch,
    steps: int,
    *,
    create_graph: bool,
    per_task: bool = False,
    lvc: bool = False,
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
        loss = batched_inner_loss(policy, at, batch, lvc=lvc).sum()
        grads = torch.autograd.grad(
            loss, [at[n] for n in names], create_graph=create_graph, allow_unused=True
        )
        nxt = dict(cur)
        for n, g in zip(names, grads, strict=True):
            if g is not None:
                nxt[n] = cur[n] - lrs[n] * g
        cur = nxt
    return cur
