"""Collect ``K`` episodes for each of ``M`` tasks in one batched env, with advantages.

Episodes are laid out task-major: episode ``e`` belongs to task ``e // K``. Each task may be
acted on with its own params (post-adaptation sampling): the per-task params are stacked and
the policy is evaluated with ``torch.func.vmap``. Action noise comes from the caller's numpy
``Generator``, so the same seed gives the same rollouts. Advantages use
:mod:`adapt_robot.runtime.returns`, exactly as the robot computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.meta.inner import InnerBatch
from adapt_robot.meta.policy import GaussianMLPPolicy, Params, stack
from adapt_robot.runtime.returns import (
    discounted_returns,
    gae,
    linear_baseline,
    normalize_advantages,
)
from sim.core.family import TaskFamily
from sim.core.params import TaskParams
from sim.envs.vector import VectorTaskEnv


@dataclass(frozen=True, kw_only=True)
class SamplerConfig:
    """Rollout and advantage settings (shared by training and the robot's inner loop)."""

    engine: str | None = setting(None, doc="Physics engine; null = the family's first engine.")
    tasks_per_iter: int = setting(20, doc="Tasks M sampled per training iteration.", ge=1)
    episodes_per_task: int = setting(
        10, doc="Episodes K per task (the inner batch holds K * horizon rows).", ge=1
    )
    max_envs: int = setting(4096, doc="Largest env batch stepped at once (chunks above).", ge=1)
    gamma: float = setting(0.99, doc="Discount factor.", ge=0, le=1)
    gae_lambda: float = setting(1.0, doc="GAE lambda (1 = returns minus baseline).", ge=0, le=1)
    baseline: Literal["linear", "none"] = setting(
        "linear", doc="Per-task linear feature baseline (ridge) or none."
    )
    baseline_reg: float = setting(1e-5, doc="Ridge regularisation of the baseline fit.", ge=0)
    normalize_adv: bool = setting(True, doc="Normalise advantages per task.")


@dataclass(frozen=True)
class Rollouts:
    """Padded episodes ``[E, T, ...]`` with ``E = M * K`` (task-major)."""

    obs: np.ndarray
    """Observations before each action, ``[E, T, O]`` float32."""
    act: np.ndarray
    """Sampled (unclipped) actions, ``[E, T, A]`` float32."""
    rew: np.ndarray
    """Rewards ``[E, T]`` (0 on padding)."""
    mask: np.ndarray
    """1.0 on live steps, 0.0 after the episode ended, ``[E, T]``."""
    adv: np.ndarray
    """Advantages ``[E, T]`` (0 on padding)."""
    success: np.ndarray
    """Episode success (success flag at its last live step), ``[E]`` bool."""
    n_tasks: int
    episodes_per_task: int

    @property
    def env_steps(self) -> int:
        """Live transitions collected."""
        return int(self.mask.sum())

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode ``[E]``."""
        return (self.rew * self.mask).sum(axis=1)

    def task_slice(self, i: int) -> slice:
        """Episodes of task ``i``."""
        if not 0 <= i < self.n_tasks:
            raise IndexError(f"task index {i} out of range for {self.n_tasks} tasks")
        k = self.episodes_per_task
        return slice(i * k, (i + 1) * k)

    def batch(self, episodes: slice, dtype: torch.dtype = torch.float32) -> InnerBatch:
        """Flatten ``episodes`` into a fixed-capacity inner batch (``N = episodes * T``)."""
        obs = self.obs[episodes]
        return InnerBatch(
            obs=torch.as_tensor(obs.reshape(-1, obs.shape[-1]), dtype=dtype),
            act=torch.as_tensor(self.act[episodes].reshape(-1, self.act.shape[-1]), dtype=dtype),
            adv=torch.as_tensor(self.adv[episodes].reshape(-1), dtype=dtype),
            mask=torch.as_tensor(self.mask[episodes].reshape(-1), dtype=dtype),
        )

    def task_batch(self, i: int, dtype: torch.dtype = torch.float32) -> InnerBatch:
        """Inner batch of task ``i``'s episodes."""
        return self.batch(self.task_slice(i), dtype)


class Sampler:
    """Batched rollouts of one family with a Gaussian MLP policy."""

    def __init__(
        self, family: TaskFamily[Any], policy: GaussianMLPPolicy, cfg: SamplerConfig
    ) -> None:
        self.family = family
        self.policy = policy
        self.cfg = cfg
        self.engine = cfg.engine or family.engines[0]
        family.check_engine(self.engine)
        if policy.obs_dim != family.obs_spec.dim or policy.act_dim != family.action_spec.dim:
            raise ValueError(
                f"policy dims ({policy.obs_dim}, {policy.act_dim}) do not match family "
                f"{family.name!r} ({family.obs_spec.dim}, {family.action_spec.dim})"
            )
        self._envs: dict[int, VectorTaskEnv] = {}

    def _env(self, batch: int) -> VectorTaskEnv:
        if batch not in self._envs:
            self._envs[batch] = VectorTaskEnv(self.family, self.engine, batch)
        return self._envs[batch]

    def close(self) -> None:
        """Release every env."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def sample(
        self,
        params: Params | Sequence[Params],
        tasks: Sequence[TaskParams],
        rng: np.random.Generator,
        episodes_per_task: int | None = None,
        *,
        per_task: bool = False,
    ) -> Rollouts:
        """``K`` episodes of every task, acting with ``params``.

        ``params`` is one mapping shared by all tasks, a list with one mapping per task, or
        (``per_task=True``) one mapping whose tensors have a leading task axis ``[M, ...]``.
        """
        k = episodes_per_task or self.cfg.episodes_per_task
        m = len(tasks)
        if m == 0:
            raise ValueError("sample: expected at least one task")
        if isinstance(params, dict):
            base = {n: v.detach() for n, v in params.items()}
            stacked = base if per_task else {n: v.expand(m, *v.shape) for n, v in base.items()}
        else:
            stacked = stack([{n: v.detach() for n, v in p.items()} for p in params])
        got = next(iter(stacked.values())).shape[0]
        if got != m:
            raise ValueError(f"params: expected one set per task ({m}), got {got}")
        per_env = max(1, self.cfg.max_envs // k)
        parts = [
            self._sample_chunk(
                {n: v[s : s + per_env] for n, v in stacked.items()}, tasks[s : s + per_env], k, rng
            )
            for s in range(0, m, per_env)
        ]
        obs, act, rew, mask, success = (np.concatenate(x) for x in zip(*parts, strict=True))
        adv = self.advantages(obs, rew, mask, m, k)
        return Rollouts(obs, act, rew, mask, adv, success, m, k)

    def _sample_chunk(
        self,
        stacked: Params,
        tasks: Sequence[TaskParams],
        k: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, ...]:
        m = len(tasks)
        env = self._env(m * k)
        env.set_tasks([t for t in tasks for _ in range(k)])
        o = env.reset(rng)
        horizon, b = env.max_steps, m * k
        dtype = next(iter(stacked.values())).dtype
        fwd = torch.func.vmap(self.policy.forward)
        obs = np.zeros((b, horizon, env.obs_dim), dtype=np.float32)
        act = np.zeros((b, horizon, env.act_dim), dtype=np.float32)
        rew = np.zeros((b, horizon))
        mask = np.zeros((b, horizon))
        success = np.zeros(b, dtype=bool)
        for t in range(horizon):
            live = ~env.done
            if not live.any():
                break
            with torch.no_grad():
                mean, log_std = fwd(stacked, torch.as_tensor(o, dtype=dtype).reshape(m, k, -1))
            mu = mean.reshape(b, -1).numpy().astype(np.float64)
            std = np.exp(np.repeat(log_std.numpy().astype(np.float64), k, axis=0))
            a = mu + std * rng.standard_normal(mu.shape)
            obs[:, t], act[:, t], mask[:, t] = o, a, live
            o, r, _, _, info = env.step(np.clip(a, -1.0, 1.0))
            rew[:, t] = np.where(live, r, 0.0)
            success = np.where(live, info["success"], success)
        return obs, act, rew, mask, success

    def advantages(
        self, obs: np.ndarray, rew: np.ndarray, mask: np.ndarray, m: int, k: int
    ) -> np.ndarray:
        """Per-task baseline fit, GAE and (optionally) per-task normalisation."""
        adv = np.zeros_like(rew)
        for i in range(m):
            s = slice(i * k, (i + 1) * k)
            if self.cfg.baseline == "linear":
                ret = discounted_returns(rew[s], mask[s], self.cfg.gamma)
                values = linear_baseline(obs[s], ret, mask[s], self.cfg.baseline_reg)
            else:
                values = np.zeros_like(rew[s])
            a = gae(rew[s], values, mask[s], self.cfg.gamma, self.cfg.gae_lambda)
            adv[s] = normalize_advantages(a, mask[s]) if self.cfg.normalize_adv else a
        return adv
