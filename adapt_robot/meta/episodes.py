"""One episode in each env of a batch, acting with any function of the observations.

The loop the learners that roll out their own env batches share (the DAgger rollouts of
:mod:`adapt_robot.meta.dagger`, the control-law rollouts of ``law_id``): padded ``[E, T, ...]``
arrays of what was observed and executed, the rewards, the live mask and each episode's success.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv

ActFn = Callable[[int, np.ndarray], np.ndarray]
"""``act(t, obs [E, O]) -> actions [E, A]`` before the env's clip (what the robot records)."""


@dataclass(frozen=True)
class Episodes:
    """One episode per env, padded ``[E, T, ...]``."""

    obs: np.ndarray
    """Observations before each action ``[E, T, O]`` float32."""
    act: np.ndarray
    """Executed actions before the env's clip ``[E, T, A]`` float32 (what the robot records)."""
    rew: np.ndarray
    """Rewards ``[E, T]`` (0 on padding)."""
    mask: np.ndarray
    """1.0 on live steps ``[E, T]`` float32."""
    success: np.ndarray
    """Episode success ``[E]`` bool."""

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode ``[E]``."""
        return np.asarray(self.rew.sum(axis=1))

    @property
    def env_steps(self) -> int:
        """Live transitions."""
        return int(self.mask.sum())


def play_episodes(
    env: VectorTaskEnv, tasks: Sequence[TaskParams], rng: np.random.Generator, act: ActFn
) -> Episodes:
    """One episode in each of ``env``'s envs (set to ``tasks``), actions from ``act``."""
    env.set_tasks(list(tasks))
    o = env.reset(rng)
    b, horizon = env.batch, env.max_steps
    obs = np.zeros((b, horizon, env.obs_dim), dtype=np.float32)
    actions = np.zeros((b, horizon, env.act_dim), dtype=np.float32)
    rew = np.zeros((b, horizon))
    mask = np.zeros((b, horizon), dtype=np.float32)
    for t in range(horizon):
        live = ~env.done
        if not live.any():
            break
        a = act(t, o)
        obs[:, t], actions[:, t], mask[:, t] = o, a, live
        o, r, _, _, _ = env.step(np.clip(a, -1.0, 1.0))
        rew[:, t] = np.where(live, r, 0.0)
    return Episodes(obs, actions, rew, mask, env.episode_success.copy())


def interleave(rounds: Sequence[Episodes]) -> Episodes:
    """Rounds of one episode per task ``E x [M, T, ...]`` as task-major ``[M * E, T, ...]``.

    Row ``i * E + j`` is task ``i``'s episode of round ``j``: the layout of ``E`` episodes per
    task played in one batch (``[t for t in tasks for _ in range(E)]``).
    """

    def merge(field: str) -> np.ndarray:
        stacked = np.stack([getattr(r, field) for r in rounds], axis=1)
        return stacked.reshape(-1, *stacked.shape[2:])

    return Episodes(*(merge(f) for f in ("obs", "act", "rew", "mask", "success")))
