"""A policy that is the family's control law, told its behaviour parameters by a latent ``z``.

``pi(a | obs, z) = N(control_law(obs, theta(z)), exp(log_std))`` with
``theta(z) = low + (high - low) * sigmoid(dec(z))``: the scripted expert's own memoryless law
(:meth:`adapt_robot.sim.core.family.TaskFamily.control_law`), whose few behaviour parameters
``theta`` (for grasp: the squeeze and the centre-of-mass offset gripped above) are decoded from the
adapted latent ``z`` (the ``context`` parameter). Given the true ``theta`` it IS the expert; given a
fixed ``z`` it is one fixed behaviour (a robust controller); adaptation has to find ``z`` from the
robot's transitions. This is the classic adaptive-control split of a known control structure with
identified parameters (Astrom & Wittenmark, *Adaptive Control*, 1995), with the identification done
by the latent learner's exported gradient step instead of a hand-derived estimator.

The law is numpy (written once, in the family); :meth:`forward` calls it on detached arrays, so
no gradient flows through it (training never needs one: the decoder is fitted to the true
``theta``). Export traces the numpy law with TorchDynamo into ``policy.onnx``, as
``reward.onnx`` traces the reward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.meta.policy import MemorylessPolicy, ObsNormalizer, Params, PolicyConfig
from adapt_robot.meta.policy_protocol import State
from adapt_robot.sim.core.family import TaskFamily

DEC_PREFIX = "dec."
"""Name prefix of the decoder ``z -> theta`` parameters."""


class ControlLawPolicy(MemorylessPolicy):
    """The family's control law with ``theta`` decoded from the latent ``context``.

    The law reads raw observations; :meth:`normalize` (the frozen normaliser) is the
    identification model's input scaling.
    """

    kind: str = "control_law"
    action_squash: Literal["tanh", "clip"] = "clip"
    """The law's actions are only clipped to the action bounds (no tanh)."""
    numpy_forward: bool = True
    """Export traces :meth:`forward` in TorchDynamo's strict mode (its law is numpy)."""

    def __init__(self, family: TaskFamily[Any], cfg: PolicyConfig) -> None:
        if not family.law_params:
            raise ValueError(
                f"policy.type: control_law needs a family with a control law; {family.name!r} "
                "has none (its TaskFamily.law_params is empty): use gaussian_mlp"
            )
        if cfg.adapt != "context":
            raise ValueError(
                f"policy.adapt: a control_law policy adapts its latent; expected 'context', got "
                f"{cfg.adapt!r}"
            )
        self.family = family
        self.obs_dim = family.obs_spec.dim
        self.act_dim = family.action_spec.dim
        self.cfg = cfg
        self.normalizer = ObsNormalizer(self.obs_dim)
        low, high = family.law_bounds()
        self.low = tuple(float(x) for x in low)
        self.high = tuple(float(x) for x in high)
        """Bounds as Python floats (a traced graph must not capture tensor constants)."""
        self.sizes = (cfg.context_dim, *cfg.hidden, len(family.law_params))
        self.n_layers = len(self.sizes) - 1

    def init_params(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Params:
        """Decoder weights, ``log_std`` and a zero ``context`` (the middle of every range)."""
        params: Params = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound
            params[f"{DEC_PREFIX}l{i}.w"] = w
            params[f"{DEC_PREFIX}l{i}.b"] = torch.zeros(fan_out, dtype=dtype)
        params["log_std"] = torch.full((self.act_dim,), self.cfg.init_log_std, dtype=dtype)
        params["context"] = torch.zeros(self.cfg.context_dim, dtype=dtype)
        return params

    def adapted_names(self, params: Mapping[str, torch.Tensor]) -> list[str]:
        """Only the latent adapts."""
        del params
        return ["context"]

    def unit_theta(self, params: Mapping[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """``theta(z)`` scaled to [-1, 1] over the law's bounds ``[..., P]`` (differentiable)."""
        x = z
        for i in range(self.n_layers):
            x = x @ params[f"{DEC_PREFIX}l{i}.w"].transpose(-1, -2) + params[f"{DEC_PREFIX}l{i}.b"]
            if i < self.n_layers - 1:
                x = torch.tanh(x)
        return torch.tanh(x)

    def theta(self, params: Mapping[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """``theta(z)`` in the law's units ``[..., P]``."""
        u = self.unit_theta(params, z)
        parts = [
            lo + (hi - lo) * (u[..., i] + 1.0) / 2.0
            for i, (lo, hi) in enumerate(zip(self.low, self.high, strict=True))
        ]
        return torch.stack(parts, dim=-1)

    def to_unit(self, theta: np.ndarray) -> np.ndarray:
        """``theta`` in the law's units -> [-1, 1] (the decoder's target)."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        return np.clip(2.0 * (theta - low) / (high - low) - 1.0, -1.0, 1.0)

    def forward(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Action mean ``[B, A]`` (the law, not differentiable), log std and ``None``."""
        del state
        theta = self.theta(params, params["context"]).to(torch.float64)
        rows = obs.shape[0]
        o = obs.double().numpy()
        t = theta.expand(rows, theta.shape[-1]).numpy()
        mean = torch.from_numpy(np.asarray(self.family.control_law(o, t))).to(obs.dtype)
        return mean, params["log_std"], None

    def act_numpy(
        self, obs: np.ndarray, theta: np.ndarray, log_std: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Sampled actions ``[B, A]`` for ``obs [B, O]``, per-row ``theta [B, P]`` (rollouts)."""
        mean = self.family.control_law(obs, theta)
        return mean + np.exp(log_std) * rng.standard_normal(mean.shape)

    def state_dict(self) -> dict[str, Any]:
        """Non-parameter state (the normaliser)."""
        return {"normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.normalizer.load_state_dict(state["normalizer"])
