"""Reptile (Nichol et al. 2018) for RL.

Per iteration: sample ``M`` train tasks; from ``theta``, run ``train_steps`` inner steps per task,
each on fresh episodes collected with the task's current params (the robot's inner step,
:func:`adapt_robot.meta.inner.batched_adapt`); then move ``theta`` towards the mean adapted
params: ``theta += outer_lr * (mean_i phi_i - theta)``. No second derivatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.limits import MIN_RATE
from adapt_robot.meta.algorithms.base import Learner, check_finite
from adapt_robot.meta.inner import MAX_INNER_STEPS, batched_adapt, stack_batches
from adapt_robot.meta.policy import Params, detach
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.local import Sampler


@dataclass(frozen=True, kw_only=True)
class ReptileConfig:
    """Reptile settings."""

    name: Literal["reptile"] = setting("reptile", doc="Algorithm name.")
    inner_lr: float = setting(0.1, doc="Inner-loop SGD step size.", gt=MIN_RATE)
    inner_steps: int = setting(
        1, doc="Inner steps at evaluation / on the robot (1-3).", ge=1, le=MAX_INNER_STEPS
    )
    train_steps: int = setting(3, doc="Inner steps per task during meta-training.", ge=1)
    outer_lr: float = setting(0.5, doc="Interpolation step towards the adapted params.", gt=0, le=1)


class Reptile(Learner):
    """First-order meta-learning by interpolation towards adapted params."""

    name = "reptile"

    def __init__(self, policy: Policy, sampler: Sampler, cfg: ReptileConfig, seed: int) -> None:
        super().__init__(
            policy,
            sampler,
            inner_lr=cfg.inner_lr,
            inner_steps=cfg.inner_steps,
            learn_rates=False,
            seed=seed,
        )
        self.cfg = cfg

    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Adapt each task over several rollouts and interpolate."""
        tasks = self.train_tasks(rng)
        m = len(tasks)
        theta = detach(self.params)
        cur: Params = {k: v.expand(m, *v.shape) for k, v in theta.items()}
        lrs = self.lrs()
        returns, successes, steps = [], [], 0
        first = None
        for _ in range(self.cfg.train_steps):
            roll = self.sampler.sample(cur, tasks, rng, per_task=True)
            if first is None:
                first = roll
            steps += roll.env_steps
            returns.append(float(roll.episode_returns().mean()))
            successes.append(float(roll.success.mean()))
            batch = stack_batches([roll.task_batch(i) for i in range(m)])
            cur = detach(
                batched_adapt(self.policy, cur, lrs, batch, 1, create_graph=False, per_task=True)
            )
        mean = {k: v.mean(dim=0) for k, v in cur.items()}
        delta = torch.cat([(mean[k] - theta[k]).flatten() for k in theta])
        check_finite(delta, "reptile update")
        with torch.no_grad():
            for k, v in self.params.items():
                v.add_(self.cfg.outer_lr * (mean[k] - theta[k]))
        assert first is not None
        self.observe_normalizer(first)
        return {
            "env_steps": float(steps),
            "pre_return": returns[0],
            "post_return": returns[-1],
            "pre_success": successes[0],
            "post_success": successes[-1],
            "update_norm": float(delta.norm()),
        }
