"""MAML for RL (Finn et al. 2017) with a ProMP-style outer step (Rothfuss et al. 2019).

Per iteration: sample ``M`` train tasks; collect pre-update episodes with the meta-params
``theta``; adapt per task with the shared inner loss (:mod:`adapt_robot.meta.inner`); collect
post-update episodes with the adapted params; then take ``outer_steps`` Adam steps on

    mean_i [ PPO-clip(pi_{phi_i(theta)} vs pi_{phi_i(theta_old)}) on post episodes
             + kl_coef * KL(pi_{phi_i(theta_old)} || pi_{phi_i(theta)}) ]

where ``phi_i(theta)`` is recomputed from ``theta`` each step through the inner step(s) with
``create_graph=True`` (exact second-order gradient through the inner update, for the fixed
pre-update batch), or without it for ``first_order``. With ``lvc`` the inner loss used for
the meta-gradient is ProMP's low-variance-curvature form (same inner step, adds the
dependence of the pre-update sampling distribution on ``theta``). With ``meta_sgd`` the
per-parameter inner rates are meta-learned too (Li et al. 2017).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.limits import MIN_RATE
from adapt_robot.meta.algorithms.base import (
    Learner,
    check_finite,
    clipped_surrogate,
    masked_mean,
)
from adapt_robot.meta.inner import (
    MAX_INNER_STEPS,
    InnerBatch,
    batched_adapt,
    positive_rates,
    stack_batches,
)
from adapt_robot.meta.policy import Params, detach
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.local import Sampler


@dataclass(frozen=True, kw_only=True)
class MAMLConfig:
    """MAML / ProMP settings."""

    name: Literal["maml"] = setting("maml", doc="Algorithm name.")
    inner_lr: float = setting(
        0.1, doc="Inner-loop SGD step size (initial value for Meta-SGD).", gt=MIN_RATE
    )
    inner_steps: int = setting(
        1, doc="Inner steps on the task's batch (1-3).", ge=1, le=MAX_INNER_STEPS
    )
    meta_sgd: bool = setting(False, doc="Meta-learn per-parameter inner rates (Meta-SGD).")
    first_order: bool = setting(False, doc="First-order MAML (no gradient through the step).")
    lvc: bool = setting(
        False, doc="ProMP low-variance-curvature inner loss for the meta-gradient (same step)."
    )
    outer_lr: float = setting(1e-3, doc="Adam step size of the outer update.", gt=0)
    outer_steps: int = setting(5, doc="Outer Adam steps per iteration on the same data.", ge=1)
    clip: float = setting(0.2, doc="PPO ratio clip of the outer surrogate.", gt=0, le=1)
    kl_coef: float = setting(
        0.5, doc="Weight of the KL trust-region penalty (initial value).", ge=0
    )
    kl_target: float | None = setting(
        None,
        doc="Adapt kl_coef each iteration towards this mean KL (halve below target/1.5, double "
        "above target*1.5, as in ProMP); null keeps kl_coef fixed.",
        gt=0,
    )
    max_grad_norm: float = setting(1.0, doc="Clip the outer gradient norm to this.", gt=0)


class MAML(Learner):
    """MAML with a clipped, KL-penalised outer surrogate."""

    name = "maml"

    def __init__(self, policy: Policy, sampler: Sampler, cfg: MAMLConfig, seed: int) -> None:
        super().__init__(
            policy,
            sampler,
            inner_lr=cfg.inner_lr,
            inner_steps=cfg.inner_steps,
            learn_rates=cfg.meta_sgd,
            seed=seed,
        )
        self.cfg = cfg
        trainable = list(self.params.values())
        if cfg.meta_sgd:
            trainable += list(self.raw_lrs.values())
        self.optimizer = torch.optim.Adam(trainable, lr=cfg.outer_lr)
        self.kl_coef = cfg.kl_coef

    def meta_loss(
        self,
        params: Params,
        raw_lrs: Params,
        pre: InnerBatch,
        post: InnerBatch,
        old_adapted: Params,
        old_logp: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outer objective (mean over tasks) and its mean KL; differentiable in params, raw_lrs.

        ``pre``/``post`` are stacked task batches ``[M, N, ...]`` (:func:`stack_batches`),
        ``old_adapted`` the sampling params ``[M, ...]`` and ``old_logp [M, N]`` their
        log-probabilities of the post-update actions.
        """
        lrs = positive_rates(raw_lrs)
        phi = batched_adapt(
            self.policy,
            params,
            lrs,
            pre,
            self.cfg.inner_steps,
            create_graph=not self.cfg.first_order,
            lvc=self.cfg.lvc,
        )
        logp = torch.func.vmap(self.policy.log_prob)(phi, post.obs, post.act)
        adv, mask = post.adv, post.mask
        surr = clipped_surrogate(logp, old_logp, adv, mask, self.cfg.clip)
        kl = masked_mean(torch.func.vmap(self.policy.kl)(old_adapted, phi, post.obs), mask)
        return surr + self.kl_coef * kl, kl.detach()

    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Sample, adapt, resample, and take the outer steps."""
        tasks = self.train_tasks(rng)
        pre = self.sampler.sample(detach(self.params), tasks, rng)
        old_adapted = self.adapt_each(pre, self.params)
        post = self.sampler.sample(old_adapted, tasks, rng, per_task=True)
        pre_b = stack_batches([pre.task_batch(i) for i in range(len(tasks))])
        post_b = stack_batches([post.task_batch(i) for i in range(len(tasks))])
        with torch.no_grad():
            old_logp = torch.func.vmap(self.policy.log_prob)(old_adapted, post_b.obs, post_b.act)
        assert self.optimizer is not None
        losses, kls = [], []
        for _ in range(self.cfg.outer_steps):
            loss, kl = self.meta_loss(
                self.params, self.raw_lrs, pre_b, post_b, old_adapted, old_logp
            )
            check_finite(loss, "maml outer loss")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            groups = [p for g in self.optimizer.param_groups for p in g["params"]]
            norm = torch.nn.utils.clip_grad_norm_(groups, self.cfg.max_grad_norm)
            check_finite(norm, "maml outer gradient norm")
            self.optimizer.step()
            losses.append(loss.item())
            kls.append(kl.item())
        self.observe_normalizer(pre)
        kl_coef_used = self.kl_coef
        self.kl_coef = adapt_kl_coef(self.kl_coef, kls[-1], self.cfg.kl_target)
        lr_values = torch.cat([v.flatten() for v in self.lrs().values()])
        return {
            "env_steps": float(pre.env_steps + post.env_steps),
            "pre_return": float(pre.episode_returns().mean()),
            "post_return": float(post.episode_returns().mean()),
            "pre_success": float(pre.success.mean()),
            "post_success": float(post.success.mean()),
            "outer_loss": losses[-1],
            "kl": kls[-1],
            "kl_coef": kl_coef_used,
            "inner_lr_min": float(lr_values.min()),
            "inner_lr_mean": float(lr_values.mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        """Base state plus the adaptive KL coefficient."""
        return {**super().state_dict(), "kl_coef": self.kl_coef}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the base state and the KL coefficient (older checkpoints: the config's)."""
        super().load_state_dict(state)
        self.kl_coef = float(state.get("kl_coef", self.cfg.kl_coef))


def adapt_kl_coef(coef: float, kl: float, target: float | None) -> float:
    """ProMP's rule: halve ``coef`` when ``kl < target / 1.5``, double it above ``1.5 target``."""
    if target is None:
        return coef
    if kl < target / 1.5:
        return coef / 2.0
    if kl > target * 1.5:
        return coef * 2.0
    return coef
