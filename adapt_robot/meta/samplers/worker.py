"""Sampler workers: the loop of a worker process and the body of a Ray actor.

The process loop: receive a job, send back one result per chunk.

Messages (over a ``multiprocessing`` pipe, pickled): the parent sends
``(job_id, RolloutPolicy, [Chunk, ...])``, ``"info"`` or ``None`` (stop). The worker answers
``("ok", job_id, ChunkResult)`` after every chunk (so finished chunks survive a later crash),
``("error", job_id, traceback text)`` if a chunk raised, or ``("info", {...})``.

Torch is not imported here: the worker acts with the numpy policy of
:mod:`adapt_robot.meta.samplers.rollout` (one process, one core, no torch threads); only a
:class:`~adapt_robot.meta.samplers.torch_snapshot.TorchSnapshot` (a policy other than the MLP)
brings torch in when it is unpickled.
"""

from __future__ import annotations

import os
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from adapt_robot.meta.samplers.rollout import Chunk, ChunkResult, ChunkRunner, RolloutPolicy
from adapt_robot.sim.core.family import TaskFamily


def worker_main(
    conn: Connection, family: TaskFamily[Any], engine: str, physics_threads: int | None
) -> None:
    """Serve jobs on ``conn`` until ``None`` arrives or the parent goes away."""
    runner = ChunkRunner(family, engine, physics_threads)
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if msg is None:
                return
            if msg == "info":
                conn.send(("info", {"pid": os.getpid(), "torch": "torch" in sys.modules}))
                continue
            job_id, snapshot, chunks = msg
            for chunk in chunks:
                try:
                    result = runner.run(snapshot, chunk)
                except Exception:
                    conn.send(("error", job_id, traceback.format_exc()))
                    break
                conn.send(("ok", job_id, result))
    finally:
        runner.close()


class RayChunkWorker:
    """Ray actor body: one :class:`ChunkRunner` whose env batches live between calls.

    ``ray.remote`` is applied by the Ray sampler, so this module needs neither Ray nor torch.
    """

    def __init__(self, family: TaskFamily[Any], engine: str, physics_threads: int | None) -> None:
        self.runner = ChunkRunner(family, engine, physics_threads)

    def run(self, snapshot: RolloutPolicy, chunk: Chunk) -> ChunkResult:
        """Roll out one chunk (``snapshot`` arrives resolved from the object store)."""
        return self.runner.run(snapshot, chunk)

    def info(self) -> dict[str, Any]:
        """Process id and whether torch was imported (it should not be)."""
        return {"pid": os.getpid(), "torch": "torch" in sys.modules}
