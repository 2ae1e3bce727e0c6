"""Physics engines, and how many envs of each one process should step as one batch.

MuJoCo batches are one ``mujoco.rollout`` call over shared models and are cheap per env. Other
engines hold one full simulator per env, so a batch of them costs memory in proportion:
:data:`MAX_BATCH` caps the env batches the samplers and the warm start build (the episodes of a
call are then run as several batches, one after another, each reusing the same envs with
``set_task``).
"""

from __future__ import annotations

PYBULLET_MAX_ENVS = 64
"""Every PyBullet env is its own physics client of about 36 MB (grasp, measured): the 4096
default let a 50-task evaluation (500 + 150 envs) take over 23 GB and be killed."""

GYM_MAX_ENVS = 16
"""A plug-in Gymnasium env is a whole simulator (a Meta-World env is about 24 MB: 100 of them,
one per episode of 10 tasks x 10 episodes, took 2.4 GB and 25 s to build), and the envs of a
batch are stepped one after another anyway, so a bigger batch buys nothing. Use
``sampler.kind: process`` to step chunks of plug-in episodes in parallel."""

MAX_BATCH: dict[str, int] = {"pybullet": PYBULLET_MAX_ENVS, "gym": GYM_MAX_ENVS}
"""Largest env batch per engine; engines not listed (MuJoCo) take what the config asks."""


def batch_cap(engine: str, asked: int) -> int:
    """``asked`` envs, capped at ``engine``'s :data:`MAX_BATCH` (at least 1)."""
    return max(1, min(asked, MAX_BATCH.get(engine, asked)))
