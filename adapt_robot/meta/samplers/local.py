"""The in-process sampler (``sampler.kind: local``) and the rollouts every sampler returns.

Episodes are laid out task-major: episode ``e`` belongs to task ``e // K``. Each task may be
acted on with its own params (post-adaptation sampling). Tasks are cut into chunks
(:meth:`SamplerConfig.chunk_size`), each one env batch rolled out by
:class:`~adapt_robot.meta.samplers.rollout.ChunkRunner` with its own seed derived from the
caller's numpy ``Generator``, so the same seed gives the same rollouts here, in worker
processes and on Ray actors. Advantages use :mod:`adapt_robot.runtime.advantages`, exactly as the
robot computes them. Subclasses change only where chunks run (:meth:`Sampler.run_chunks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adapt_robot.meta.inner import InnerBatch
from adapt_robot.meta.policy import GaussianMLPPolicy, Params
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.samplers.rollout import (
    Chunk,
    ChunkResult,
    ChunkRunner,
    PolicySnapshot,
    RolloutPolicy,
    plan_chunks,
)
from adapt_robot.runtime.advantages import task_advantages
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams


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
    """Batched rollouts of one family with a memoryless policy, in this process.

    The ``K`` episodes of a task run side by side, so :meth:`sample` refuses a recurrent policy
    (whose state must be carried from one episode of a task to the next); such a learner (rl2)
    keeps the sampler for its family, engine and settings and plays its own trials.
    """

    physics_threads: int | None = None
    """MuJoCo rollout threads of this process's env batches (None: the engine's default)."""

    def __init__(self, family: TaskFamily[Any], policy: Policy, cfg: SamplerConfig) -> None:
        self.family = family
        self.policy = policy
        self.cfg = cfg
        self.engine = cfg.engine or family.engines[0]
        family.check_engine(self.engine)
        if policy.state_dim == 0 and (
            policy.obs_dim != family.obs_spec.dim or policy.act_dim != family.action_spec.dim
        ):
            raise ValueError(
                f"policy dims ({policy.obs_dim}, {policy.act_dim}) do not match family "
                f"{family.name!r} ({family.obs_spec.dim}, {family.action_spec.dim})"
            )
        self._runner: ChunkRunner | None = None
        self.last_chunk_seconds: list[float] = []
        """Compute time of each chunk of the last call (for overhead accounting)."""

    def close(self) -> None:
        """Release every env (and worker)."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self, params: Params | Sequence[Params], m: int, per_task: bool) -> RolloutPolicy:
        """What workers act with for ``m`` tasks.

        A numpy copy of the MLP, or for any other policy a
        :class:`~adapt_robot.meta.samplers.torch_snapshot.TorchSnapshot`.
        """
        if isinstance(params, dict):
            arrays = {n: v.detach().cpu().numpy() for n, v in params.items()}
        else:
            if not params:
                raise ValueError("params: expected at least one params mapping")
            arrays = {n: np.stack([p[n].detach().cpu().numpy() for p in params]) for n in params[0]}
            per_task = True
        if per_task:
            got = next(iter(arrays.values())).shape[0]
            if got != m:
                raise ValueError(f"params: expected one set per task ({m}), got {got}")
        arrays = {n: np.ascontiguousarray(v) for n, v in arrays.items()}
        if not isinstance(self.policy, GaussianMLPPolicy):
            from adapt_robot.meta.samplers.torch_snapshot import TorchSnapshot

            return TorchSnapshot(self.policy, arrays, per_task)
        dtype = arrays["log_std"].dtype
        norm = self.policy.normalizer
        normalize = self.policy.cfg.normalize_obs
        return PolicySnapshot(
            params=arrays,
            per_task=per_task,
            n_layers=self.policy.n_layers,
            activation=self.policy.cfg.activation,
            obs_mean=norm.mean.astype(dtype) if normalize else None,
            obs_std=np.sqrt(norm.var + 1e-8).astype(dtype) if normalize else None,
            obs_clip=self.policy.cfg.obs_clip,
        )

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
        Draws exactly one integer from ``rng`` (the call's seed).
        """
        if self.policy.state_dim != 0:
            raise ValueError(
                f"sampler: {type(self.policy).__name__} is recurrent (state_dim "
                f"{self.policy.state_dim}); this sampler runs the episodes of a task side by side "
                "and cannot carry a state from one to the next (a recurrent learner, rl2, plays "
                "its own trials)"
            )
        k = episodes_per_task or self.cfg.episodes_per_task
        m = len(tasks)
        if m == 0:
            raise ValueError("sample: expected at least one task")
        snap = self.snapshot(params, m, per_task)
        base = int(rng.integers(2**63))
        chunks = plan_chunks(tasks, k, self.cfg.chunk_size(k, self.engine), base)
        results = self.run_chunks(snap, chunks)
        obs, act, rew, mask, success = self._gather(chunks, results)
        adv = self.advantages(obs, rew, mask, m, k)
        return Rollouts(obs, act, rew, mask, adv, success, m, k)

    def run_chunks(self, snapshot: RolloutPolicy, chunks: list[Chunk]) -> list[ChunkResult]:
        """Roll out every chunk (here: one after the other in this process)."""
        if self._runner is None:
            self._runner = ChunkRunner(self.family, self.engine, self.physics_threads)
        return [self._runner.run(snapshot, c) for c in chunks]

    def _gather(self, chunks: list[Chunk], results: list[ChunkResult]) -> tuple[np.ndarray, ...]:
        """Concatenate results in chunk order; a missing chunk or episode is an error."""
        by_index = {r.index: r for r in results}
        missing = [c.index for c in chunks if c.index not in by_index]
        if missing or len(by_index) != len(chunks):
            raise RuntimeError(
                f"sampler: chunks {missing} returned no episodes ({len(results)} results for "
                f"{len(chunks)} chunks); refusing to train on a partial batch"
            )
        ordered = [by_index[c.index] for c in chunks]
        for c, r in zip(chunks, ordered, strict=True):
            want = len(c.tasks) * c.episodes
            got = {len(r.obs), len(r.act), len(r.rew), len(r.mask), len(r.success)}
            if got != {want}:
                raise RuntimeError(
                    f"sampler: chunk {c.index} returned {sorted(got)} episodes, expected "
                    f"{want} ({c.episodes} for each of {len(c.tasks)} tasks)"
                )
        self.last_chunk_seconds = [r.seconds for r in ordered]
        fields = ("obs", "act", "rew", "mask", "success")
        return tuple(np.concatenate([getattr(r, f) for r in ordered]) for f in fields)

    def advantages(
        self, obs: np.ndarray, rew: np.ndarray, mask: np.ndarray, m: int, k: int
    ) -> np.ndarray:
        """Per-task baseline fit, GAE and (optionally) per-task normalisation."""
        adv = np.zeros_like(rew)
        for i in range(m):
            s = slice(i * k, (i + 1) * k)
            adv[s] = task_advantages(
                obs[s],
                rew[s],
                mask[s],
                gamma=self.cfg.gamma,
                gae_lambda=self.cfg.gae_lambda,
                baseline=self.cfg.baseline,
                baseline_reg=self.cfg.baseline_reg,
                normalize=self.cfg.normalize_adv,
            )
        return adv
