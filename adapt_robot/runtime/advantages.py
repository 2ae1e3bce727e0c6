"""Per-task advantages from padded episodes: the one function the trainer and the robot share.

Training (:meth:`adapt_robot.meta.samplers.local.Sampler.advantages`) calls
:func:`task_advantages` once per task with the sampler's settings; the on-device adapter calls it
once per adaptation batch with the settings the bundle carries (``manifest.inner_loop``, read
by :meth:`AdvantageSettings.from_inner_loop`). Both therefore feed the inner loss exactly the
same numbers for the same episodes. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.runtime.returns import (
    discounted_returns,
    gae,
    linear_baseline,
    normalize_advantages,
)

BASELINES = ("linear", "none")
"""Accepted values of ``baseline``."""


def task_advantages(
    obs: np.ndarray,
    rew: np.ndarray,
    mask: np.ndarray,
    *,
    gamma: float,
    gae_lambda: float,
    baseline: str,
    baseline_reg: float,
    normalize: bool,
) -> np.ndarray:
    """Advantages ``[E, T]`` (float64, 0 on padding) of one task's padded episodes.

    ``obs [E, T, O]``, ``rew [E, T]``, ``mask [E, T]`` (1 on live steps). With
    ``baseline="linear"`` a ridge-fitted feature baseline of the discounted returns is fit to
    these episodes (per task), then GAE(``gamma``, ``gae_lambda``) against it; with ``"none"``
    the values are 0. ``normalize`` shifts and scales the live advantages to mean 0, std 1.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline: expected one of {list(BASELINES)}, got {baseline!r}")
    if baseline == "linear":
        ret = discounted_returns(rew, mask, gamma)
        values = linear_baseline(obs, ret, mask, baseline_reg)
    else:
        values = np.zeros_like(rew)
    adv = gae(rew, values, mask, gamma, gae_lambda)
    return normalize_advantages(adv, mask) if normalize else adv


@dataclass(frozen=True, kw_only=True)
class AdvantageSettings:
    """The keyword arguments of :func:`task_advantages`, as one value."""

    gamma: float
    """Discount factor."""
    gae_lambda: float
    """GAE lambda (1 = returns minus baseline)."""
    baseline: str
    """``linear`` or ``none``."""
    baseline_reg: float
    """Ridge regularisation of the linear baseline fit."""
    normalize: bool
    """Normalise the live advantages to mean 0, std 1."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma: expected a value in [0, 1], got {self.gamma}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda: expected a value in [0, 1], got {self.gae_lambda}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline: expected one of {list(BASELINES)}, got {self.baseline!r}")
        if self.baseline_reg < 0:
            raise ValueError(f"baseline_reg: expected a value >= 0, got {self.baseline_reg}")

    @classmethod
    def from_inner_loop(cls, inner_loop: Any) -> AdvantageSettings:
        """Settings of a bundle's ``manifest.inner_loop`` (or a training ``SamplerConfig``).

        Reads ``gamma``, ``gae_lambda``, ``baseline``, ``baseline_reg`` and ``normalize_adv``.
        """
        return cls(
            gamma=float(inner_loop.gamma),
            gae_lambda=float(inner_loop.gae_lambda),
            baseline=str(inner_loop.baseline),
            baseline_reg=float(inner_loop.baseline_reg),
            normalize=bool(inner_loop.normalize_adv),
        )

    def compute(self, obs: np.ndarray, rew: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """:func:`task_advantages` with these settings."""
        return task_advantages(
            obs,
            rew,
            mask,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            baseline=self.baseline,
            baseline_reg=self.baseline_reg,
            normalize=self.normalize,
        )
