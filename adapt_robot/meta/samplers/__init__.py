"""Samplers: K episodes per task for M tasks, in-process, in worker processes or on Ray actors.

Every kind has the interface of :class:`adapt_robot.meta.samplers.local.Sampler` and, for the
same seed, returns the same arrays: tasks are cut into fixed chunks (``sampler.chunk_tasks``),
each chunk is one env batch seeded from the call's seed and its own index, and a chunk is the
unit of work handed to a worker. The number of workers decides only who runs a chunk.

This module imports nothing heavy: worker processes import the package on start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapt_robot.meta.policy_protocol import Policy
    from adapt_robot.meta.samplers.config import SamplerConfig
    from adapt_robot.meta.samplers.local import Sampler
    from adapt_robot.sim.core.family import TaskFamily


def make_sampler(family: TaskFamily[Any], policy: Policy, cfg: SamplerConfig) -> Sampler:
    """The sampler ``cfg.kind`` names (``local``, ``process`` or ``ray``)."""
    if cfg.kind == "process":
        from adapt_robot.meta.samplers.process import ProcessSampler

        return ProcessSampler(family, policy, cfg)
    if cfg.kind == "ray":
        from adapt_robot.meta.samplers.ray_sampler import RaySampler

        return RaySampler(family, policy, cfg)
    from adapt_robot.meta.samplers.local import Sampler

    return Sampler(family, policy, cfg)
