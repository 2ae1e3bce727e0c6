"""``law_id``: identify the control law's parameters on the robot, by gradient steps on ``z``.

The policy is the family's control law told ``theta(z)``
(:class:`~adapt_robot.meta.control_law.ControlLawPolicy`). On the robot, as for
:class:`~adapt_robot.meta.algorithms.latent.LatentID`, ``z`` starts at the learned ``z0`` and
takes ``K`` steps of the identification loss of a learned model ``f(obs, act, z)`` over the
robot's own transitions (no reward, no privileged state), exported as ``adapt_step.onnx``.

Training is supervised: the privileged target is the ``theta`` the expert would use
(:meth:`adapt_robot.sim.core.family.TaskFamily.expert_law_params`), never shown to the robot. One
iteration on ``M`` train tasks:

1. **Explore:** ``E`` episodes per task acting with ``theta(z0)`` (the robot's first attempts),
   or (``explore: sequential``) each acting with the latent adapted on the episodes before it.
2. **Adapt:** per task, the transitions of ``k`` random episodes (``k`` in 1..E) or, with
   probability ``window_p``, of a random prefix of the first episode (sliding window).
3. **Learn** (``grad_steps`` Adam steps on a replay of recent iterations), through the inner
   steps (second order), with ``u(.)`` the decoded ``theta`` scaled to [-1, 1]::

       L = rho(u(z_K) - g) + teacher_w |u(mu(u*)) - u*|^2 + start_w |u(z0) - u*|^2
           + latent_w |z_K - sg(mu(u*))|^2 + model_w L_id(mu(u*)) + prior_w L_id(sg(z0))

   ``u*`` is the expert's own ``theta``. The goal ``g`` of the adapted latent (``goal:
   window``, the default) is the point of the task's working window
   (:meth:`adapt_robot.sim.core.family.TaskFamily.law_window`) nearest the first setting
   ``sg(u(z0))``: a setting that already works is left alone, and a failing one moves just into the
   window (``goal: expert``: ``g = u*``, as before). ``rho`` is a Huber loss (``student_loss:
   huber``): where a batch cannot tell tasks apart (a successful lift, the approach before any
   contact) its minimiser is the median goal, the unchanged first setting when most first attempts
   work, not the mean that a squared loss takes, which drifts towards the failures' corrections
   (``student_loss: squared``: as before).

   ``mu`` encodes the true target into the latent space (RMA's privileged encoder, Kumar et
   al. RSS 2021); the model ``f`` is fitted at the true latent, and ``z0``, the rates and ``f``
   are trained so that ``K`` identification steps land on the right ``theta`` (MIER, Mendonca
   et al. 2020; CAVIA, Zintgraf et al. 2019). The ``start_w`` term makes ``theta(z0)`` the best
   single setting in the squared sense: the first attempt is a robust controller. The
   optional ``prior_w`` term fits ``f`` at ``z0`` as well (with ``z0`` held): there it is the
   prior model, the motion averaged over the tasks, so transitions every task shares (the
   approach before any contact) are predicted at ``z0`` and give little gradient. Fitted at
   the true latents alone, ``f`` predicts even the free approach badly at ``z0`` (a point no
   task's latent is; identification loss 0.15-0.5 there against 0.02-0.06 with the term), and
   the first steps of a first attempt move ``z`` before any contact (the squeeze falls from
   37 N to 7-17 N within 15 ticks). The term is off by default: on validation tasks it left
   grasp's first attempt where it was and weakened the door's adaptation
   (docs/scoreboard.md). Where
   the working settings form separate modes (``start_goal: mode``, for doors: pushing a pull
   door trips the protective stop, and the mean of left and right hinges is neither), ``u*`` in
   that term is replaced by the best fixed setting of many train tasks (:func:`mode_goal`,
   chosen once from their working windows: a target that moved with the replay dragged
   ``z0``, and every goal measured from it, from one mode to another), so the
   first attempt opens some doors and tells the others apart by how it fails.

With ``identifier: encoder`` the robot's step fits ``z`` to a transition encoder's estimate
``phi(transitions)`` instead of a dynamics model's prediction error (RMA's adaptation module,
:class:`~adapt_robot.meta.identification.TransitionEncoder`); every term above is the same, so
``model_w L_id(mu(u*))`` regresses ``phi`` on the privileged latent (RMA's second phase), and
the outer loss trains it through the step as well (``launch/door_law_encoder.yaml``). Unlike
RMA, which freezes ``mu`` in that phase, the term is not detached: ``mu`` is pulled towards
``phi`` too (as it is towards ``f``'s fit with the dynamics model), held to the task by the
teacher term; the committed door and grasp results were trained so. ``prior_w`` is refused
with the encoder (it would pull ``phi`` to ``z0``).

The observation normaliser is fitted on the first iteration's first attempts and on expert-law
episodes of the same tasks (``normalizer_expert``), so the motion of an adapted law is inside
the spread the model and the runtime's checks are scaled by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.meta.algorithms.identifying import IdentifyingConfig, IdentifyingLearner
from adapt_robot.meta.control_law import ControlLawPolicy
from adapt_robot.meta.episodes import Episodes, interleave, play_episodes
from adapt_robot.meta.identification import (
    model_fit,
    transition_batch,
)
from adapt_robot.meta.inner import (
    InnerBatch,
    stack_batches,
)
from adapt_robot.meta.policy import PolicyConfig
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams


@dataclass(frozen=True, kw_only=True)
class LawConfig(IdentifyingConfig):
    """``law_id`` settings (the latent size is ``policy.context_dim``)."""

    name: Literal["law_id"] = setting("law_id", doc="Algorithm name.")
    grad_steps: int = setting(50, doc="Adam steps per iteration.", ge=1)
    replay_iterations: int = setting(10, doc="Iterations of tasks kept for learning.", ge=1)
    start_w: float = setting(0.3, doc="Weight of z0's decoded theta error.", ge=0)
    goal: Literal["window", "expert"] = setting(
        "window",
        doc="Goal of the adapted theta: the nearest point of the task's working window from "
        "theta(z0) (window), or the expert's own theta (expert).",
    )
    student_loss: Literal["huber", "squared"] = setting(
        "huber", doc="Loss of the adapted theta's error (in [-1, 1] units)."
    )
    huber_delta: float = setting(
        0.05, doc="Huber loss: error (in [-1, 1] units) where it turns linear.", gt=0
    )
    start_goal: Literal["mean", "mode"] = setting(
        "mean",
        doc="What z0's decoded theta is pulled to: the expert's theta of each task in the "
        "squared sense, i.e. their mean (mean), or the one expert theta inside the most working "
        "windows of 512 train tasks, fixed at the start (mode: the best fixed setting where the "
        "mean works nowhere, e.g. a door's side and direction).",
    )
    explore: Literal["batch", "sequential"] = setting(
        "batch",
        doc="Exploration episodes per task all with theta(z0) (batch), or each with the "
        "latent adapted on the task's episodes before it (sequential: what a robot that adapts "
        "after every attempt sees; score it with experience: sequential).",
    )
    prior_w: float = setting(
        0.0,
        doc="Weight of the model's fit at z0 (held fixed): f at z0 is the prior model, so "
        "transitions all tasks share give little gradient there. Off: on validation it did "
        "not help the first attempt and weakened the door's adaptation (docs/scoreboard.md).",
        ge=0,
    )
    normalizer_expert: bool = setting(
        True,
        doc="Fit the observation normaliser on expert-law episodes of the first iteration's "
        "tasks as well as on the first attempts.",
    )


MODE_TASKS = 512
"""Train tasks whose expert thetas and working windows choose ``start_goal: mode``'s setting
(windows are computed, not simulated: no episode is run)."""
MODE_STREAM = 3
"""Second seed word of that task draw (the learner's seed is the first)."""


@dataclass(frozen=True)
class _Unit:
    batch: InnerBatch
    target: torch.Tensor
    """The expert's theta scaled to [-1, 1] ``[P]``."""
    window: torch.Tensor
    """The task's working window scaled to [-1, 1] ``[2, P]`` (low, high)."""


def mode_goal(targets: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """The target ``[P]`` of ``targets [N, P]`` inside the most working windows ``[N, 2, P]``.

    The single setting that works on the most tasks (ties: the first). Where the working
    settings fall into separate modes (a door opens one way or the other), the mean of the
    targets lies between them and works nowhere; this is the best fixed setting among them.
    """
    lo, hi = windows[:, 0], windows[:, 1]
    inside = ((targets[:, None] >= lo[None]) & (targets[:, None] <= hi[None])).all(-1)
    return targets[int(torch.argmax(inside.sum(-1)))].clone()


def window_goal(start: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """The point of each working window ``[U, 2, P]`` (low, high) nearest ``start [U, P]``."""
    return torch.minimum(torch.maximum(start, window[:, 0]), window[:, 1])


class LawID(IdentifyingLearner):
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
        if cfg.identifier == "encoder" and cfg.prior_w > 0:
            raise ValueError(
                "algo.prior_w: the prior fit at z0 is a dynamics-model term; with identifier: "
                "encoder it would pull the encoder's estimate to z0 for every task. Set "
                "prior_w: 0 or identifier: dynamics"
            )
        super().__init__(policy, sampler, cfg, seed, target_dim=len(sampler.family.law_params))
        self.law: ControlLawPolicy = policy
        self.cfg = cfg
        self.start_goal: torch.Tensor | None = None
        """``start_goal: mode``: the best fixed theta of ``MODE_TASKS`` train tasks ([-1, 1])."""
        if cfg.start_goal == "mode":
            rng = np.random.default_rng([seed, MODE_STREAM])
            tasks = sampler.family.sample_tasks(rng, MODE_TASKS, "train")
            self.start_goal = mode_goal(*self.unit_goals(tasks))

    def unit_goals(self, tasks: list[TaskParams]) -> tuple[torch.Tensor, torch.Tensor]:
        """The expert's theta ``[N, P]`` and working window ``[N, 2, P]`` of each task.

        Scaled to [-1, 1] (privileged, training only).
        """
        family = self.sampler.family
        targets = [self.law.to_unit(family.expert_law_params(t)) for t in tasks]
        windows = [[self.law.to_unit(w) for w in family.law_window(t)] for t in tasks]
        as_tensor = torch.as_tensor
        return as_tensor(np.stack(targets), dtype=torch.float32), as_tensor(
            np.stack(windows), dtype=torch.float32
        )

    # --- acting ---------------------------------------------------------------------------
    def thetas(self, z: torch.Tensor) -> np.ndarray:
        """``theta`` in the law's units of latents ``z [B, Z]`` ``[B, P]``."""
        with torch.no_grad():
            return self.law.theta(self.params, z).double().numpy()

    def rollouts(
        self,
        theta: np.ndarray,
        tasks: list[TaskParams],
        rng: np.random.Generator,
        noise: bool,
        engine: str | None = None,
    ) -> Episodes:
        """One episode per (task, ``theta`` row) acting with the law (plus its Gaussian).

        In ``engine`` (default: this iteration's, :meth:`engine`).
        """
        log_std = self.params["log_std"].detach().double().numpy()

        def act(t: int, o: np.ndarray) -> np.ndarray:
            del t
            if noise:
                return self.law.act_numpy(o.astype(np.float64), theta, log_std, rng)
            return self.law.family.control_law(o.astype(np.float64), theta)

        return play_episodes(self.env(len(tasks), engine), tasks, rng, act)

    # --- learning -----------------------------------------------------------------------------
    def _z0(self, m: int) -> torch.Tensor:
        return self.params["context"].detach().expand(m, -1)

    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Explore with theta(z0), adapt, learn on the replay."""
        cfg = self.cfg
        tasks = self.train_tasks(rng)
        m, e = len(tasks), cfg.explore_episodes
        if cfg.explore == "sequential":
            explore = self.sequential_rollouts(tasks, rng)
        else:
            jobs = [t for t in tasks for _ in range(e)]
            explore = self.rollouts(self.thetas(self._z0(len(jobs))), jobs, rng, noise=True)
            self.fit_normalizer(explore, tasks, rng)
        batches = [
            self.training_batch(explore.obs, explore.act, explore.mask, i, rng) for i in range(m)
        ]
        adapted = self.adapt_batches(batches)
        acted = self.rollouts(self.thetas(adapted["context"]), tasks, rng, noise=True)
        targets, windows = self.unit_goals(tasks)
        self.replay.append(
            [_Unit(batch=b, target=targets[i], window=windows[i]) for i, b in enumerate(batches)]
        )
        losses = self.learn(rng)
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

    def sequential_rollouts(self, tasks: list[TaskParams], rng: np.random.Generator) -> Episodes:
        """``E`` rounds of one episode per task, each acting with the last adaptation's theta.

        Round 0 acts with ``theta(z0)``; round ``j`` with the latent adapted from ``z0`` on the
        task's rounds ``0..j-1`` (the robot's ``EpisodicMode(episodes=1, once=False,
        history=E)``). Returned task-major (:func:`~adapt_robot.meta.episodes.interleave`), so
        the first ``k`` episodes of a task are its experience after ``k`` adaptations.
        """
        m, e = len(tasks), self.cfg.explore_episodes
        z = self._z0(m)
        rounds: list[Episodes] = []
        for j in range(e):
            rounds.append(self.rollouts(self.thetas(z), tasks, rng, noise=True))
            if j == 0:
                self.fit_normalizer(rounds[0], tasks, rng)
            if j + 1 < e:
                seen = interleave(rounds)
                k = j + 1
                batches = [
                    transition_batch(
                        seen.obs[i * k : (i + 1) * k],
                        seen.act[i * k : (i + 1) * k],
                        seen.mask[i * k : (i + 1) * k],
                        self.capacity,
                    )
                    for i in range(m)
                ]
                z = self.adapt_batches(batches)["context"]
        return interleave(rounds)

    def fit_normalizer(
        self, explore: Episodes, tasks: list[TaskParams], rng: np.random.Generator
    ) -> None:
        """Fit and freeze the observation normaliser on the first iteration's episodes.

        Nothing once it is frozen (after the first iteration, or a resumed run).

        The first attempts ``explore`` and, with ``normalizer_expert``, one episode per task
        and engine (:attr:`engines`) acting with the expert's own ``theta`` (privileged,
        training only): the states a law
        that adapted well visits (a door that swings, a lever pressed) are then inside the
        training spread, which the model's inputs and the runtime's teleport check
        (:func:`adapt_robot.runtime.safety.transition_scale`) are scaled by.
        """
        norm = self.policy.normalizer
        if norm.frozen:
            return
        parts = [explore]
        if self.cfg.normalizer_expert:
            family = self.sampler.family
            theta = np.stack([family.expert_law_params(t) for t in tasks])
            parts += [self.rollouts(theta, tasks, rng, True, engine) for engine in self.engines]
        for ep in parts:
            live = ep.mask.reshape(-1) > 0
            norm.update(ep.obs.reshape(-1, ep.obs.shape[-1])[live])
        norm.frozen = True

    def loss(self, units: list[_Unit]) -> dict[str, torch.Tensor]:
        """The outer loss of ``units`` and its parts (differentiable)."""
        cfg = self.cfg
        batch = stack_batches([u.batch for u in units])
        target = torch.stack([u.target for u in units])
        z_k = self.adapted_latents(batch)
        z_true = self.encoder(self.enc_params, target)
        u0 = self.law.unit_theta(self.params, self.params["context"].expand_as(z_k))

        def err(u: torch.Tensor) -> torch.Tensor:
            return ((u - target) ** 2).sum(-1).mean()

        student = self.student_err(z_k, u0.detach(), target, units)
        teacher = err(self.law.unit_theta(self.params, z_true))
        if self.start_goal is not None:
            start = ((u0 - self.start_goal) ** 2).sum(-1).mean()
        else:
            start = err(u0)
        latent = ((z_k - z_true.detach()) ** 2).sum(-1).mean()
        model = model_fit(self.model, self.params, z_true, batch)
        prior = (
            model_fit(self.model, self.params, self._z0(len(units)), batch)
            if cfg.prior_w > 0
            else torch.zeros(())
        )
        total = (
            student
            + cfg.teacher_w * teacher
            + cfg.start_w * start
            + cfg.latent_w * latent
            + cfg.model_w * model
            + cfg.prior_w * prior
        )
        return {
            "loss": total,
            "theta_err": student,
            "teacher_err": teacher,
            "start_err": start,
            "latent_err": latent,
            "model_err": model,
            "prior_err": prior,
        }

    def student_err(
        self, z_k: torch.Tensor, start: torch.Tensor, target: torch.Tensor, units: list[_Unit]
    ) -> torch.Tensor:
        """Error of the adapted ``u(z_K)`` from its goal, ``start`` the (detached) ``u(z0)``.

        See the module docstring.
        """
        cfg = self.cfg
        if cfg.goal == "window":
            goal = window_goal(start, torch.stack([u.window for u in units]))
        else:
            goal = target
        diff = self.law.unit_theta(self.params, z_k) - goal
        if cfg.student_loss == "squared":
            return (diff**2).sum(-1).mean()
        rho = torch.nn.functional.huber_loss(
            diff, torch.zeros_like(diff), reduction="none", delta=cfg.huber_delta
        )
        return (rho / cfg.huber_delta).sum(-1).mean()

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
