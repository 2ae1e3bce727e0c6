"""``law_id``: identify the control law's parameters on the robot, by gradient steps on ``z``.

The policy is the family's control law told ``theta(z)``
(:class:`~adapt_robot.meta.control_law.ControlLawPolicy`). On the robot, as for
:class:`~adapt_robot.meta.algorithms.latent.LatentID`, ``z`` starts at the learned ``z0`` and
takes ``K`` steps of the identification loss of a learned model ``f(obs, act, z)`` over the
robot's own transitions (no reward, no privileged state), exported as ``adapt_step.onnx``.

Training is supervised: the privileged target is the ``theta`` the expert would use
(:meth:`sim.core.family.TaskFamily.expert_law_params`), never shown to the robot. One iteration
on ``M`` train tasks:

1. **Explore:** ``E`` episodes per task acting with ``theta(z0)`` (the robot's first attempts).
2. **Adapt:** per task, the transitions of ``k`` random episodes (``k`` in 1..E) or, with
   probability ``window_p``, of a random prefix of the first episode (sliding window).
3. **Learn** (``grad_steps`` Adam steps on a replay of recent iterations), through the inner
   steps (second order), with ``u(.)`` the decoded ``theta`` scaled to [-1, 1]::

       L = |u(z_K) - u*|^2 + teacher_w |u(mu(u*)) - u*|^2 + start_w |u(z0) - u*|^2
           + latent_w |z_K - sg(mu(u*))|^2 + model_w L_id(mu(u*))

   ``mu`` encodes the true target into the latent space (RMA's privileged encoder, Kumar et
   al. RSS 2021); the model ``f`` is fitted at the true latent, and ``z0``, the rates and ``f``
   are trained so that ``K`` identification steps land on the right ``theta`` (MIER, Mendonca
   et al. 2020; CAVIA, Zintgraf et al. 2019). The ``start_w`` term makes ``theta(z0)`` the best
   single setting in the squared sense: the first attempt is a robust controller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.limits import MIN_RATE
from adapt_robot.meta.algorithms.base import Learner, check_finite
from adapt_robot.meta.control_law import ControlLawPolicy
from adapt_robot.meta.identification import (
    HiddenEncoder,
    IdentificationLoss,
    IdentificationModel,
    model_fit,
    transition_batch,
)
from adapt_robot.meta.inner import (
    MAX_INNER_STEPS,
    InnerBatch,
    batched_adapt,
    positive_rates,
    stack_batches,
)
from adapt_robot.meta.policy import Params, PolicyConfig, detach
from adapt_robot.meta.samplers.local import Sampler
from sim.core.family import TaskFamily
from sim.core.params import TaskParams
from sim.envs.vector import VectorTaskEnv


@dataclass(frozen=True, kw_only=True)
class LawConfig:
    """``law_id`` settings (the latent size is ``policy.context_dim``)."""

    name: Literal["law_id"] = setting("law_id", doc="Algorithm name.")
    inner_lr: float = setting(
        0.5,
        doc="Initial inner rate of each latent dimension (learned, Meta-SGD).",
        gt=MIN_RATE,
    )
    inner_steps: int = setting(
        3, doc="Gradient steps on z per adaptation (1-3).", ge=1, le=MAX_INNER_STEPS
    )
    lr: float = setting(1e-3, doc="Adam step size of every trained tensor.", gt=0)
    model_hidden: tuple[int, ...] = setting((64, 64), doc="Hidden widths of the model f.")
    encoder_hidden: tuple[int, ...] = setting((32,), doc="Hidden widths of the encoder mu.")
    explore_episodes: int = setting(
        3, doc="Exploration episodes per task with z0 (the most the robot adapts on).", ge=1
    )
    window_p: float = setting(
        0.25,
        doc="Probability that a training adaptation uses a prefix of the first episode.",
        ge=0,
        le=1,
    )
    grad_steps: int = setting(50, doc="Adam steps per iteration.", ge=1)
    units_per_step: int = setting(16, doc="Tasks per Adam step.", ge=1)
    replay_iterations: int = setting(10, doc="Iterations of tasks kept for learning.", ge=1)
    teacher_w: float = setting(1.0, doc="Weight of decoding the true latent.", ge=0)
    start_w: float = setting(0.3, doc="Weight of z0's decoded theta error.", ge=0)
    latent_w: float = setting(0.1, doc="Weight of |z_K - mu(target)|^2.", ge=0)
    model_w: float = setting(1.0, doc="Weight of the model's fit at the true latent.", ge=0)
    max_grad_norm: float = setting(1.0, doc="Gradient norm clip of each Adam step.", gt=0)


@dataclass(frozen=True)
class LawRollouts:
    """One episode per env, padded ``[E, T, ...]``."""

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    mask: np.ndarray
    success: np.ndarray

    @property
    def env_steps(self) -> int:
        """Live transitions."""
        return int(self.mask.sum())

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode ``[E]``."""
        return np.asarray(self.rew.sum(axis=1))


@dataclass(frozen=True)
class _Unit:
    batch: InnerBatch
    target: torch.Tensor
    """The expert's theta scaled to [-1, 1] ``[P]``."""


class LawID(Learner):
    """The control law with a latent identified by gradient steps on a learned model."""

    name = "law_id"
    warm_startable = False  # the policy is the expert's own law: there is nothing to clone

    @classmethod
    def make_policy(cls, family: TaskFamily[Any], cfg: PolicyConfig) -> ControlLawPolicy:
        """The family's control law (see :class:`ControlLawPolicy`)."""
        return ControlLawPolicy(family, cfg)

    def __init__(self, policy: Any, sampler: Sampler, cfg: LawConfig, seed: int) -> None:
        if not isinstance(policy, ControlLawPolicy):
            raise TypeError(f"law_id: expected a ControlLawPolicy, got {type(policy).__name__}")
        super().__init__(
            policy,  # type: ignore[arg-type]  # the base only calls init_params/adapted_names
            sampler,
            inner_lr=cfg.inner_lr,
            inner_steps=cfg.inner_steps,
            learn_rates=True,
            seed=seed,
        )
        self.law: ControlLawPolicy = policy
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed + 7)
        self.model = IdentificationModel(policy, cfg.model_hidden)
        self.inner_loss = IdentificationLoss(self.model)
        for k, v in self.model.init_params(gen).items():
            self.params[k] = v.requires_grad_(True)
        n_theta = len(sampler.family.law_params)
        self.encoder = HiddenEncoder(n_theta, policy.cfg.context_dim, cfg.encoder_hidden)
        self.enc_params: Params = {
            k: v.requires_grad_(True) for k, v in self.encoder.init_params(gen).items()
        }
        trained = [v for k, v in self.params.items() if k != "log_std"]
        self.optimizer = torch.optim.Adam(
            [*trained, *self.raw_lrs.values(), *self.enc_params.values()], lr=cfg.lr
        )
        self.horizon = sampler.family.max_steps
        self.capacity = cfg.explore_episodes * self.horizon
        self.replay: deque[list[_Unit]] = deque(maxlen=cfg.replay_iterations)
        self.iterations_done = 0
        self._envs: dict[int, VectorTaskEnv] = {}

    def inner_loss_fn(self) -> IdentificationLoss:
        """The identification loss of the model ``f``."""
        return self.inner_loss

    # --- acting ---------------------------------------------------------------------------
    def _env(self, batch: int) -> VectorTaskEnv:
        if batch not in self._envs:
            self._envs[batch] = VectorTaskEnv(self.sampler.family, self.sampler.engine, batch)
        return self._envs[batch]

    def thetas(self, z: torch.Tensor) -> np.ndarray:
        """``theta`` in the law's units of latents ``z [B, Z]`` ``[B, P]``."""
        with torch.no_grad():
            return self.law.theta(self.params, z).double().numpy()

    def rollouts(
        self, theta: np.ndarray, tasks: list[TaskParams], rng: np.random.Generator, noise: bool
    ) -> LawRollouts:
        """One episode per (task, ``theta`` row) acting with the law (plus its Gaussian)."""
        env = self._env(len(tasks))
        env.set_tasks(tasks)
        o = env.reset(rng)
        b, horizon = env.batch, env.max_steps
        log_std = self.params["log_std"].detach().double().numpy()
        obs = np.zeros((b, horizon, env.obs_dim), dtype=np.float32)
        act = np.zeros((b, horizon, env.act_dim), dtype=np.float32)
        rew = np.zeros((b, horizon))
        mask = np.zeros((b, horizon), dtype=np.float32)
        success = np.zeros(b, dtype=bool)
        for t in range(horizon):
            live = ~env.done
            if not live.any():
                break
            if noise:
                a = self.law.act_numpy(o.astype(np.float64), theta, log_std, rng)
            else:
                a = self.law.family.control_law(o.astype(np.float64), theta)
            obs[:, t], act[:, t], mask[:, t] = o, a, live
            o, r, _, _, info = env.step(np.clip(a, -1.0, 1.0))
            rew[:, t] = np.where(live, r, 0.0)
            success = np.where(live, info["success"], success)
        return LawRollouts(obs, act, rew, mask, success)

    def close(self) -> None:
        """Release the learner's own env batches."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    # --- adapting ---------------------------------------------------------------------------
    def adapt_batches(
        self, batches: list[InnerBatch], params: Mapping[str, torch.Tensor] | None = None
    ) -> Params:
        """Per-task adapted params ``[M, ...]`` (the robot's step, detached)."""
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

    def inner_batch(self, rollouts: Any, task: int, dtype: torch.dtype) -> InnerBatch:
        """Task ``task``'s transitions (all of its episodes) as an identification batch."""
        sl = rollouts.task_slice(task)
        rows = int(np.prod(rollouts.mask[sl].shape))
        b = transition_batch(rollouts.obs[sl], rollouts.act[sl], rollouts.mask[sl], rows)
        return b.to(dtype)

    def adapt_each(self, rollouts: Any, params: Mapping[str, torch.Tensor]) -> Params:
        """Per-task adapted params from a sampler's rollouts, by the identification step."""
        dtype = torch.float32
        return self.adapt_batches(
            [self.inner_batch(rollouts, i, dtype) for i in range(rollouts.n_tasks)], params
        )

    def _training_batch(self, roll: LawRollouts, i: int, rng: np.random.Generator) -> InnerBatch:
        e = self.cfg.explore_episodes
        first = slice(i * e, i * e + 1)
        if rng.uniform() < self.cfg.window_p:
            mask = roll.mask[first].copy()
            mask[:, int(rng.integers(10, self.horizon)) :] = 0.0
            return transition_batch(roll.obs[first], roll.act[first], mask, self.capacity)
        k = int(rng.integers(1, e + 1))
        sl = slice(i * e, i * e + k)
        return transition_batch(roll.obs[sl], roll.act[sl], roll.mask[sl], self.capacity)

    # --- learning -----------------------------------------------------------------------------
    def _z0(self, m: int) -> torch.Tensor:
        return self.params["context"].detach().expand(m, -1)

    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Explore with theta(z0), adapt, learn on the replay."""
        cfg = self.cfg
        family = self.sampler.family
        tasks = self.train_tasks(rng)
        m, e = len(tasks), cfg.explore_episodes
        jobs = [t for t in tasks for _ in range(e)]
        explore = self.rollouts(self.thetas(self._z0(len(jobs))), jobs, rng, noise=True)
        if self.iterations_done == 0 and not self.policy.normalizer.frozen:
            live = explore.mask.reshape(-1) > 0
            self.policy.normalizer.update(explore.obs.reshape(-1, explore.obs.shape[-1])[live])
            self.policy.normalizer.frozen = True
        batches = [self._training_batch(explore, i, rng) for i in range(m)]
        adapted = self.adapt_batches(batches)
        acted = self.rollouts(self.thetas(adapted["context"]), tasks, rng, noise=True)
        targets = [self.law.to_unit(family.expert_law_params(t)) for t in tasks]
        self.replay.append(
            [
                _Unit(batch=b, target=torch.as_tensor(u, dtype=torch.float32))
                for b, u in zip(batches, targets, strict=True)
            ]
        )
        losses = self._learn(rng)
        self.iterations_done += 1
        pre = explore.success.reshape(m, e)[:, 0]
        return {
            "env_steps": float(explore.env_steps + acted.env_steps),
            "pre_return": float(explore.episode_returns().reshape(m, e)[:, 0].mean()),
            "post_return": float(acted.episode_returns().mean()),
            "pre_success": float(pre.mean()),
            "post_success": float(acted.success.mean()),
            **losses,
        }

    def _learn(self, rng: np.random.Generator) -> dict[str, float]:
        assert self.optimizer is not None
        pool = [u for units in self.replay for u in units]
        totals: dict[str, float] = {}
        for _ in range(self.cfg.grad_steps):
            size = min(self.cfg.units_per_step, len(pool))
            pick = rng.choice(len(pool), size=size, replace=False)
            parts = self.loss([pool[int(j)] for j in pick])
            self.optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            tensors = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(tensors, self.cfg.max_grad_norm)
            self.optimizer.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / self.cfg.grad_steps
        for k, v in self.params.items():
            check_finite(v, f"params.{k}")
        return totals

    def loss(self, units: list[_Unit]) -> dict[str, torch.Tensor]:
        """The outer loss of ``units`` and its parts (differentiable)."""
        cfg = self.cfg
        batch = stack_batches([u.batch for u in units])
        target = torch.stack([u.target for u in units])
        adapted = batched_adapt(
            self.policy,
            self.params,
            positive_rates(self.raw_lrs),
            batch,
            self.inner_steps,
            create_graph=True,
            loss_fn=self.inner_loss,
        )
        z_k = adapted["context"]
        z_true = self.encoder(self.enc_params, target)
        z0 = self.params["context"].expand_as(z_k)

        def err(z: torch.Tensor) -> torch.Tensor:
            return ((self.law.unit_theta(self.params, z) - target) ** 2).sum(-1).mean()

        student, teacher, start = err(z_k), err(z_true), err(z0)
        latent = ((z_k - z_true.detach()) ** 2).sum(-1).mean()
        model = model_fit(self.model, self.params, z_true, batch)
        total = (
            student
            + cfg.teacher_w * teacher
            + cfg.start_w * start
            + cfg.latent_w * latent
            + cfg.model_w * model
        )
        return {
            "loss": total,
            "theta_err": student,
            "teacher_err": teacher,
            "start_err": start,
            "latent_err": latent,
            "model_err": model,
        }

    def evaluate(
        self, tasks: list[TaskParams], rng: np.random.Generator, episodes_per_task: int
    ) -> dict[str, float]:
        """Success with theta(z0), after adapting on its first episode, and with the expert's."""
        del episodes_per_task
        m = len(tasks)
        pre = self.rollouts(self.thetas(self._z0(m)), tasks, rng, noise=False)
        batches = [
            transition_batch(
                pre.obs[i : i + 1], pre.act[i : i + 1], pre.mask[i : i + 1], self.capacity
            )
            for i in range(m)
        ]
        post = self.rollouts(
            self.thetas(self.adapt_batches(batches)["context"]), tasks, rng, noise=False
        )
        return {
            "pre_return": float(pre.episode_returns().mean()),
            "post_return": float(post.episode_returns().mean()),
            "pre_success": float(pre.success.mean()),
            "post_success": float(post.success.mean()),
        }

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
