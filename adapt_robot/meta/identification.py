"""Supervised on-device adaptation: a latent ``z`` identified from the robot's own transitions.

The latent learner (:mod:`adapt_robot.meta.algorithms.latent`) conditions the policy on a small
latent ``z`` (the ``context`` parameter of :class:`~adapt_robot.meta.policy.GaussianMLPPolicy`,
concatenated to the normalised observation). On the robot ``z`` is found by a few gradient steps
on the **identification loss** of this module, the prediction error of a learned dynamics model
``f(obs, act, z)`` on the transitions seen so far: no reward, no privileged state (GrBAL,
Nagabandi et al. ICLR 2019; MIER, Mendonca et al. 2020; CAVIA, Zintgraf et al. ICML 2019)::

    d_hat = f([norm(obs), clip(act), z])                    # predicted normalised change
    d     = clip((next_obs - obs) / std, -DELTA_CLIP, DELTA_CLIP)
    loss  = sum(mask * mean_j (d_hat - d)_j ** 2) / max(sum(mask), 1)

``f``'s parameters are named ``id.l{i}.w`` / ``id.l{i}.b`` and travel in the bundle beside the
policy's; only ``context`` is adapted. The normaliser is the policy's (frozen at export).

The model can instead be a **transition encoder** (:class:`TransitionEncoder`, RMA's adaptation
module, Kumar et al. RSS 2021, as a permutation-invariant pool over transitions like PEARL's and
a conditional neural process's): a network ``phi`` maps the transitions straight to a latent
estimate, and the loss is the squared distance to it::

    h_t  = tanh(g([norm(obs_t), clip(act_t), d_t]))          # one feature row per transition
    phi  = tanh(head([masked mean_t h_t, masked max_t h_t]))
    loss = 0.5 * |z - phi|^2                                 # 0 with no transition

One inner step with rate 1 lands exactly on ``phi``: the robot's "history -> z" module, with no
gradient through any model, runs through the same step, export, acceptance rule and safety
checks as the dynamics model (one adaptation contract).

In training, the true hidden parameters of each task are encoded into the latent target
``mu(hidden)`` by :class:`HiddenEncoder` (privileged information, simulation only; RMA, Kumar
et al. RSS 2021).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from adapt_robot.meta.inner import InnerBatch, LossKind
from adapt_robot.meta.policy import ObsNormalizer, Params, PolicyConfig
from adapt_robot.runtime.buffer import Batch, pack_transitions
from adapt_robot.sim.core.params import CHOICES, RANGE, TaskParams

ID_PREFIX = "id."
"""Name prefix of the identification model's parameters in the params mapping."""
DELTA_CLIP = 10.0
"""Normalised observation changes are clipped to +-this (a teleport cannot dominate the loss)."""
LOG_SCALE_RATIO = 20.0
"""A hidden range whose high/low ratio exceeds this is encoded on a log scale."""


def _mlp_init(
    sizes: Sequence[int], prefix: str, generator: torch.Generator, out_scale: float
) -> Params:
    """Scaled-uniform weights (torch Linear default), zero biases, a small output layer."""
    params: Params = {}
    last = len(sizes) - 2
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        bound = 1.0 / math.sqrt(fan_in)
        scale = out_scale if i == last else 1.0
        w = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound * scale
        params[f"{prefix}l{i}.w"] = w
        params[f"{prefix}l{i}.b"] = torch.zeros(fan_out)
    return params


def _mlp(params: Mapping[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    """Tanh MLP over ``params`` named ``{prefix}l{i}.w/b`` (linear output)."""
    n = sum(1 for k in params if k.startswith(prefix) and k.endswith(".w"))
    for i in range(n):
        x = x @ params[f"{prefix}l{i}.w"].transpose(-1, -2) + params[f"{prefix}l{i}.b"]
        if i < n - 1:
            x = torch.tanh(x)
    return x


class LatentPolicy(Protocol):
    """What the identification model needs of a latent-conditioned policy."""

    obs_dim: int
    act_dim: int
    cfg: PolicyConfig
    normalizer: ObsNormalizer

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy's frozen observation normaliser."""
        ...


class TransitionModel(Protocol):
    """What the identification loss needs of a model: a fit of ``z`` to one task's rows."""

    def init_params(self, generator: torch.Generator) -> Params:
        """Fresh ``id.*`` parameters."""
        ...

    def fit(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of latent ``z [Z]`` on rows ``[N, ...]`` with live ``mask [N]`` (scalar)."""
        ...


def _observed_change(
    policy: LatentPolicy, obs: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Observed normalised change, clipped to ``+-DELTA_CLIP``; 0 on dead dimensions.

    A dimension that never varied in training (:meth:`ObsNormalizer.live`) is not used: the
    model cannot have learned how it moves.
    """
    norm = policy.normalizer
    std = torch.as_tensor(np.sqrt(norm.var + 1e-8), dtype=obs.dtype)
    live = torch.as_tensor(norm.live(), dtype=obs.dtype)
    return torch.clamp((next_obs - obs) / std, -DELTA_CLIP, DELTA_CLIP) * live


def _check_latent_policy(policy: LatentPolicy) -> None:
    if policy.cfg.adapt != "context":
        raise ValueError(
            f"policy.adapt: the latent learner adapts the context, expected 'context', got "
            f"{policy.cfg.adapt!r}"
        )


class IdentificationModel:
    """``f(obs, act, z)``: the normalised observation change, predicted from the latent."""

    def __init__(self, policy: LatentPolicy, hidden: Sequence[int]) -> None:
        _check_latent_policy(policy)
        self.policy = policy
        self.z_dim = policy.cfg.context_dim
        self.sizes = (policy.obs_dim + policy.act_dim + self.z_dim, *hidden, policy.obs_dim)

    def init_params(self, generator: torch.Generator) -> Params:
        """Fresh ``id.*`` parameters."""
        return _mlp_init(self.sizes, ID_PREFIX, generator, out_scale=0.1)

    def predict(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        z: torch.Tensor,
    ) -> torch.Tensor:
        """Predicted normalised change ``[..., O]`` for ``obs [..., O]``, ``act [..., A]``."""
        x = self.policy.normalize(obs)
        a = torch.clamp(act, -1.0, 1.0)
        zz = z.expand(*x.shape[:-1], self.z_dim)
        return _mlp(params, ID_PREFIX, torch.cat([x, a, zz], dim=-1))

    def target(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Observed normalised change (:func:`_observed_change`), what ``f`` predicts."""
        return _observed_change(self.policy, obs, next_obs)

    def row_errors(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        z: torch.Tensor,
    ) -> torch.Tensor:
        """Mean squared prediction error per row ``[...]``."""
        err = self.predict(params, obs, act, z) - self.target(obs, next_obs)
        return (err**2).mean(-1)

    def fit(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor,
    ) -> torch.Tensor:
        """Masked mean prediction error of ``f(., ., z)`` over the live rows."""
        rows = self.row_errors(params, obs, act, next_obs, z)
        return (mask * rows).sum() / torch.clamp(mask.sum(), min=1.0)


class TransitionEncoder:
    """``phi(transitions)``: a latent estimate pooled over the rows (see the module docstring).

    Parameters ``id.g.*`` (the per-transition features ``g``, tanh-bounded so that padding the
    max with -1 never wins over a live row) and ``id.h.*`` (the head); ``hidden`` are the
    widths of ``g``.
    """

    G_PREFIX: ClassVar[str] = ID_PREFIX + "g."
    H_PREFIX: ClassVar[str] = ID_PREFIX + "h."

    def __init__(self, policy: LatentPolicy, hidden: Sequence[int]) -> None:
        _check_latent_policy(policy)
        if not hidden:
            raise ValueError("model_hidden: the transition encoder needs at least one layer")
        self.policy = policy
        self.z_dim = policy.cfg.context_dim
        self.g_sizes = (2 * policy.obs_dim + policy.act_dim, *hidden)
        self.h_sizes = (2 * hidden[-1], self.z_dim)

    def init_params(self, generator: torch.Generator) -> Params:
        """Fresh ``id.g.*`` and ``id.h.*`` parameters."""
        params = _mlp_init(self.g_sizes, self.G_PREFIX, generator, out_scale=1.0)
        params.update(_mlp_init(self.h_sizes, self.H_PREFIX, generator, out_scale=0.1))
        return params

    def features(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> torch.Tensor:
        """Feature rows ``h [..., H]`` in (-1, 1), one per transition."""
        x = torch.cat(
            [
                self.policy.normalize(obs),
                torch.clamp(act, -1.0, 1.0),
                _observed_change(self.policy, obs, next_obs),
            ],
            dim=-1,
        )
        return torch.tanh(_mlp(params, self.G_PREFIX, x))

    def estimate(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``phi [Z]`` in (-1, 1) of rows ``[N, ...]`` (only the live ones count)."""
        h = self.features(params, obs, act, next_obs)
        live = mask[..., None] > 0
        kept = torch.where(live, h, torch.zeros_like(h))  # a padded row never leaks, even NaN
        mean = kept.sum(-2) / torch.clamp(mask.sum(-1)[..., None], min=1.0)
        top = torch.where(live, h, -torch.ones_like(h)).amax(-2)
        return torch.tanh(_mlp(params, self.H_PREFIX, torch.cat([mean, top], dim=-1)))

    def fit(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor,
    ) -> torch.Tensor:
        """``0.5 |z - phi|^2``, 0 when no row is live (the latent then stays where it is)."""
        phi = self.estimate(params, obs, act, next_obs, mask)
        seen = (mask.sum() > 0).to(z.dtype)
        return seen * 0.5 * ((z - phi) ** 2).sum()


def transition_model(
    kind: str, policy: LatentPolicy, hidden: Sequence[int]
) -> IdentificationModel | TransitionEncoder:
    """The model of ``algo.identifier``: ``dynamics`` (``f``) or ``encoder`` (``phi``)."""
    if kind == "dynamics":
        return IdentificationModel(policy, hidden)
    if kind == "encoder":
        return TransitionEncoder(policy, hidden)
    raise ValueError(f"identifier: expected 'dynamics' or 'encoder', got {kind!r}")


class IdentificationLoss:
    """The inner loss of the latent learner (:class:`adapt_robot.meta.inner.InnerLoss`)."""

    kind: ClassVar[LossKind] = "identification"
    fields: ClassVar[tuple[str, ...]] = ("obs", "act", "next_obs", "mask")

    def __init__(self, model: TransitionModel) -> None:
        self.model = model

    def __call__(self, params: Mapping[str, torch.Tensor], batch: InnerBatch) -> torch.Tensor:
        """The model's fit of ``params['context']`` to ``batch`` (:meth:`TransitionModel.fit`)."""
        if batch.next_obs is None:
            raise ValueError("identification loss: the batch has no next_obs")
        return self.model.fit(
            params, batch.obs, batch.act, batch.next_obs, batch.mask, params["context"]
        )


def model_fit(
    model: TransitionModel,
    params: Mapping[str, torch.Tensor],
    z: torch.Tensor,
    batch: InnerBatch,
) -> torch.Tensor:
    """Mean identification loss of stacked task batches ``[U, N, ...]`` at latents ``z [U, Z]``.

    The model's fit at the true latents (training only; differentiable in ``params`` and ``z``).
    """

    def one(
        zi: torch.Tensor, o: torch.Tensor, a: torch.Tensor, n: torch.Tensor, m: torch.Tensor
    ) -> torch.Tensor:
        return model.fit(params, o, a, n, m, zi)

    if batch.next_obs is None:
        raise ValueError("model fit: the batch has no next_obs")
    out: torch.Tensor = torch.func.vmap(one)(
        z, batch.obs, batch.act, batch.next_obs, batch.mask
    ).mean()
    return out


def transition_batch(
    obs: np.ndarray, act: np.ndarray, mask: np.ndarray, capacity: int
) -> InnerBatch:
    """Transitions of padded episodes ``[E, T, ...]`` as a torch batch of ``capacity`` rows.

    The rows are those the robot builds from its buffer
    (:func:`adapt_robot.runtime.buffer.pack_transitions`, the same function).
    """
    out = Batch.zeros(capacity, obs.shape[-1], act.shape[-1])
    pack_transitions(obs, act, mask, out)
    return InnerBatch(
        obs=torch.from_numpy(out.obs),
        act=torch.from_numpy(out.act),
        adv=torch.from_numpy(out.adv),
        mask=torch.from_numpy(out.mask),
        next_obs=torch.from_numpy(out.next_obs),
    )


def hidden_features(task: TaskParams) -> np.ndarray:
    """The hidden parameters of ``task`` as a feature vector (privileged, training only).

    Choices (and booleans) are one-hot; numbers are scaled to [-1, 1] over their declared range,
    on a log scale where the range spans more than :data:`LOG_SCALE_RATIO`.
    """
    out: list[float] = []
    for f in dataclasses.fields(task):
        if not f.metadata.get("hidden"):
            continue
        value: Any = getattr(task, f.name)
        if CHOICES in f.metadata:
            out += [1.0 if value == c else 0.0 for c in f.metadata[CHOICES]]
            continue
        lo, hi = f.metadata.get(RANGE, (None, None))
        x = float(value)
        if lo is None or hi is None or hi <= lo:
            out.append(x)
        elif lo > 0 and hi / lo > LOG_SCALE_RATIO:
            out.append(2.0 * (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo)) - 1.0)
        else:
            out.append(2.0 * (x - lo) / (hi - lo) - 1.0)
    return np.asarray(out, dtype=np.float32)


class HiddenEncoder:
    """``mu(hidden)``: the latent target of a task from its true hidden parameters (``enc.*``)."""

    PREFIX: ClassVar[str] = "enc."

    def __init__(self, feature_dim: int, z_dim: int, hidden: Sequence[int]) -> None:
        self.sizes = (feature_dim, *hidden, z_dim)

    def init_params(self, generator: torch.Generator) -> Params:
        """Fresh ``enc.*`` parameters."""
        return _mlp_init(self.sizes, self.PREFIX, generator, out_scale=1.0)

    def __call__(self, params: Mapping[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
        """Latents ``[..., z]`` (bounded by tanh) of ``features [..., F]``."""
        return torch.tanh(_mlp(params, self.PREFIX, features))
