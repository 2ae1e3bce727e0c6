"""The latent learner: privileged teacher -> student -> supervised inner step on the device.

The policy ``pi(a | obs, z)`` is conditioned on a small latent ``z`` (the policy's ``context``).
In simulation the true hidden parameters give the latent target ``mu(hidden)``
(:class:`~adapt_robot.meta.identification.HiddenEncoder`); on the robot ``z`` starts at the
learned ``z0`` and takes ``K`` gradient steps on the identification loss of the robot's own
transitions (:class:`~adapt_robot.meta.identification.IdentificationLoss`), with learned
per-dimension rates (Meta-SGD on ``z``). Nothing on the robot needs a reward or privileged
state. This is RMA's split (Kumar et al. RSS 2021: a teacher on true parameters, a student
that infers them from history) with the inference done by gradient steps on a learned model
(GrBAL, Nagabandi et al. ICLR 2019; MIER, Mendonca et al. 2020; CAVIA, Zintgraf et al. 2019).

One iteration on ``M`` train tasks:

1. **Explore:** ``E`` episodes per task with ``z0`` (the robot's first experience); the
   scripted expert told the true task labels every visited state (DAgger, Ross et al. 2011).
2. **Adapt:** per task, the transitions of ``k`` random episodes (``k`` in 1..E) or, with
   probability ``window_p``, of a random prefix of the first episode (sliding-window
   adaptation) -> ``z_K`` by the robot's inner step.
3. **Act adapted:** one episode per task with ``z_K``, executing the expert's action with
   probability ``beta`` (decaying), and one with the teacher's latent ``mu(h)``, both labelled
   by the expert (DAgger for the student and for the teacher).
4. **Learn** (``grad_steps`` Adam steps on units from a replay of recent iterations), through
   the inner steps (second order)::

       L = BC(pi(obs, z_K), a*) + teacher_w * BC(pi(obs, mu(h)), a*) + start_w * BC(pi(obs, z0), a*)
           + latent_w * |z_K - sg(mu(h))|^2 + model_w * L_id(mu(h))

   ``BC`` is the squared error of the tanh-squashed mean to the expert's action. The first term
   trains the model ``f``, ``z0`` and the rates so that ``K`` steps give a latent that acts
   right; the last fits ``f`` as a dynamics model at the true latent. A further
   ``start_w * BC(pi(obs, z0), a*)`` makes the first attempt, before adaptation, the best single
   behaviour the network can find.

Before the first iteration a **teacher phase** (``teacher_tasks``) runs without inner steps: the
experts demonstrate on train tasks, then the teacher ``pi(obs, mu(h))`` revisits them, and the
experts label both; cloning and model fitting on those states give the student a teacher to
imitate from its first iteration (RMA's phase 1, by imitation instead of RL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.meta.algorithms.identifying import IdentifyingConfig, IdentifyingLearner
from adapt_robot.meta.dagger import LabelledRollouts, labelled_rollouts
from adapt_robot.meta.identification import (
    hidden_features,
    model_fit,
    transition_batch,
)
from adapt_robot.meta.inner import (
    InnerBatch,
    stack_batches,
)
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.sim.core.params import TaskParams


@dataclass(frozen=True, kw_only=True)
class LatentConfig(IdentifyingConfig):
    """Latent learner settings (the latent size is ``policy.context_dim``)."""

    name: Literal["latent_id"] = setting("latent_id", doc="Algorithm name.")
    label_rows: int = setting(256, doc="Expert-labelled states kept per task.", ge=1)
    beta0: float = setting(
        0.5, doc="DAgger: probability of executing the expert's action at iteration 1.", ge=0, le=1
    )
    beta_iterations: int = setting(
        20, doc="DAgger: iterations over which beta decays linearly to 0.", ge=1
    )
    teacher_tasks: int = setting(
        256,
        doc="Teacher phase before the first iteration: train tasks demonstrated by the experts "
        "(then revisited by the teacher itself, labelled by the experts); 0 skips it.",
        ge=0,
    )
    teacher_epochs: int = setting(30, doc="Teacher phase: epochs over its labelled states.", ge=1)
    teacher_batch: int = setting(512, doc="Teacher phase: states per Adam step.", ge=1)


@dataclass(frozen=True)
class _Unit:
    """One task's learning data: its adaptation batch, latent features and labelled states."""

    batch: InnerBatch
    features: torch.Tensor
    obs: torch.Tensor
    label: torch.Tensor


def _bc(mean: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return ((mean - label) ** 2).mean()


class LatentID(IdentifyingLearner):
    """A latent-conditioned student adapted by gradient steps on an identification loss."""

    name = "latent_id"

    def __init__(self, policy: Policy, sampler: Sampler, cfg: LatentConfig, seed: int) -> None:
        probe = sampler.family.sample_tasks(np.random.default_rng(0), 1, "train")[0]
        self.feature_dim = int(hidden_features(probe).shape[0])
        super().__init__(policy, sampler, cfg, seed, target_dim=self.feature_dim)
        self.cfg = cfg

    # --- acting ---------------------------------------------------------------------------
    def _rollouts(
        self,
        contexts: torch.Tensor,
        tasks: list[TaskParams],
        rng: np.random.Generator,
        beta: float = 0.0,
        noise: bool = True,
    ) -> LabelledRollouts:
        """One episode per (task, context row), labelled by the experts."""
        m = len(tasks)
        per_env = {k: v.detach().unsqueeze(0).expand(m, *v.shape) for k, v in self.params.items()}
        per_env["context"] = contexts.detach()
        snap = self.sampler.snapshot(per_env, m, per_task=True)
        return labelled_rollouts(
            self.sampler.family, self.env(m), snap, tasks, rng, beta=beta, noise=noise
        )

    def _explore(
        self, tasks: list[TaskParams], rng: np.random.Generator, episodes: int
    ) -> LabelledRollouts:
        """``episodes`` episodes per task with ``z0``, task-major ``[M * episodes, T, ...]``."""
        jobs = [t for t in tasks for _ in range(episodes)]
        z0 = self.params["context"].detach()
        return self._rollouts(z0.expand(len(jobs), -1), jobs, rng)

    # --- adapting (the robot's inner step) ------------------------------------------------
    def task_batch(self, roll: LabelledRollouts, episodes: slice) -> InnerBatch:
        """The transition batch of ``episodes`` of ``roll`` at the learner's capacity."""
        return transition_batch(
            roll.obs[episodes], roll.act[episodes], roll.mask[episodes], self.capacity
        )

    # --- learning -------------------------------------------------------------------------
    def beta(self) -> float:
        """DAgger mixing probability of the next iteration."""
        frac = 1.0 - self.iterations_done / self.cfg.beta_iterations
        return max(0.0, self.cfg.beta0 * frac)

    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Explore, adapt, act adapted (DAgger), then learn on the replay."""
        cfg = self.cfg
        phase: dict[str, float] = {}
        if self.iterations_done == 0 and cfg.teacher_tasks > 0:
            phase = self.pretrain_teacher(rng)
        tasks = self.train_tasks(rng)
        m, e = len(tasks), cfg.explore_episodes
        explore = self._explore(tasks, rng, e)
        batches = [
            self.training_batch(explore.obs, explore.act, explore.mask, i, rng) for i in range(m)
        ]
        adapted = self.adapt_batches(batches)
        beta = self.beta()
        acted = self._rollouts(adapted["context"], tasks, rng, beta=beta)
        teacher = self._rollouts(self.true_latents(tasks), tasks, rng)
        units = []
        for i, task in enumerate(tasks):
            rolls = [(explore, slice(i * e, (i + 1) * e)), (acted, slice(i, i + 1))]
            rolls.append((teacher, slice(i, i + 1)))
            obs = np.concatenate([r.obs[sl].reshape(-1, r.obs.shape[-1]) for r, sl in rolls])
            lab = np.concatenate([r.label[sl].reshape(-1, r.label.shape[-1]) for r, sl in rolls])
            live = np.concatenate([r.mask[sl].reshape(-1) for r, sl in rolls]) > 0
            idx = np.flatnonzero(live)
            pick = rng.choice(idx, size=cfg.label_rows, replace=len(idx) < cfg.label_rows)
            units.append(
                _Unit(
                    batch=batches[i],
                    features=torch.from_numpy(hidden_features(task)),
                    obs=torch.from_numpy(obs[pick]),
                    label=torch.from_numpy(lab[pick]),
                )
            )
        self.replay.append(units)
        losses = self.learn(rng)
        self.iterations_done += 1
        pre = explore.success.reshape(m, e)
        return {
            **phase,
            "env_steps": float(explore.env_steps + acted.env_steps + teacher.env_steps)
            + phase.get("teacher_phase_env_steps", 0.0),
            "pre_return": float(explore.episode_returns().reshape(m, e)[:, 0].mean()),
            "post_return": float(acted.episode_returns().mean()),
            "pre_success": float(pre[:, 0].mean()),
            "post_success": float(acted.success.mean()),
            "teacher_success": float(teacher.success.mean()),
            "beta": beta,
            **losses,
        }

    def _act_mean(self, z: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Action means ``[U, R, A]`` of latents ``z [U, Z]`` on states ``obs [U, R, O]``."""
        shared = {k: v for k, v in self.params.items() if k != "context"}

        def one(zi: torch.Tensor, oi: torch.Tensor) -> torch.Tensor:
            return self.policy.forward({**shared, "context": zi}, oi)[0]

        out: torch.Tensor = torch.func.vmap(one)(z, obs)
        return out

    def _model_fit(self, z: torch.Tensor, batch: InnerBatch) -> torch.Tensor:
        """Mean identification loss of stacked task batches at latents ``z [U, Z]``."""
        return model_fit(self.model, self.params, z, batch)

    def loss(self, units: list[_Unit]) -> dict[str, torch.Tensor]:
        """The outer loss of ``units`` and its parts (differentiable)."""
        cfg = self.cfg
        batch = stack_batches([u.batch for u in units])
        feats = torch.stack([u.features for u in units])
        obs = torch.stack([u.obs for u in units])
        label = torch.stack([u.label for u in units])
        z_k = self.adapted_latents(batch)
        z_true = self.encoder(self.enc_params, feats)
        z0 = self.params["context"].expand_as(z_k)
        student = _bc(self._act_mean(z_k, obs), label)
        teacher = _bc(self._act_mean(z_true, obs), label)
        start = _bc(self._act_mean(z0, obs), label)
        latent = ((z_k - z_true.detach()) ** 2).sum(-1).mean()
        model = self._model_fit(z_true, batch)
        total = (
            student
            + cfg.teacher_w * teacher
            + cfg.start_w * start
            + cfg.latent_w * latent
            + cfg.model_w * model
        )
        return {
            "loss": total,
            "student_bc": student,
            "teacher_bc": teacher,
            "start_bc": start,
            "latent_err": latent,
            "model_err": model,
        }

    def pretrain_teacher(self, rng: np.random.Generator) -> dict[str, float]:
        """The teacher phase: the experts demonstrate, the teacher revisits, both labelled.

        Fits ``pi(obs, mu(hidden))`` and ``pi(obs, z0)`` to the experts' actions and the model
        ``f`` at the true latent, with no inner step (cheap); returns its metrics.
        """
        cfg = self.cfg
        assert self.optimizer is not None
        tasks = self.sampler.family.sample_tasks(rng, cfg.teacher_tasks, "train")
        chunk = min(64, len(tasks))
        feats_all = torch.stack([torch.from_numpy(hidden_features(t)) for t in tasks])
        obs_rows, lab_rows, idx_rows = [], [], []
        batches: list[tuple[int, InnerBatch]] = []
        steps = 0
        success: list[float] = []
        for revisit in (False, True):
            for lo in range(0, len(tasks), chunk):
                part = list(tasks[lo : lo + chunk])
                with torch.no_grad():
                    z = self.encoder(self.enc_params, feats_all[lo : lo + len(part)])
                roll = self._rollouts(z, part, rng, beta=0.0 if revisit else 1.0)
                steps += roll.env_steps
                if revisit:
                    success.append(float(roll.success.mean()))
                live = roll.mask > 0
                for j in range(len(part)):
                    obs_rows.append(roll.obs[j][live[j]])
                    lab_rows.append(roll.label[j][live[j]])
                    idx_rows.append(np.full(int(live[j].sum()), lo + j))
                    batches.append((lo + j, self.task_batch(roll, slice(j, j + 1))))
            self._fit_teacher(obs_rows, lab_rows, idx_rows, batches, feats_all, rng)
        return {
            "teacher_phase_env_steps": float(steps),
            "teacher_success_train": float(np.mean(success)) if success else float("nan"),
        }

    def _fit_teacher(
        self,
        obs_rows: list[np.ndarray],
        lab_rows: list[np.ndarray],
        idx_rows: list[np.ndarray],
        batches: list[tuple[int, InnerBatch]],
        feats_all: torch.Tensor,
        rng: np.random.Generator,
    ) -> None:
        """Epochs of cloning (teacher and z0) and model fitting on the teacher phase's data."""
        cfg = self.cfg
        assert self.optimizer is not None
        obs = torch.from_numpy(np.concatenate(obs_rows))
        lab = torch.from_numpy(np.concatenate(lab_rows))
        idx = torch.from_numpy(np.concatenate(idx_rows))
        n = obs.shape[0]
        shared = {k: v for k, v in self.params.items() if k != "context"}
        per_step = max(1, len(batches) * cfg.teacher_batch // max(n, 1))
        for _ in range(cfg.teacher_epochs):
            perm = torch.from_numpy(rng.permutation(n))
            for rows in torch.split(perm, cfg.teacher_batch):
                z_true = self.encoder(self.enc_params, feats_all[idx[rows]])
                mean_t = self.policy.forward({**shared, "context": z_true}, obs[rows])[0]
                mean_0 = self.policy.forward(self.params, obs[rows])[0]
                pick = rng.choice(len(batches), size=min(per_step, len(batches)), replace=False)
                chosen = [batches[int(j)] for j in pick]
                tb = stack_batches([b for _, b in chosen])
                z_fit = self.encoder(self.enc_params, feats_all[[i for i, _ in chosen]])
                total = (
                    _bc(mean_t, lab[rows])
                    + cfg.start_w * _bc(mean_0, lab[rows])
                    + cfg.model_w * self._model_fit(z_fit, tb)
                )
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                tensors = [p for g in self.optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(tensors, cfg.max_grad_norm)
                self.optimizer.step()

    def evaluate(
        self, tasks: list[TaskParams], rng: np.random.Generator, episodes_per_task: int
    ) -> dict[str, float]:
        """Success with z0, after adapting on one episode, and with the true latent (teacher)."""
        m = len(tasks)
        z0 = self.params["context"].detach()
        pre = self._rollouts(z0.expand(m, -1), tasks, rng, noise=False)
        adapted = self.adapt_batches([self.task_batch(pre, slice(i, i + 1)) for i in range(m)])
        post = self._rollouts(adapted["context"], tasks, rng, noise=False)
        with torch.no_grad():
            feats = torch.stack([torch.from_numpy(hidden_features(t)) for t in tasks])
            z_true = self.encoder(self.enc_params, feats)
        teacher = self._rollouts(z_true, tasks, rng, noise=False)
        del episodes_per_task  # one episode each: adaptation is on the first episode
        return {
            "pre_return": float(pre.episode_returns().mean()),
            "post_return": float(post.episode_returns().mean()),
            "pre_success": float(pre.success.mean()),
            "post_success": float(post.success.mean()),
            "teacher_success": float(teacher.success.mean()),
        }

    def true_latents(self, tasks: list[TaskParams]) -> torch.Tensor:
        """``mu(hidden)`` of ``tasks`` (privileged: the oracle arm of the scoreboard)."""
        with torch.no_grad():
            feats = torch.stack([torch.from_numpy(hidden_features(t)) for t in tasks])
            return self.encoder(self.enc_params, feats)
