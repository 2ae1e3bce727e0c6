"""The ``sampler:`` section of a training launch file (torch-free: workers import it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adapt_robot.config import setting
from adapt_robot.sim.engines import batch_cap


@dataclass(frozen=True, kw_only=True)
class SamplerConfig:
    """Rollout and advantage settings (shared by training and the robot's inner loop)."""

    engine: str | None = setting(None, doc="Physics engine; null = the family's first engine.")
    tasks_per_iter: int = setting(20, doc="Tasks M sampled per training iteration.", ge=1)
    episodes_per_task: int = setting(
        10, doc="Episodes K per task (the inner batch holds K * horizon rows).", ge=1
    )
    max_envs: int = setting(
        4096,
        doc="Largest env batch stepped at once (chunks above); PyBullet and plug-in (gym) "
        "envs are capped lower, at adapt_robot.sim.engines.MAX_BATCH (64 and 16).",
        ge=1,
    )
    chunk_tasks: int | None = setting(
        None,
        doc="Tasks per chunk: one env batch, seeded on its own, the unit of work of a worker. "
        "Results depend on it (and on max_envs), never on kind or num_workers; use at least "
        "num_workers chunks per call to keep every worker busy. null = as many as max_envs "
        "allows.",
        ge=1,
    )
    gamma: float = setting(0.99, doc="Discount factor.", ge=0, le=1)
    gae_lambda: float = setting(1.0, doc="GAE lambda (1 = returns minus baseline).", ge=0, le=1)
    baseline: Literal["linear", "none"] = setting(
        "linear", doc="Per-task linear feature baseline (ridge) or none."
    )
    baseline_reg: float = setting(1e-5, doc="Ridge regularisation of the baseline fit.", ge=0)
    normalize_adv: bool = setting(True, doc="Normalise advantages per task.")
    kind: Literal["local", "process", "ray"] = setting(
        "local",
        doc="Where rollouts run: local (this process), process (worker processes on this "
        "machine) or ray (Ray actors, on this machine or a cluster).",
    )
    num_workers: int = setting(2, doc="Worker processes or Ray actors (kind process or ray).", ge=1)
    address: str | None = setting(
        None,
        doc="Ray cluster address (kind ray): null starts a local Ray instance, 'auto' joins the "
        "cluster this machine belongs to, 'ray://host:10001' connects a Ray client.",
    )
    worker_timeout_s: float = setting(
        600.0,
        doc="A worker that returns no chunk for this long is killed and its chunks re-run.",
        gt=0,
    )
    max_retries: int = setting(
        2, doc="Times a chunk is re-run after its worker died before the call fails.", ge=0
    )

    def chunk_size(self, episodes_per_task: int, engine: str | None = None) -> int:
        """Tasks per chunk for ``episodes_per_task`` episodes each in ``engine``.

        ``engine``: the engine the sampler resolved (default: ``self.engine``); its env batch
        cap (:func:`adapt_robot.sim.engines.batch_cap`) bounds ``max_envs``. A chunk holds at least
        one task, so one task's episodes may exceed the cap.
        """
        cap = batch_cap(engine or self.engine or "", self.max_envs)
        by_envs = max(1, cap // episodes_per_task)
        return min(self.chunk_tasks or by_envs, by_envs)
