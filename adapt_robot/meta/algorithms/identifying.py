"""What the identifying learners share: a latent ``z`` the robot finds by gradient steps.

Both :class:`~adapt_robot.meta.algorithms.latent.LatentID` (a latent-conditioned MLP taught by
the experts) and :class:`~adapt_robot.meta.algorithms.law.LawID` (the family's control law told
a decoded latent) adapt only ``context`` on the robot, with the identification loss of a learned
model ``f(obs, act, z)`` or transition encoder ``phi`` (``identifier``,
:mod:`adapt_robot.meta.identification`), per-dimension learned rates
(Meta-SGD on ``z``), an encoder ``mu`` of privileged targets into the latent space, a replay of
recent tasks and second-order outer steps. This module holds that machinery once; each learner
adds how it acts, what it is supervised on and its outer loss.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.limits import MIN_RATE
from adapt_robot.meta.algorithms.base import Learner, check_finite
from adapt_robot.meta.identification import (
    HiddenEncoder,
    IdentificationLoss,
    transition_batch,
    transition_model,
)
from adapt_robot.meta.inner import (
    MAX_INNER_STEPS,
    InnerBatch,
    batched_adapt,
    positive_rates,
    stack_batches,
)
from adapt_robot.meta.policy import Params, detach
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.sim.envs.vector import EnvBatches, VectorTaskEnv


@dataclass(frozen=True, kw_only=True)
class IdentifyingConfig:
    """Settings shared by the identifying learners (the latent size is ``policy.context_dim``)."""

    inner_lr: float = setting(
        0.5,
        doc="Initial inner rate of each latent dimension (learned, Meta-SGD).",
        gt=MIN_RATE,
    )
    inner_steps: int = setting(
        3, doc="Gradient steps on z per adaptation (1-3).", ge=1, le=MAX_INNER_STEPS
    )
    lr: float = setting(1e-3, doc="Adam step size of every trained tensor.", gt=0)
    identifier: Literal["dynamics", "encoder"] = setting(
        "dynamics",
        doc="What the robot's step fits z to: the prediction error of a dynamics model "
        "f(obs, act, z) (dynamics), or the squared distance to a transition encoder's estimate "
        "phi(transitions) (encoder: RMA's history -> z module; one step at rate 1 lands on it).",
    )
    model_hidden: tuple[int, ...] = setting(
        (64, 64), doc="Hidden widths of the model f (or of the encoder's per-transition net)."
    )
    encoder_hidden: tuple[int, ...] = setting((32,), doc="Hidden widths of the encoder mu.")
    explore_episodes: int = setting(
        3, doc="Exploration episodes per task with z0 (the most the robot adapts on).", ge=1
    )
    window_p: float = setting(
        0.25,
        doc="Probability that a training adaptation uses a prefix of the first episode "
        "(sliding-window adaptation inside the first attempt).",
        ge=0,
        le=1,
    )
    grad_steps: int = setting(20, doc="Adam steps per iteration.", ge=1)
    units_per_step: int = setting(16, doc="Tasks per Adam step.", ge=1)
    replay_iterations: int = setting(8, doc="Iterations of tasks kept for learning.", ge=1)
    teacher_w: float = setting(1.0, doc="Weight of the teacher's loss (true latent).", ge=0)
    latent_w: float = setting(0.1, doc="Weight of |z_K - mu(target)|^2.", ge=0)
    model_w: float = setting(1.0, doc="Weight of the model's fit at the true latent.", ge=0)
    start_w: float = setting(
        0.5,
        doc="Weight of the starting latent z0's loss (the robot's first attempt, before any "
        "adaptation, is then the best single behaviour).",
        ge=0,
    )
    max_grad_norm: float = setting(1.0, doc="Gradient norm clip of each Adam step.", gt=0)
    engines: tuple[str, ...] = setting(
        (),
        doc="Engines the learner's rollouts take turns in, one per iteration (e.g. [mujoco, "
        "pybullet]: one bundle trained on both twins; empty: sampler.engine only).",
    )


class IdentifyingLearner(Learner):
    """A learner whose robot step is the identification loss on ``context``."""

    def __init__(
        self, policy: Any, sampler: Sampler, cfg: IdentifyingConfig, seed: int, target_dim: int
    ) -> None:
        super().__init__(
            policy,
            sampler,
            inner_lr=cfg.inner_lr,
            inner_steps=cfg.inner_steps,
            learn_rates=True,
            seed=seed,
        )
        if self.adapted != ["context"]:
            raise ValueError(
                f"policy.adapt: {self.name} adapts the latent; set policy.adapt: context (got "
                f"{policy.cfg.adapt!r})"
            )
        self.id_cfg = cfg
        gen = torch.Generator().manual_seed(seed + 7)
        self.model = transition_model(cfg.identifier, policy, cfg.model_hidden)
        self.inner_loss = IdentificationLoss(self.model)
        for k, v in self.model.init_params(gen).items():
            self.params[k] = v.requires_grad_(True)
        self.encoder = HiddenEncoder(target_dim, policy.cfg.context_dim, cfg.encoder_hidden)
        self.enc_params: Params = {
            k: v.requires_grad_(True) for k, v in self.encoder.init_params(gen).items()
        }
        trained = [v for k, v in self.params.items() if k != "log_std"]
        self.optimizer = torch.optim.Adam(
            [*trained, *self.raw_lrs.values(), *self.enc_params.values()], lr=cfg.lr
        )
        self.horizon = sampler.family.max_steps
        self.capacity = cfg.explore_episodes * self.horizon
        self.replay: deque[list[Any]] = deque(maxlen=cfg.replay_iterations)
        self.iterations_done = 0
        self._envs = EnvBatches(sampler.family)

    @abstractmethod
    def loss(self, units: list[Any]) -> dict[str, torch.Tensor]:
        """The outer loss of replay ``units`` (key ``loss``) and its parts."""

    def inner_loss_fn(self) -> IdentificationLoss:
        """The identification loss of the model ``f`` (the robot needs no reward)."""
        return self.inner_loss

    @property
    def engines(self) -> tuple[str, ...]:
        """Every engine the rollouts run in (``algo.engines``, else the sampler's)."""
        return self.id_cfg.engines or (self.sampler.engine,)

    def engine(self) -> str:
        """The engine of the current iteration: ``algo.engines`` in turn, one per iteration."""
        return self.engines[self.iterations_done % len(self.engines)]

    def env(self, batch: int, engine: str | None = None) -> VectorTaskEnv:
        """The learner's own batch of ``batch`` envs in ``engine`` (default: this iteration's).

        Made once per engine and size.
        """
        return self._envs.get(engine or self.engine(), batch)

    def close(self) -> None:
        """Release the learner's own env batches and the sampler's."""
        self._envs.close()
        super().close()

    def adapt_batches(
        self, batches: list[InnerBatch], params: Mapping[str, torch.Tensor] | None = None
    ) -> Params:
        """Per-task adapted params ``[M, ...]`` from transition batches (the robot's step)."""
        start = detach(self.params if params is None else params)
        out = batched_adapt(
            self.policy,
            start,
            self.lrs(),
            stack_batches(batches),
            self.inner_steps,
            create_graph=False,
            loss_fn=self.inner_loss,
        )
        check_finite(out["context"], "adapted context")
        return detach(out)

    def adapted_latents(self, batch: InnerBatch) -> torch.Tensor:
        """``z_K [M, Z]`` of stacked task batches, differentiable in every trained tensor.

        The robot's inner steps from ``z0`` with the learned rates, through the gradient
        (second order): what the outer losses are taken at.
        """
        adapted = batched_adapt(
            self.policy,
            self.params,
            positive_rates(self.raw_lrs),
            batch,
            self.inner_steps,
            create_graph=True,
            loss_fn=self.inner_loss,
        )
        return adapted["context"]

    def inner_batch(self, rollouts: Any, task: int, dtype: torch.dtype) -> InnerBatch:
        """Task ``task``'s transitions (all of its episodes) as an identification batch."""
        sl = rollouts.task_slice(task)
        rows = int(np.prod(rollouts.mask[sl].shape))
        return transition_batch(rollouts.obs[sl], rollouts.act[sl], rollouts.mask[sl], rows).to(
            dtype
        )

    def adapt_each(self, rollouts: Any, params: Mapping[str, torch.Tensor]) -> Params:
        """Per-task adapted params from a sampler's rollouts, by the identification step."""
        batches = [self.inner_batch(rollouts, i, torch.float32) for i in range(rollouts.n_tasks)]
        return self.adapt_batches(batches, params)

    def training_batch(
        self, obs: np.ndarray, act: np.ndarray, mask: np.ndarray, i: int, rng: np.random.Generator
    ) -> InnerBatch:
        """Task ``i``'s adaptation batch from exploration episodes ``[M * E, T, ...]``.

        ``k`` random episodes (1..E) or, with probability ``window_p``, a random prefix of the
        first one (sliding-window adaptation), at the learner's capacity.

        The prefix ends at a tick drawn uniformly from ``2..horizon`` (1 transition or more),
        as the robot's windows
        do (it adapts every few ticks from the first), so a short prefix is as often the start
        of a long episode as the whole of a short one. (Prefixes of 10 ticks or more, as drawn
        before, made every short batch a short episode, one that ended early, e.g. a broken
        object, and taught the step to act on the approach as on a failure.)
        """
        e = self.id_cfg.explore_episodes
        if rng.uniform() < self.id_cfg.window_p:
            first = slice(i * e, i * e + 1)
            cut = mask[first].copy()
            cut[:, int(rng.integers(2, self.horizon + 1)) :] = 0.0  # >= 1 transition
            return transition_batch(obs[first], act[first], cut, self.capacity)
        sl = slice(i * e, i * e + int(rng.integers(1, e + 1)))
        return transition_batch(obs[sl], act[sl], mask[sl], self.capacity)

    def learn(self, rng: np.random.Generator) -> dict[str, float]:
        """``grad_steps`` Adam steps on units drawn from the replay; mean of each loss part."""
        assert self.optimizer is not None
        cfg = self.id_cfg
        pool = [u for units in self.replay for u in units]
        totals: dict[str, float] = {}
        for _ in range(cfg.grad_steps):
            pick = rng.choice(len(pool), size=min(cfg.units_per_step, len(pool)), replace=False)
            parts = self.loss([pool[int(j)] for j in pick])
            self.optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            tensors = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(tensors, cfg.max_grad_norm)
            self.optimizer.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / cfg.grad_steps
        for k, v in self.params.items():
            check_finite(v, f"params.{k}")
        return totals

    def state_dict(self) -> dict[str, Any]:
        """Base state plus the encoder and the iteration count."""
        state = super().state_dict()
        state["enc_params"] = detach(self.enc_params)
        state["iterations_done"] = self.iterations_done
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        with torch.no_grad():
            for k, v in self.enc_params.items():
                v.copy_(state["enc_params"][k])
        self.iterations_done = int(state["iterations_done"])
        super().load_state_dict(state)
