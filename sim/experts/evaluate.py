"""Run scripted experts: success rates per split and the cross-task table (hidden params matter)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.sim.core.family import Split, TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv


@dataclass(frozen=True)
class ExpertResult:
    """Outcome of running experts on a set of tasks."""

    success: np.ndarray
    """Boolean per task: success at any step of the episode."""
    returns: np.ndarray
    """Undiscounted return per task."""

    @property
    def rate(self) -> float:
        """Fraction of successful episodes."""
        return float(np.mean(self.success))


def run_experts(
    family: TaskFamily[Any],
    engine: str,
    env_tasks: Sequence[TaskParams],
    expert_tasks: Sequence[TaskParams] | None = None,
    seed: int = 0,
    batch: int = 16,
) -> ExpertResult:
    """Run, in env ``i`` with task ``env_tasks[i]``, the expert tuned for ``expert_tasks[i]``.

    With ``expert_tasks=None`` each expert knows its own task (the solvability check).
    """
    expert_tasks = env_tasks if expert_tasks is None else expert_tasks
    rng = np.random.default_rng(seed)
    successes, returns = [], []
    batch = min(batch, len(env_tasks))
    env = VectorTaskEnv(family, engine, batch)
    try:
        for start in range(0, len(env_tasks), batch):
            chunk = list(env_tasks[start : start + batch])
            tuned = list(expert_tasks[start : start + batch])
            n = len(chunk)
            chunk += [chunk[-1]] * (batch - n)
            tuned += [tuned[-1]] * (batch - n)
            env.set_tasks(chunk)
            experts = [family.expert(t) for t in tuned]
            for e in experts:
                e.reset()
            obs = env.reset(rng)
            ret = np.zeros(batch)
            for _ in range(family.max_steps):
                act = np.stack([e.act(o) for e, o in zip(experts, obs, strict=True)])
                obs, rew, _, _, _ = env.step(act)
                ret += rew
                if env.done.all():
                    break
            successes.append(env.episode_success[:n].copy())
            returns.append(ret[:n])
    finally:
        env.close()
    return ExpertResult(np.concatenate(successes), np.concatenate(returns))


def solvability(
    family: TaskFamily[Any], engine: str, split: Split, n_tasks: int, seed: int = 0
) -> ExpertResult:
    """Experts given the true parameters, on ``n_tasks`` tasks of ``split``."""
    tasks = family.sample_tasks(np.random.default_rng(seed), n_tasks, split)
    return run_experts(family, engine, tasks, seed=seed)


def cross_task(
    family: TaskFamily[Any], engine: str, n_tasks: int, seed: int = 0
) -> tuple[float, float]:
    """(own-task success, mismatched success): each expert on its own task vs on another task.

    The mismatched expert is tuned for a different task from the same split (a cyclic shift),
    which is what a single non-adaptive controller faces on a new object.
    """
    tasks = family.sample_tasks(np.random.default_rng(seed), n_tasks, "train")
    own = run_experts(family, engine, tasks, seed=seed).rate
    shifted = tasks[1:] + tasks[:1]
    other = run_experts(family, engine, tasks, expert_tasks=shifted, seed=seed).rate
    return own, other
