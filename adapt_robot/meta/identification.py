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


class IdentificationModel:
    """``f(obs, act, z)``: the normalised observation change, predicted from the latent."""

    def __init__(self, policy: LatentPolicy, hidden: Sequence[int]) -> None:
        if policy.cfg.adapt != "context":
            raise ValueError(
                f"policy.adapt: the latent learner adapts the context, expected 'context', got "
                f"{policy.cfg.adapt!r}"
            )
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
        """Observed normalised change, clipped to ``+-DELTA_CLIP``; 0 on dead dimensions.

        A dimension that never varied in training (:meth:`ObsNormalizer.live`) is not
        predicted: the model cannot have learned how it moves.
        """
        norm = self.policy.normalizer
        std = torch.as_tensor(np.sqrt(norm.var + 1e-8), dtype=obs.dtype)
        live = torch.as_tensor(norm.live(), dtype=obs.dtype)
        return torch.clamp((next_obs - obs) / std, -DELTA_CLIP, DELTA_CLIP) * live

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


class IdentificationLoss:
    """The inner loss of the latent learner (:class:`adapt_robot.meta.inner.InnerLoss`)."""

    kind: ClassVar[LossKind] = "identification"
    fields: ClassVar[tuple[str, ...]] = ("obs", "act", "next_obs", "mask")

    def __init__(self, model: IdentificationModel) -> None:
        self.model = model

    def __call__(self, params: Mapping[str, torch.Tensor], batch: InnerBatch) -> torch.Tensor:
        """Masked mean prediction error of ``f(., ., params['context'])`` on ``batch``."""
        if batch.next_obs is None:
            raise ValueError("identification loss: the batch has no next_obs")
        rows = self.model.row_errors(
            params, batch.obs, batch.act, batch.next_obs, params["context"]
        )
        denom = torch.clamp(batch.mask.sum(), min=1.0)
        return (batch.mask * rows).sum() / denom


def model_fit(
    model: IdentificationModel,
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
        rows = model.row_errors(params, o, a, n, zi)
        return (m * rows).sum() / torch.clamp(m.sum(), min=1.0)

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
