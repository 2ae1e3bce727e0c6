"""Domain-randomised PPO: the non-meta baseline on the same task distribution and budget.

Each iteration samples ``M`` train tasks and ``K`` episodes per task (the same env-step cost as
one MAML sampling pass) and runs PPO epochs over all of them (Schulman et al. 2017, no value
network: advantages come from the same per-task linear baseline). Evaluated like the
meta-learners: without adaptation, and after plain policy-gradient fine-tuning with the shared
inner step at ``inner_lr`` (fixed, not learned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.limits import MIN_RATE
from adapt_robot.meta.algorithms.base import Learner, check_finite, clipped_surrogate
from adapt_robot.meta.inner import MAX_INNER_STEPS
from adapt_robot.meta.policy import detach
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.local import Sampler


@dataclass(frozen=True, kw_only=True)
class PPODRConfig:
    """PPO with domain randomisation settings."""

    name: Literal["ppo_dr"] = setting("ppo_dr", doc="Algorithm name.")
    lr: float = setting(3e-4, doc="Adam step size.", gt=0)
    epochs: int = setting(5, doc="PPO epochs per iteration.", ge=1)
    minibatches: int = setting(4, doc="Minibatches per epoch.", ge=1)
    clip: float = setting(0.2, doc="PPO ratio clip.", gt=0, le=1)
    max_grad_norm: float = setting(1.0, doc="Gradient norm clip.", gt=0)
    inner_lr: float = setting(
        0.1, doc="Step size of the plain-PG fine-tuning at evaluation.", gt=MIN_RATE
    )
    inner_steps: int = setting(
        1, doc="Fine-tuning steps at evaluation (1-3).", ge=1, le=MAX_INNER_STEPS
    )


class PPODR(Learner):
    """One policy for all tasks."""

    name = "ppo_dr"

    def __init__(self, policy: Policy, sampler: Sampler, cfg: PPODRConfig, seed: int) -> None:
        super().__init__(
            policy,
            sampler,
            inner_lr=cfg.inner_lr,
            inner_steps=cfg.inner_steps,
            learn_rates=False,
            seed=seed,
        )
        self.cfg = cfg
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=cfg.lr)

    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Sample all tasks, then PPO epochs over shuffled minibatches of live steps."""
        tasks = self.train_tasks(rng)
        roll = self.sampler.sample(detach(self.params), tasks, rng)
        flat = roll.batch(slice(None))
        live = torch.nonzero(flat.mask > 0).flatten()
        with torch.no_grad():
            old_logp = self.policy.log_prob(self.params, flat.obs, flat.act)
        assert self.optimizer is not None
        loss = torch.zeros(())
        for _ in range(self.cfg.epochs):
            perm = live[torch.as_tensor(rng.permutation(live.numel()))]
            for idx in torch.tensor_split(perm, self.cfg.minibatches):
                if idx.numel() == 0:
                    continue
                logp = self.policy.log_prob(self.params, flat.obs[idx], flat.act[idx])
                loss = clipped_surrogate(
                    logp, old_logp[idx], flat.adv[idx], flat.mask[idx], self.cfg.clip
                )
                check_finite(loss, "ppo_dr loss")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(
                    list(self.params.values()), self.cfg.max_grad_norm
                )
                check_finite(norm, "ppo_dr gradient norm")
                self.optimizer.step()
        self.observe_normalizer(roll)
        return {
            "env_steps": float(roll.env_steps),
            "pre_return": float(roll.episode_returns().mean()),
            "pre_success": float(roll.success.mean()),
            "loss": float(loss.item()),
        }
