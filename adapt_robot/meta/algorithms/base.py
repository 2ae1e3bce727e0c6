"""What every learner shares: meta-parameters, inner learning rates, state, evaluation.

A learner owns the meta-parameters ``params`` (leaf tensors), the raw inner learning rates
(:func:`adapt_robot.meta.inner.positive_rates` makes them positive) and its optimiser. One
:meth:`Learner.iteration` samples tasks, collects rollouts and updates; it returns metrics and
raises :class:`TrainingDiverged` (before touching any parameter) when a loss is not finite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from adapt_robot.errors import AdaptRobotError
from adapt_robot.meta.inner import (
    InnerBatch,
    InnerLoss,
    PolicyGradientLoss,
    batched_adapt,
    init_raw_rates,
    positive_rates,
    stack_batches,
)
from adapt_robot.meta.policy import GaussianMLPPolicy, Params, PolicyConfig, detach
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.local import Rollouts, Sampler
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams


class TrainingDiverged(AdaptRobotError, FloatingPointError):
    """A loss or update became non-finite; no parameter was changed by the failing step."""


def check_finite(value: torch.Tensor, what: str) -> None:
    """Raise :class:`TrainingDiverged` naming ``what`` if ``value`` is not finite."""
    if not bool(torch.isfinite(value).all()):
        raise TrainingDiverged(
            f"{what} is not finite ({value.detach().flatten()[:4].tolist()}); the update was "
            "not applied. Lower the learning rates (algo.outer_lr, algo.inner_lr) or the "
            "trust-region step and resume from the last checkpoint."
        )


class Learner(ABC):
    """Base of MAML, Reptile and PPO-DR."""

    name: ClassVar[str]
    warm_startable: ClassVar[bool] = True
    """Whether ``warm_start`` (cloning the experts into the policy's parameters) applies."""

    def __init__(
        self,
        policy: Policy,
        sampler: Sampler,
        *,
        inner_lr: float,
        inner_steps: int,
        learn_rates: bool,
        seed: int,
    ) -> None:
        self.policy = policy
        self.sampler = sampler
        self.inner_steps = inner_steps
        gen = torch.Generator().manual_seed(seed)
        self.params: Params = {
            k: v.requires_grad_(True) for k, v in policy.init_params(gen).items()
        }
        self.adapted = policy.adapted_names(self.params)
        self.raw_lrs: Params = {
            k: v.requires_grad_(learn_rates)
            for k, v in init_raw_rates(self.params, self.adapted, inner_lr, learn_rates).items()
        }
        self.optimizer: torch.optim.Optimizer | None = None

    @abstractmethod
    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """One training iteration; returns metrics including ``env_steps``."""

    def train_tasks(self, rng: np.random.Generator) -> list[TaskParams]:
        """A fresh batch of training tasks."""
        family = self.sampler.family
        return list(family.sample_tasks(rng, self.sampler.cfg.tasks_per_iter, "train"))

    @classmethod
    def make_policy(cls, family: TaskFamily[Any], cfg: PolicyConfig) -> Policy:
        """The policy this learner trains (the Gaussian MLP unless told otherwise).

        With ``policy.module`` set, the user's network as a
        :class:`~adapt_robot.meta.module_policy.ModulePolicy`; a learner may override this.
        """
        obs_dim, act_dim = family.obs_spec.dim, family.action_spec.dim
        if cfg.module:
            from adapt_robot.meta.module_policy import from_config

            return from_config(obs_dim, act_dim, cfg)
        return GaussianMLPPolicy(obs_dim, act_dim, cfg)

    def inner_loss_fn(self) -> InnerLoss:
        """The inner loss the robot's step descends (exported into ``adapt_step.onnx``).

        The policy gradient for MAML, Meta-SGD, FO-MAML, Reptile and PPO-DR fine-tuning.
        """
        return PolicyGradientLoss(self.policy)

    def inner_batch(self, rollouts: Rollouts, task: int, dtype: torch.dtype) -> InnerBatch:
        """Task ``task``'s adaptation batch from a sampler's rollouts (what its loss reads)."""
        return rollouts.task_batch(task, dtype)

    def lrs(self) -> Params:
        """Current positive inner learning rates (detached)."""
        return detach(positive_rates(self.raw_lrs))

    def adapt_each(self, rollouts: Rollouts, params: Mapping[str, torch.Tensor]) -> Params:
        """Detached per-task adapted params ``[M, ...]`` from each task's own episodes.

        This is the robot's inner step (batched over tasks with ``torch.func.vmap``).
        """
        batch = stack_batches([rollouts.task_batch(i) for i in range(rollouts.n_tasks)])
        out = batched_adapt(
            self.policy, detach(params), self.lrs(), batch, self.inner_steps, create_graph=False
        )
        for k, v in out.items():
            check_finite(v, f"adapted params.{k}")
        return detach(out)

    def evaluate(
        self, tasks: list[TaskParams], rng: np.random.Generator, episodes_per_task: int
    ) -> dict[str, float]:
        """Pre- and post-adaptation return and success on ``tasks`` (no learning)."""
        pre = self.sampler.sample(detach(self.params), tasks, rng, episodes_per_task)
        post = self.sampler.sample(
            self.adapt_each(pre, self.params), tasks, rng, episodes_per_task, per_task=True
        )
        return {
            "pre_return": float(pre.episode_returns().mean()),
            "post_return": float(post.episode_returns().mean()),
            "pre_success": float(pre.success.mean()),
            "post_success": float(post.success.mean()),
        }

    def observe_normalizer(self, rollouts: Rollouts) -> None:
        """Update observation statistics from live steps (after the iteration's update)."""
        live = rollouts.mask.reshape(-1) > 0
        self.policy.normalizer.update(rollouts.obs.reshape(-1, rollouts.obs.shape[-1])[live])

    def close(self) -> None:
        """Release the sampler's envs and workers (and, in subclasses, the learner's own)."""
        self.sampler.close()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors, lists and numbers only)."""
        norm = self.policy.normalizer.state_dict()
        return {
            "params": detach(self.params),
            "raw_lrs": detach(self.raw_lrs),
            "normalizer": {
                k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in norm.items()
            },
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output in place (optimiser keeps its param references)."""
        with torch.no_grad():
            for group, saved in (("params", self.params), ("raw_lrs", self.raw_lrs)):
                for k, v in saved.items():
                    if k not in state[group] or state[group][k].shape != v.shape:
                        raise ValueError(f"checkpoint {group}.{k}: missing or wrong shape")
                    v.copy_(state[group][k])
        self.policy.normalizer.load_state_dict(state["normalizer"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (at least one row)."""
    return (x * mask).sum() / torch.clamp(mask.sum(), min=1.0)


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO loss ``-E[min(r A, clip(r, 1-eps, 1+eps) A)]`` with ``r = exp(logp - old_logp)``."""
    ratio = torch.exp(logp - old_logp)
    surr = torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv)
    return -masked_mean(surr, mask)
