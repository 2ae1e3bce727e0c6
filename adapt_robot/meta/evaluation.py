"""The held-out evaluation protocol: pre-adaptation, then 1..n inner steps, on new tasks.

For each of ``tasks`` tasks drawn from the held-out ``split`` (new objects and doors):

1. **Pre-adaptation (0 inner steps).** ``exploration_episodes`` (``K``) episodes acting with the
   meta-parameters. They are scored (success and return before adaptation) and are also the
   task's on-line data: the robot's exploration batch.
2. **Inner steps.** The learner's own inner step (:func:`adapt_robot.meta.inner.batched_adapt`,
   with its inner learning rates, adapted subset and advantage settings) is applied to that one
   batch ``n = 1 .. max_inner_steps`` times, as the robot does. After each step
   ``post_episodes`` episodes are scored with the adapted parameters; they are never fed back.

**The robot's acceptance rule.** Row ``n`` scores what a robot running ``n`` inner steps keeps:
the result of ``n`` steps from the meta-parameters is judged per task by the runtime's own
numpy functions (:func:`adapt_robot.runtime.safety.batch_rejection` on the batch's rewards and
advantages, then :func:`adapt_robot.runtime.safety.rejection` with the losses and gradient
norms of the steps and the loss of the result on the same batch), with the
:class:`~adapt_robot.runtime.safety.AcceptanceConfig` a bundle exported from the run carries by
default. A rejected task is scored with the meta-parameters, and the rejection is counted by
reason (:attr:`EvalReport.rollback_reasons`).

**K episodes vs the run's ``sampler.episodes_per_task``.** The exploration batch of a task holds
``K * horizon`` rows (:attr:`EvalReport.capacity`), padding masked out. Training built its inner
batches from ``sampler.episodes_per_task`` episodes, and ``adapt-robot export`` defaults the
bundle's capacity ``N`` to ``episodes_per_task * horizon``. The inner loss is a mean over live
rows, so a different ``K`` keeps the step's scale but changes its noise: ``K`` equal to the
run's ``episodes_per_task`` scores what the meta-parameters were trained for; to score what a
robot will run, use the bundle's capacity, ``K = N / horizon``.

The baselines are scored by the same protocol: a PPO-DR run has the same inner step at its fixed
``algo.inner_lr`` (plain policy-gradient fine-tuning on the same on-line data).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import ConfigError, setting
from adapt_robot.meta.algorithms import Learner
from adapt_robot.meta.inner import (
    MAX_INNER_STEPS,
    InnerBatch,
    batched_adapt,
    batched_inner_loss,
    stack_batches,
)
from adapt_robot.meta.policy import Params, detach
from adapt_robot.reporting.stats import Interval, t_interval, wilson_interval
from adapt_robot.runtime.safety import (
    REASONS,
    AcceptanceConfig,
    batch_rejection,
    rejection,
    transition_rejection,
    transition_scale,
)

REPORT_FORMAT = 1
_TASK_STREAM = 101
"""Second seed word of the held-out task draw (the same tasks for every run compared)."""
_ROLLOUT_STREAM = 103
"""Second seed word of the rollout noise."""

Track = Callable[[Iterable[str]], Iterable[str]]
"""Wraps the protocol's stage names (e.g. :func:`adapt_robot.progress.progress`)."""


@dataclass(frozen=True, kw_only=True)
class EvalProtocol:
    """Settings of the held-out evaluation protocol (checked on construction)."""

    tasks: int = setting(50, doc="Held-out tasks evaluated (the same tasks for a seed).", ge=1)
    split: Literal["train", "test"] = setting(
        "test", doc="Task split (test: objects and doors never seen in training)."
    )
    exploration_episodes: int = setting(
        10,
        doc="Episodes K per task with the meta-parameters: scored as pre-adaptation and used "
        "as the inner-step batch (K * horizon rows).",
        ge=1,
    )
    max_inner_steps: int = setting(
        3, doc="Inner steps scored: 1 .. this (the adaptation curve).", ge=1, le=MAX_INNER_STEPS
    )
    post_episodes: int = setting(3, doc="Episodes per task scored after each inner step.", ge=1)
    seed: int = setting(0, doc="Seed of the task draw and the rollout noise.", ge=0)
    engine: str | None = setting(
        None,
        doc="Physics engine override (e.g. pybullet for a MuJoCo-trained run: a sim-to-sim "
        "check); null = the run's engine.",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            ge, le = f.metadata.get("ge"), f.metadata.get("le")
            if (ge is not None and value < ge) or (le is not None and value > le):
                bounds = f"an integer in [{ge}, {le}]" if le is not None else f"an integer >= {ge}"
                raise ConfigError(f"eval.{f.name}: expected {bounds}, got {value!r}")
        if self.split not in ("train", "test"):
            raise ConfigError(f"eval.split: expected 'train' or 'test', got {self.split!r}")


@dataclass(frozen=True, kw_only=True)
class StepSummary:
    """Figures after ``inner_steps`` steps (0 = pre-adaptation) over all tasks."""

    inner_steps: int
    episodes_per_task: int
    success: Interval
    """Success rate over episodes (Wilson)."""
    ret: Interval
    """Mean undiscounted episode return over per-task means (Student t)."""
    success_gain: Interval | None
    """Per-task success-rate change from pre-adaptation (paired Student t); None at step 0."""
    return_gain: Interval | None
    """Per-task return change from pre-adaptation (paired Student t); None at step 0."""
    rolled_back: int
    """Tasks whose adaptation the robot's acceptance rule rejected (scored unadapted)."""
    rollback_reasons: dict[str, int] = field(default_factory=dict)
    """Those rejections per reason (``adapt_robot.runtime.safety.REASONS``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "inner_steps": self.inner_steps,
            "episodes_per_task": self.episodes_per_task,
            "success": self.success.to_dict(),
            "return": self.ret.to_dict(),
            "success_gain": self.success_gain.to_dict() if self.success_gain else None,
            "return_gain": self.return_gain.to_dict() if self.return_gain else None,
            "rolled_back": self.rolled_back,
            "rollback_reasons": dict(self.rollback_reasons),
        }


@dataclass(frozen=True, kw_only=True)
class EvalReport:
    """Per-task results of one run under one protocol; row ``n`` is after ``n`` inner steps."""

    protocol: EvalProtocol
    algo: str
    family: str
    engine: str
    """Engine evaluated in."""
    capacity: int
    """Rows of each task's exploration batch, ``K * horizon``."""
    inner_lr: dict[str, float]
    """Mean inner learning rate of each adapted parameter."""
    tasks: list[dict[str, Any]]
    """Task parameters, in order."""
    returns: np.ndarray
    """Per-task mean episode return ``[max_inner_steps + 1, tasks]``."""
    successes: np.ndarray
    """Per-task successful episodes ``[max_inner_steps + 1, tasks]`` (int)."""
    episodes: tuple[int, ...]
    """Episodes per task of each row: ``K`` then ``post_episodes``."""
    rolled_back: tuple[int, ...]
    """Rejected (rolled-back) tasks of each row (0 for pre-adaptation)."""
    rollback_reasons: tuple[dict[str, int], ...] = ()
    """Rejections of each row by reason (every reason of ``REASONS``, zeros included)."""
    acceptance: AcceptanceConfig = field(default_factory=AcceptanceConfig)
    """The acceptance settings the inner steps were judged with."""
    env_steps: int
    """Live environment steps the protocol used."""
    seconds: float
    source: dict[str, Any] = field(default_factory=dict)
    """Where the parameters came from (run directory, iteration, ...), set by the caller."""

    def success_rates(self) -> np.ndarray:
        """Per-task success rate of each row, ``[rows, tasks]``."""
        return self.successes / np.asarray(self.episodes, dtype=np.float64)[:, None]

    def curve(self) -> list[StepSummary]:
        """The adaptation curve: one summary per number of inner steps, 0 first."""
        rates = self.success_rates()
        out = []
        for n, k in enumerate(self.episodes):
            gains = n > 0
            out.append(
                StepSummary(
                    inner_steps=n,
                    episodes_per_task=k,
                    success=wilson_interval(int(self.successes[n].sum()), k * len(self.tasks)),
                    ret=t_interval(self.returns[n]),
                    success_gain=t_interval(rates[n] - rates[0]) if gains else None,
                    return_gain=t_interval(self.returns[n] - self.returns[0]) if gains else None,
                    rolled_back=self.rolled_back[n],
                    rollback_reasons=(self.rollback_reasons[n] if self.rollback_reasons else {}),
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The report as written to ``report.json``."""
        return {
            "format": REPORT_FORMAT,
            "source": self.source,
            "algo": self.algo,
            "family": self.family,
            "engine": self.engine,
            "protocol": dataclasses.asdict(self.protocol),
            "capacity": self.capacity,
            "inner_lr": self.inner_lr,
            "acceptance": dataclasses.asdict(self.acceptance),
            "env_steps": self.env_steps,
            "seconds": self.seconds,
            "curve": [s.to_dict() for s in self.curve()],
            "per_task": {
                "tasks": self.tasks,
                "episodes": list(self.episodes),
                "returns": self.returns.tolist(),
                "successes": self.successes.tolist(),
            },
        }


def evaluate_learner(
    learner: Learner,
    protocol: EvalProtocol,
    *,
    track: Track | None = None,
    source: Mapping[str, Any] | None = None,
    acceptance: AcceptanceConfig | None = None,
) -> EvalReport:
    """Run ``protocol`` on the learner's meta-parameters with its sampler and inner step.

    The sampler's engine is the one evaluated in (build the learner's sampler for
    ``protocol.engine`` first: :func:`adapt_robot.jobs.evaluate.open_run` does). ``track``
    wraps the stage names, for progress output. ``acceptance`` is the robot's acceptance rule
    the steps are judged by (None: the defaults ``adapt-robot export`` writes into a bundle).
    The same protocol seed gives the same report (apart from ``seconds``).
    """
    acceptance = acceptance or AcceptanceConfig()
    t0 = time.perf_counter()
    sampler = learner.sampler
    if protocol.engine is not None and protocol.engine != sampler.engine:
        raise ValueError(
            f"engine: the protocol asks for {protocol.engine!r} but the learner's sampler runs "
            f"{sampler.engine!r}; build the sampler for the protocol's engine"
        )
    family = sampler.family
    task_rng = np.random.default_rng([protocol.seed, _TASK_STREAM])
    tasks = list(family.sample_tasks(task_rng, protocol.tasks, protocol.split))
    rng = np.random.default_rng([protocol.seed, _ROLLOUT_STREAM])
    m, k, p = len(tasks), protocol.exploration_episodes, protocol.post_episodes
    stages = [f"pre-adaptation: {k} exploration episodes x {m} tasks"] + [
        f"inner step {n}: {p} episodes x {m} tasks" for n in range(1, protocol.max_inner_steps + 1)
    ]
    returns: list[np.ndarray] = []
    successes: list[np.ndarray] = []
    rolled_back: list[int] = []
    reasons: list[dict[str, int]] = []
    env_steps, capacity = 0, 0
    meta: Params = {}
    lrs = learner.lrs()
    feedback: list[tuple[np.ndarray, ...]] = []
    for n, _ in enumerate((track or iter)(stages)):
        if n == 0:
            roll = sampler.sample(detach(learner.params), tasks, rng, k)
            dtype = learner.params["log_std"].dtype
            batch = stack_batches([learner.inner_batch(roll, i, dtype) for i in range(m)])
            capacity = int(batch.obs.shape[1])
            meta = {
                name: v.detach().unsqueeze(0).expand(m, *v.shape).clone()
                for name, v in learner.params.items()
            }
            feedback = [_live_feedback(learner, roll, batch, i) for i in range(m)]
            rolled_back.append(0)
            reasons.append(dict.fromkeys(REASONS, 0))
        else:
            params, verdicts = adapt_and_judge(learner, meta, lrs, batch, n, feedback, acceptance)
            rolled_back.append(sum(v is not None for v in verdicts))
            reasons.append({r: sum(v == r for v in verdicts) for r in REASONS})
            roll = sampler.sample(params, tasks, rng, p, per_task=True)
        env_steps += roll.env_steps
        returns.append(roll.episode_returns().reshape(m, -1).mean(axis=1))
        successes.append(roll.success.reshape(m, -1).sum(axis=1).astype(np.int64))
    return EvalReport(
        protocol=protocol,
        algo=learner.name,
        family=family.name,
        engine=sampler.engine,
        capacity=capacity,
        inner_lr={name: float(v.mean()) for name, v in lrs.items()},
        tasks=[family.describe_task(t) for t in tasks],
        returns=np.stack(returns),
        successes=np.stack(successes),
        episodes=(k, *([p] * protocol.max_inner_steps)),
        rolled_back=tuple(rolled_back),
        rollback_reasons=tuple(reasons),
        acceptance=acceptance,
        env_steps=env_steps,
        seconds=time.perf_counter() - t0,
        source=dict(source or {}),
    )


def _live_feedback(
    learner: Learner, roll: Any, batch: InnerBatch, task: int
) -> tuple[np.ndarray, ...]:
    """What the robot's batch check sees for task ``task`` (see :func:`_batch_check`).

    Policy gradient: the live rewards and advantages. Identification: the live rows of the
    transition batch (obs, act, next_obs).
    """
    if learner.inner_loss_fn().kind == "identification":
        live = batch.mask[task].numpy() > 0
        assert batch.next_obs is not None
        return tuple(t[task].numpy()[live] for t in (batch.obs, batch.act, batch.next_obs))
    sl = roll.task_slice(task)
    live = roll.mask[sl] > 0
    return np.asarray(roll.rew[sl][live]), np.asarray(roll.adv[sl][live])


def _batch_check(learner: Learner, acceptance: AcceptanceConfig) -> Callable[..., str | None]:
    """The runtime's batch check for the learner's inner loss, applied to its feedback."""
    if learner.inner_loss_fn().kind == "identification":
        std = transition_scale(learner.policy.normalizer.var, 1e-8)
        return lambda obs, act, nxt: transition_rejection(obs, act, nxt, std)
    return lambda rewards, advantages: batch_rejection(acceptance, rewards, advantages)


def _loss_and_grad_norm(
    learner: Learner, params: Params, lrs: Params, batch: InnerBatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task inner loss and gradient norm ``[M]``, as ``adapt_step.onnx`` reports them.

    The gradient norm is taken over the adapted parameters (the names of ``lrs``).
    """
    at = {k: v.detach().requires_grad_(k in lrs) for k, v in params.items()}
    loss = batched_inner_loss(learner.policy, at, batch, loss_fn=learner.inner_loss_fn())
    grads = torch.autograd.grad(loss.sum(), [at[n] for n in lrs], allow_unused=True)
    m = loss.shape[0]
    sq = torch.zeros(m, dtype=loss.dtype)
    for g in grads:
        if g is not None:
            sq = sq + (g.detach() ** 2).reshape(m, -1).sum(dim=1)
    return loss.detach(), torch.sqrt(sq)


def adapt_and_judge(
    learner: Learner,
    start: Params,
    lrs: Params,
    batch: InnerBatch,
    steps: int,
    feedback: Sequence[tuple[np.ndarray, ...]],
    acceptance: AcceptanceConfig,
) -> tuple[Params, list[str | None]]:
    """``steps`` inner steps from ``start`` (``[M, ...]``) judged per task by the robot's rule.

    ``feedback[i]`` holds what the runtime's batch check of task ``i`` reads (live rewards and
    advantages; for an identification loss, the live transitions). This is the one place
    where torch results meet the runtime's acceptance rule: the batch check
    (:func:`~adapt_robot.runtime.safety.batch_rejection`), then, with every step's loss and
    gradient norm and the loss of the result on the same batch converted to numpy,
    :func:`~adapt_robot.runtime.safety.rejection`, in the order
    :class:`~adapt_robot.runtime.adaptation.InnerLoop` applies them. Returns the kept
    parameters (``start`` for a rejected task) and each task's verdict (None: accepted, else
    the reason).
    """
    current: Params = dict(start)
    scalars: list[np.ndarray] = []
    loss_fn = learner.inner_loss_fn()
    for _ in range(steps):
        loss, gnorm = _loss_and_grad_norm(learner, current, lrs, batch)
        scalars += [loss.numpy().astype(np.float64), gnorm.numpy().astype(np.float64)]
        current = detach(
            batched_adapt(
                learner.policy,
                current,
                lrs,
                batch,
                1,
                create_graph=False,
                per_task=True,
                loss_fn=loss_fn,
            )
        )
    after: np.ndarray | None = None
    if acceptance.reject_loss_increase:
        after_loss, _ = _loss_and_grad_norm(learner, current, lrs, batch)
        after = after_loss.numpy().astype(np.float64)
    names = list(lrs)
    old = {n: start[n].numpy() for n in names}
    new = {n: current[n].numpy() for n in names}
    verdicts: list[str | None] = []
    check = _batch_check(learner, acceptance)
    for i, seen in enumerate(feedback):
        reason = check(*seen)
        if reason is None:
            task_scalars = [float(s[i]) for s in scalars]
            measured = after is not None and all(np.isfinite(task_scalars))
            reason, _ = rejection(
                acceptance,
                {n: old[n][i] for n in names},
                {n: new[n][i] for n in names},
                names,
                task_scalars,
                task_scalars[0],
                float(after[i]) if measured and after is not None else None,
            )
        verdicts.append(reason)
    ok = torch.tensor([v is None for v in verdicts])
    kept = {
        k: torch.where(ok.reshape(-1, *([1] * (v.dim() - 1))), v, start[k])
        for k, v in current.items()
    }
    return kept, verdicts
