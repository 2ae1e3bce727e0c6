"""The rollout of one chunk of tasks, in numpy: what every sampler kind runs, wherever it runs.

Torch-free on purpose: worker processes and Ray actors import this module (not torch) and act
with a :class:`RolloutPolicy`. For the Gaussian MLP
(:class:`adapt_robot.meta.policy.GaussianMLPPolicy`) that is :class:`PolicySnapshot`, a numpy
copy of it and its observation normaliser; for any other policy it is
:class:`adapt_robot.meta.samplers.torch_snapshot.TorchSnapshot`, which calls the policy's torch
``forward`` (a worker given one imports torch). The in-process sampler acts with the same code,
so all kinds give bit-identical rollouts.

Seeding: a call draws one integer ``base`` from the caller's generator; chunk ``c`` (tasks
``[c * size, (c + 1) * size)``) resets and samples action noise from
``np.random.default_rng((base, c))``. Neither depends on which worker runs the chunk.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar, cast

import numpy as np

from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv


class RolloutPolicy(Protocol):
    """What a chunk is rolled out with: numpy params and a batched, memoryless ``forward``."""

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Name -> array; with a leading task axis ``[m, ...]`` when ``per_task``."""
        ...

    @property
    def per_task(self) -> bool:
        """Whether ``params`` holds one set per task (else one set shared by all tasks)."""
        ...

    def tasks(self, lo: int, hi: int) -> RolloutPolicy:
        """The actor for tasks ``[lo, hi)``."""
        ...

    def with_params(self, params: dict[str, np.ndarray]) -> RolloutPolicy:
        """The same actor with other params (same layout)."""
        ...

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounded mean ``[m, k, A]`` and log std ``[m, A]`` for ``obs [m, k, O]``."""
        ...


S = TypeVar("S", bound="SnapshotParams")


class SnapshotParams:
    """The params handling every snapshot shares.

    Mixed into frozen dataclasses that have ``params`` and ``per_task`` fields.
    """

    params: dict[str, np.ndarray]
    per_task: bool

    @property
    def dtype(self) -> np.dtype[Any]:
        """Floating dtype of the parameters (observations are cast to it)."""
        return np.dtype(self.params["log_std"].dtype)

    def tasks(self: S, lo: int, hi: int) -> S:
        """The snapshot for tasks ``[lo, hi)`` (a view; shared params are kept whole)."""
        if not self.per_task:
            return self
        return self.with_params({k: v[lo:hi] for k, v in self.params.items()})

    def with_params(self: S, params: dict[str, np.ndarray]) -> S:
        """The same snapshot with other params."""
        out: S = replace(cast(Any, self), params=params)
        return out


@dataclass(frozen=True)
class PolicySnapshot(SnapshotParams):
    """Numpy parameters and normaliser of a Gaussian MLP policy, for acting only."""

    params: dict[str, np.ndarray]
    """Name -> array; with a leading task axis ``[m, ...]`` when ``per_task``."""
    per_task: bool
    """Whether ``params`` holds one set per task (else one set shared by all tasks)."""
    n_layers: int
    activation: str
    """``tanh`` or ``relu``."""
    obs_mean: np.ndarray | None
    """Normaliser mean in the params' dtype; None when observations are not normalised."""
    obs_std: np.ndarray | None
    obs_clip: float

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tanh-squashed mean ``[m, k, A]`` and log std ``[m, A]`` for ``obs [m, k, O]``."""
        p = self.params
        x = obs.astype(self.dtype)
        if self.obs_mean is not None and self.obs_std is not None:
            x = np.clip((x - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        if "context" in p:
            ctx = _per_task(p["context"], self.per_task, len(x))
            ctx = np.broadcast_to(ctx[:, None, :], (*x.shape[:-1], ctx.shape[-1]))
            x = np.concatenate([x, ctx], axis=-1)
        for i in range(self.n_layers):
            w, b = p[f"l{i}.w"], p[f"l{i}.b"]
            if self.per_task:
                x = x @ np.swapaxes(w, -1, -2) + b[:, None, :]
            else:
                x = x @ w.T + b
            if i < self.n_layers - 1:
                x = np.tanh(x) if self.activation == "tanh" else np.maximum(x, 0)
        return np.tanh(x), _per_task(p["log_std"], self.per_task, len(x))


def _per_task(v: np.ndarray, per_task: bool, m: int) -> np.ndarray:
    """``v [m, n]`` as is, or a shared ``v [n]`` broadcast to ``[m, n]``."""
    return v if per_task else np.broadcast_to(v, (m, v.shape[-1]))


@dataclass(frozen=True)
class Chunk:
    """One unit of work: ``len(tasks)`` tasks, ``episodes`` episodes each, one env batch."""

    index: int
    """Chunk number within the call (its seed and its place in the result)."""
    lo: int
    """Offset of the chunk's first task in the snapshot it is run with."""
    tasks: tuple[TaskParams, ...]
    episodes: int
    seed: tuple[int, int]
    """``(call base, chunk index)`` for ``np.random.default_rng``."""


@dataclass(frozen=True)
class ChunkResult:
    """Padded episodes of one chunk, task-major ``[len(tasks) * episodes, T, ...]``."""

    index: int
    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    mask: np.ndarray
    success: np.ndarray
    seconds: float
    """Time spent rolling out (the worker's compute, for overhead accounting)."""


def plan_chunks(tasks: Sequence[TaskParams], episodes: int, size: int, base: int) -> list[Chunk]:
    """Cut ``tasks`` into consecutive chunks of ``size`` (the last may be shorter)."""
    return [
        Chunk(c, s, tuple(tasks[s : s + size]), episodes, (base, c))
        for c, s in enumerate(range(0, len(tasks), size))
    ]


class ChunkRunner:
    """Holds the env batches of one process and runs chunks in them."""

    def __init__(self, family: TaskFamily[Any], engine: str, physics_threads: int | None) -> None:
        self.family = family
        self.engine = engine
        self.physics_threads = physics_threads
        self._envs: dict[int, VectorTaskEnv] = {}

    def env(self, batch: int) -> VectorTaskEnv:
        """The env batch of size ``batch`` (created on first use, then reused)."""
        if batch not in self._envs:
            env = VectorTaskEnv(self.family, self.engine, batch)
            if self.physics_threads is not None:
                _set_physics_threads(env, self.physics_threads)
            self._envs[batch] = env
        return self._envs[batch]

    def run(self, snapshot: RolloutPolicy, chunk: Chunk) -> ChunkResult:
        """Roll out ``chunk`` acting with ``snapshot`` (tasks offset by ``chunk.lo``)."""
        t0 = time.perf_counter()
        m, k = len(chunk.tasks), chunk.episodes
        snap = snapshot.tasks(chunk.lo, chunk.lo + m)
        rng = np.random.default_rng(chunk.seed)
        env = self.env(m * k)
        env.set_tasks([t for t in chunk.tasks for _ in range(k)])
        o = env.reset(rng)
        horizon, b = env.max_steps, m * k
        obs = np.zeros((b, horizon, env.obs_dim), dtype=np.float32)
        act = np.zeros((b, horizon, env.act_dim), dtype=np.float32)
        rew = np.zeros((b, horizon))
        mask = np.zeros((b, horizon))
        for t in range(horizon):
            live = ~env.done
            if not live.any():
                break
            mean, log_std = snap.forward(o.reshape(m, k, -1))
            mu = mean.reshape(b, -1).astype(np.float64)
            std = np.exp(np.repeat(log_std.astype(np.float64), k, axis=0))
            a = mu + std * rng.standard_normal(mu.shape)
            obs[:, t], act[:, t], mask[:, t] = o, a, live
            o, r, _, _, _ = env.step(np.clip(a, -1.0, 1.0))
            rew[:, t] = np.where(live, r, 0.0)
        success = env.episode_success.copy()  # the family's success_rule
        return ChunkResult(chunk.index, obs, act, rew, mask, success, time.perf_counter() - t0)

    def close(self) -> None:
        """Release every env."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _set_physics_threads(env: VectorTaskEnv, threads: int) -> None:
    """Run a MuJoCo batch's rollout on ``threads`` threads (0 = the calling thread).

    A worker process owns one core; MuJoCo's default (one thread per core) would make the
    workers fight over the cores. Other engines step in the calling thread already.
    """
    physics: Any = env.physics
    if getattr(physics, "nthread", None) is None or not hasattr(physics, "_rollout"):
        return
    from mujoco import rollout

    physics._rollout.close()
    physics._rollout = rollout.Rollout(nthread=threads)
    physics.nthread = threads


def split_contiguous(chunks: Sequence[Chunk], n: int) -> list[list[Chunk]]:
    """``chunks`` in at most ``n`` consecutive, near-equal groups (none empty)."""
    n = max(1, min(n, len(chunks)))
    q, r = divmod(len(chunks), n)
    out, s = [], 0
    for i in range(n):
        e = s + q + (1 if i < r else 0)
        out.append(list(chunks[s:e]))
        s = e
    return out


def job(snapshot: RolloutPolicy, chunks: Sequence[Chunk]) -> tuple[RolloutPolicy, list[Chunk]]:
    """What a worker needs for ``chunks``: the params of their tasks only, offsets rebased.

    Shared params travel whole (once per job); per-task params are cut to the tasks of the
    job (consecutive or not), so no worker receives another worker's params.
    """
    if not snapshot.per_task:
        return snapshot, list(chunks)
    parts, out, lo = [], [], 0
    for c in chunks:
        parts.append((c.lo, c.lo + len(c.tasks)))
        out.append(replace(c, lo=lo))
        lo += len(c.tasks)
    params = {
        k: np.concatenate([v[a:b] for a, b in parts])
        if len(parts) > 1
        else v[parts[0][0] : parts[0][1]]
        for k, v in snapshot.params.items()
    }
    return snapshot.with_params(params), out
