"""PEARL's probabilistic context encoder: transitions -> a Gaussian posterior over ``z``.

Rakelly et al. (ICML 2019, "Efficient Off-Policy Meta-Reinforcement Learning via Probabilistic
Context Variables") infer a task latent ``z`` from a set of transitions
``c_n = (obs, act, reward, next_obs)`` with a permutation-invariant encoder: a network maps each
transition on its own to a Gaussian factor ``N(mu_n, var_n)`` over ``z`` and the posterior is
their product. Here the unit prior ``N(0, I)`` is one more factor, so a context with no
transition gives the prior itself (what the robot acts with before it has seen anything)::

    x_n        = [norm(obs), clip(act), clip(reward_scale * r), clip(d)]    # d: normalised change
    mu_n, v_n  = f(x_n)[:Z], softplus(f(x_n)[Z:]) + VAR_MIN
    precision  = 1 + sum_n mask_n / v_n                                      # per dimension
    mean       = (sum_n mask_n mu_n / v_n) / precision
    var        = 1 / precision

The encoder's parameters are named ``enc.l{i}.w`` / ``enc.l{i}.b``; they travel in the bundle
beside the policy's and are exported as ``encoder.onnx`` (context -> mean and variance). The
robot packs its context rows with :func:`adapt_robot.runtime.buffer.pack_context`, the function
training uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from adapt_robot.meta.identification import (
    LatentPolicy,
    _check_latent_policy,
    _mlp,
    _mlp_init,
    _observed_change,
)
from adapt_robot.meta.policy import Params
from adapt_robot.runtime.buffer import ContextBatch, pack_context

ENC_PREFIX = "enc."
"""Name prefix of the context encoder's parameters in the params mapping."""
VAR_MIN = 1e-3
"""Floor of one factor's variance: no single transition can pin ``z`` down alone."""
REWARD_CLIP = 10.0
"""Scaled rewards enter the encoder clipped to +-this."""


def product_of_gaussians(
    mu: torch.Tensor, var: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior ``(mean, var) [..., Z]`` of the unit prior times the live factors.

    ``mu``, ``var`` ``[..., N, Z]`` (``var > 0``), ``mask [..., N]``. A padded row counts for
    nothing, whatever it holds (even NaN).
    """
    live = mask[..., None] > 0
    prec = torch.where(live, 1.0 / var, torch.zeros_like(var))
    weighted = torch.where(live, mu * prec, torch.zeros_like(mu))
    precision = 1.0 + prec.sum(-2)
    return weighted.sum(-2) / precision, 1.0 / precision


def gaussian_kl_to_prior(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, var) || N(0, I))`` summed over the last axis."""
    return 0.5 * (var + mean**2 - 1.0 - torch.log(var)).sum(-1)


class ContextEncoder:
    """The factor network and the posterior (see the module docstring).

    ``policy`` supplies the frozen observation normaliser and the latent width
    (``policy.cfg.context_dim``); ``hidden`` are the hidden widths of the factor network.
    """

    def __init__(self, policy: LatentPolicy, hidden: Sequence[int]) -> None:
        _check_latent_policy(policy)
        self.policy = policy
        self.z_dim = policy.cfg.context_dim
        self.reward_scale = float(policy.cfg.reward_scale)
        self.sizes = (2 * policy.obs_dim + policy.act_dim + 1, *hidden, 2 * self.z_dim)

    def init_params(self, generator: torch.Generator) -> Params:
        """Fresh ``enc.*`` parameters (a small output layer: factors start broad)."""
        return _mlp_init(self.sizes, ENC_PREFIX, generator, out_scale=0.1)

    def features(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        rew: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> torch.Tensor:
        """Input rows ``x [..., N, 2 O + A + 1]`` of transitions ``[..., N, ...]``."""
        r = torch.clamp(rew[..., None] * self.reward_scale, -REWARD_CLIP, REWARD_CLIP)
        return torch.cat(
            [
                self.policy.normalize(obs),
                torch.clamp(act, -1.0, 1.0),
                r,
                _observed_change(self.policy, obs, next_obs),
            ],
            dim=-1,
        )

    def factors(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        rew: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Gaussian factor per transition: ``(mu, var) [..., N, Z]``, ``var >= VAR_MIN``."""
        out = _mlp(params, ENC_PREFIX, self.features(obs, act, rew, next_obs))
        mu, raw = out[..., : self.z_dim], out[..., self.z_dim :]
        return mu, torch.nn.functional.softplus(raw) + VAR_MIN

    def posterior(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        rew: torch.Tensor,
        next_obs: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, var) [..., Z]`` of the live transitions (the prior with none)."""
        mu, var = self.factors(params, obs, act, rew, next_obs)
        return product_of_gaussians(mu, var, mask)

    def posterior_of_batch(
        self, params: Mapping[str, torch.Tensor], batch: ContextBatch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`posterior` of a packed context batch (numpy, as the robot fills it)."""
        t = {k: torch.from_numpy(v) for k, v in batch.feed().items()}
        return self.posterior(params, t["obs"], t["act"], t["rew"], t["next_obs"], t["mask"])


def episodes_posterior(
    encoder: ContextEncoder,
    params: Mapping[str, torch.Tensor],
    obs: np.ndarray,
    act: np.ndarray,
    rew: np.ndarray,
    mask: np.ndarray,
    capacity: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior of padded episodes ``[E, T, ...]`` packed as the robot packs them."""
    batch = ContextBatch.zeros(capacity, obs.shape[-1], act.shape[-1])
    pack_context(obs, act, rew, mask, batch)
    with torch.no_grad():
        return encoder.posterior_of_batch(params, batch)
