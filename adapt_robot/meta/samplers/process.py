"""Sampler workers in local processes (``sampler.kind: process``), one env batch each.

Each worker is a ``spawn``-ed process (never ``fork``: the parent runs torch threads) running
:func:`adapt_robot.meta.samplers.worker.worker_main` without torch. A call cuts the tasks into
chunks (as the in-process sampler does), gives each worker a consecutive group of chunks with
the params of those tasks (numpy, one message per worker), and collects one result per chunk.

Faults: a worker that dies (its process sentinel fires or its pipe breaks) or stays silent for
``worker_timeout_s`` is killed, replaced by a fresh process, and its unfinished chunks are
re-run there; a chunk re-run more than ``max_retries`` times fails the call. A Python error in
a worker is raised here with the worker's traceback (re-running would fail the same way).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.meta.samplers.rollout import (
    Chunk,
    ChunkResult,
    RolloutPolicy,
    job,
    split_contiguous,
)
from adapt_robot.meta.samplers.worker import worker_main
from adapt_robot.sim.core.family import TaskFamily


class WorkerFailed(RuntimeError):
    """A chunk could not be sampled (a worker error, or too many worker deaths)."""


@dataclass
class _Worker:
    proc: BaseProcess
    conn: Connection
    pending: list[Chunk] = field(default_factory=list)
    last_progress: float = 0.0


class ProcessSampler(Sampler):
    """The :class:`Sampler` interface over ``cfg.num_workers`` worker processes."""

    physics_threads = 0

    def __init__(self, family: TaskFamily[Any], policy: Policy, cfg: SamplerConfig) -> None:
        super().__init__(family, policy, cfg)
        self._ctx = mp.get_context("spawn")  # never fork: the parent runs torch threads
        self._workers: list[_Worker] = []
        self._job_id = 0
        self.after_dispatch: Callable[[], None] | None = None
        """Called once the jobs of a call are sent (fault-injection tests kill workers here)."""
        self.restarts = 0
        """Workers replaced so far."""

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=worker_main,
            args=(child, self.family, self.engine, self.physics_threads),
            name="adapt-robot-sampler",
            daemon=True,
        )
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def start(self) -> None:
        """Start the workers (done on the first call otherwise)."""
        while len(self._workers) < self.cfg.num_workers:
            self._workers.append(self._spawn())

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (starting them if needed)."""
        self.start()
        return [int(w.proc.pid or 0) for w in self._workers]

    def worker_info(self) -> list[dict[str, Any]]:
        """Each worker's pid and whether it imported torch (it should not)."""
        self.start()
        out = []
        for w in self._workers:
            w.conn.send("info")
            if not w.conn.poll(self.cfg.worker_timeout_s):
                raise WorkerFailed(f"sampler worker {w.proc.pid} did not answer 'info'")
            out.append(w.conn.recv()[1])
        return out

    def run_chunks(self, snapshot: RolloutPolicy, chunks: list[Chunk]) -> list[ChunkResult]:
        """Run the chunks on the workers; replace dead workers and re-run their chunks."""
        self.start()
        self._job_id += 1
        jid = self._job_id
        tries = {c.index: 0 for c in chunks}
        results: dict[int, ChunkResult] = {}
        for w, group in zip(
            self._workers, split_contiguous(chunks, len(self._workers)), strict=False
        ):
            self._send(w, jid, snapshot, group)
        if self.after_dispatch is not None:
            self.after_dispatch()
        while any(w.pending for w in self._workers):
            busy = [w for w in self._workers if w.pending]
            deadline = min(w.last_progress for w in busy) + self.cfg.worker_timeout_s
            ready = wait(
                [w.conn for w in busy] + [w.proc.sentinel for w in busy],
                timeout=max(0.0, deadline - time.monotonic()),
            )
            for w in busy:
                dead = False
                try:
                    while w.conn.poll():
                        self._receive(w, jid, results)
                except (EOFError, OSError):
                    dead = True
                if w.proc.sentinel in ready and w.pending:
                    dead = True
                if (
                    not dead
                    and w.pending
                    and time.monotonic() - w.last_progress > (self.cfg.worker_timeout_s)
                ):
                    dead = True
                if dead and w.pending:
                    self._replace(w, jid, snapshot, tries)
        return [results[c.index] for c in chunks if c.index in results]

    def _send(self, w: _Worker, jid: int, snapshot: RolloutPolicy, group: list[Chunk]) -> None:
        w.pending = list(group)
        w.last_progress = time.monotonic()
        snap, rebased = job(snapshot, group)
        try:
            w.conn.send((jid, snap, rebased))
        except (BrokenPipeError, OSError):
            pass  # the worker is dead: its sentinel fires and the chunks are re-run

    def _receive(self, w: _Worker, jid: int, results: dict[int, ChunkResult]) -> None:
        msg = w.conn.recv()
        if msg[0] == "error":
            raise WorkerFailed(
                f"sampler worker {w.proc.pid} failed on chunk(s) "
                f"{[c.index for c in w.pending]}:\n{msg[2]}"
            )
        if msg[0] != "ok" or msg[1] != jid:
            return  # a late answer to an earlier call or an info reply: not ours
        result: ChunkResult = msg[2]
        results[result.index] = result
        w.pending = [c for c in w.pending if c.index != result.index]
        w.last_progress = time.monotonic()

    def _replace(
        self, w: _Worker, jid: int, snapshot: RolloutPolicy, tries: dict[int, int]
    ) -> None:
        """Kill ``w``, start a fresh process in its slot, re-send its unfinished chunks."""
        left = list(w.pending)
        for c in left:
            tries[c.index] += 1
            if tries[c.index] > self.cfg.max_retries:
                raise WorkerFailed(
                    f"sampler: chunk {c.index} lost its worker {tries[c.index]} times "
                    f"(max_retries={self.cfg.max_retries}); last worker pid {w.proc.pid}, "
                    f"exit code {w.proc.exitcode}. Check memory and the engine's stability."
                )
        self._stop(w, grace=0.0)
        fresh = self._spawn()
        self._workers[self._workers.index(w)] = fresh
        self.restarts += 1
        self._send(fresh, jid, snapshot, left)

    def _stop(self, w: _Worker, grace: float) -> None:
        if grace > 0 and w.proc.is_alive():
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            w.proc.join(grace)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(5.0)
        w.conn.close()

    def close(self) -> None:
        """Stop every worker (politely, then by force) and release local envs."""
        for w in self._workers:
            self._stop(w, grace=5.0)
        self._workers.clear()
        super().close()
