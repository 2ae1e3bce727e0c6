"""Collect ``K`` episodes for each of ``M`` tasks, with advantages (compatibility module).

The samplers live in :mod:`adapt_robot.meta.samplers`: the in-process :class:`Sampler`, worker
processes and Ray actors behind the same interface. Build the one a config names with
:func:`make_sampler`.
"""

from __future__ import annotations

from adapt_robot.meta.samplers import make_sampler
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.samplers.local import Rollouts, Sampler

__all__ = ["Rollouts", "Sampler", "SamplerConfig", "make_sampler"]
