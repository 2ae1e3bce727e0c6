"""Rollouts labelled by the privileged scripted experts (DAgger, Ross et al. AISTATS 2011).

Each env acts with its own policy snapshot (its own latent ``z``), optionally mixed with the
expert (with probability ``beta`` per step the expert's action is executed, the classic DAgger
schedule); at every live step the expert told the env's TRUE task labels the visited state with
its clean action. The experts are memoryless functions of the observation
(:class:`adapt_robot.sim.core.family.Expert`), so a state visited by the student can be labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.meta.episodes import Episodes, play_episodes
from adapt_robot.meta.samplers.rollout import RolloutPolicy
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv


@dataclass(frozen=True)
class LabelledRollouts(Episodes):
    """One episode per env, padded ``[E, T, ...]``, with the expert's labels."""

    label: np.ndarray
    """The expert's clean action in each visited state, clipped to the bounds ``[E, T, A]``."""


def labelled_rollouts(
    family: TaskFamily[Any],
    env: VectorTaskEnv,
    snapshot: RolloutPolicy,
    tasks: Sequence[TaskParams],
    rng: np.random.Generator,
    *,
    beta: float = 0.0,
    noise: bool = True,
) -> LabelledRollouts:
    """One episode in each of ``env``'s envs; ``snapshot`` holds one param set per env.

    ``beta`` is the probability of executing the expert's action at a step; ``noise`` samples
    the policy's Gaussian (else its mean is executed).
    """
    b = env.batch
    if len(tasks) != b or not snapshot.per_task:
        raise ValueError(
            f"labelled_rollouts: expected {b} tasks and a per-env snapshot, got {len(tasks)} "
            f"tasks (per_task={snapshot.per_task})"
        )
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta: expected a probability in [0, 1], got {beta}")
    low, high = family.action_spec.low, family.action_spec.high
    experts = [family.expert(t) for t in tasks]
    for e in experts:
        e.reset()
    label = np.zeros((b, env.max_steps, env.act_dim), dtype=np.float32)

    def act(t: int, o: np.ndarray) -> np.ndarray:
        mean, log_std = snapshot.forward(o.reshape(b, 1, -1))
        a = mean.reshape(b, -1).astype(np.float64)
        if noise:
            a = a + np.exp(log_std.astype(np.float64)) * rng.standard_normal(a.shape)
        clean = np.clip(np.stack([e.act(x) for e, x in zip(experts, o, strict=True)]), low, high)
        if beta > 0.0:
            use = rng.uniform(size=b) < beta
            a = np.where(use[:, None], clean, a)
        label[:, t] = clean
        return a

    played = play_episodes(env, tasks, rng, act)
    return LabelledRollouts(
        played.obs, played.act, played.rew, played.mask, played.success, label=label
    )
