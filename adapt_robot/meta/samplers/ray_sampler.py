"""Sampler workers on Ray actors (``sampler.kind: ray``): one machine or a whole cluster.

Needs the ``ray`` extra (``pip install 'adapt-robot[ray]'``). ``sampler.address`` is passed to
``ray.init``: null starts a local Ray instance, ``auto`` joins the cluster this machine is part
of, ``ray://head:10001`` connects as a Ray client (see ``docs/scaling.md``). If Ray is already
initialised (by the caller), that session is used as it is.

Each call puts the policy snapshot into the object store once (``ray.put``) and every actor
reads it from there (zero-copy on the same node); each chunk is one actor call whose result
(numpy arrays, zero-copy from the object store) is concatenated once into the rollouts. An actor
that dies is replaced by a new one and its unfinished chunks are re-submitted; an actor silent
for ``worker_timeout_s`` is killed and treated the same way. Chunks and seeds are those of the
in-process sampler, so results are the same for the same seed.
"""

from __future__ import annotations

import time
from typing import Any

from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.meta.samplers.process import WorkerFailed
from adapt_robot.meta.samplers.rollout import (
    Chunk,
    ChunkResult,
    RolloutPolicy,
    split_contiguous,
)
from adapt_robot.meta.samplers.worker import RayChunkWorker
from adapt_robot.sim.core.family import TaskFamily

try:
    import ray
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sampler.kind: ray needs Ray: pip install 'adapt-robot[ray]' (or pip install ray), "
        "or use sampler.kind: process on one machine"
    ) from err


class RaySampler(Sampler):
    """The :class:`Sampler` interface over ``cfg.num_workers`` Ray actors (1 CPU each)."""

    physics_threads = 0

    def __init__(self, family: TaskFamily[Any], policy: Policy, cfg: SamplerConfig) -> None:
        super().__init__(family, policy, cfg)
        self._remote: Any = None
        self._actors: list[Any] = []
        self.after_dispatch: Any = None
        """Called once a call's chunks are submitted (fault-injection tests kill actors here)."""
        self.restarts = 0
        """Actors replaced so far."""

    def start(self) -> None:
        """Join or start Ray and create the actors (done on the first call otherwise)."""
        if not ray.is_initialized():
            ray.init(address=self.cfg.address, include_dashboard=False, log_to_driver=False)
        if self._remote is None:
            self._remote = ray.remote(num_cpus=1, max_restarts=0)(RayChunkWorker)
        while len(self._actors) < self.cfg.num_workers:
            self._actors.append(self._new_actor())

    def _new_actor(self) -> Any:
        return self._remote.remote(self.family, self.engine, self.physics_threads)

    def worker_info(self) -> list[dict[str, Any]]:
        """Each actor's pid and whether it imported torch."""
        self.start()
        out: list[dict[str, Any]] = ray.get(
            [a.info.remote() for a in self._actors], timeout=self.cfg.worker_timeout_s
        )
        return out

    def run_chunks(self, snapshot: RolloutPolicy, chunks: list[Chunk]) -> list[ChunkResult]:
        """Broadcast the snapshot once, run chunk calls on the actors, survive dead actors."""
        self.start()
        ref = ray.put(snapshot)
        tries = {c.index: 0 for c in chunks}
        pending: dict[Any, tuple[int, Chunk]] = {}  # object ref -> (actor slot, chunk)
        last_progress = [time.monotonic()] * len(self._actors)
        for slot, group in enumerate(split_contiguous(chunks, len(self._actors))):
            for c in group:
                pending[self._actors[slot].run.remote(ref, c)] = (slot, c)
        if self.after_dispatch is not None:
            self.after_dispatch()
        results: dict[int, ChunkResult] = {}
        while pending:
            busy = {slot for slot, _ in pending.values()}
            deadline = min(last_progress[s] for s in busy) + self.cfg.worker_timeout_s
            done, _ = ray.wait(
                list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic())
            )
            dead: set[int] = set()
            for r in done:
                slot, chunk = pending.pop(r)
                try:
                    result: ChunkResult = ray.get(r)
                except ray.exceptions.RayActorError:
                    dead.add(slot)
                    pending[r] = (slot, chunk)  # re-submitted below with the slot's others
                    continue
                except ray.exceptions.RayTaskError as err:
                    raise WorkerFailed(
                        f"sampler actor failed on chunk {chunk.index}:\n{err}"
                    ) from None
                results[result.index] = result
                last_progress[slot] = time.monotonic()
            if not done:
                now = time.monotonic()
                dead |= {s for s in busy if now - last_progress[s] > self.cfg.worker_timeout_s}
            for slot in dead:
                self._replace(slot, ref, pending, tries)
                last_progress[slot] = time.monotonic()
        return [results[c.index] for c in chunks if c.index in results]

    def _replace(
        self, slot: int, ref: Any, pending: dict[Any, tuple[int, Chunk]], tries: dict[int, int]
    ) -> None:
        """Kill the actor in ``slot``, start a new one, re-submit the slot's chunks to it."""
        left = [(r, c) for r, (s, c) in pending.items() if s == slot]
        for r, c in left:
            del pending[r]
            tries[c.index] += 1
            if tries[c.index] > self.cfg.max_retries:
                raise WorkerFailed(
                    f"sampler: chunk {c.index} lost its Ray actor {tries[c.index]} times "
                    f"(max_retries={self.cfg.max_retries})"
                )
        ray.kill(self._actors[slot], no_restart=True)
        self._actors[slot] = self._new_actor()
        self.restarts += 1
        for _, c in left:
            pending[self._actors[slot].run.remote(ref, c)] = (slot, c)

    def close(self) -> None:
        """Kill the actors (the Ray session itself is left to whoever started it)."""
        for a in self._actors:
            ray.kill(a, no_restart=True)
        self._actors.clear()
        super().close()
