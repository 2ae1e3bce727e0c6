"""A user's own task family for the plug-in test: a 1-D slider that must reach a hidden goal.

Defined the way a user would: a plain Gymnasium env with ``set_task``, a task sampler, and a
registration at import (so worker processes find it by importing this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from adapt_robot.sim.core.family import Split
from adapt_robot.sim.families.gym_family import gym_task_family
from adapt_robot.sim.registry import family_names, register_family


@dataclass(frozen=True)
class SliderTask:
    """The hidden goal position."""

    goal: float


class SliderEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """x' = x + 0.1 a; reward -|x' - goal|; success within 0.05 of the goal."""

    observation_space = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self.task = SliderTask(goal=0.5)
        self.x = 0.0

    def set_task(self, task: SliderTask) -> None:
        self.task = task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.05, 0.05))
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.x = float(np.clip(self.x + 0.1 * float(action[0]), -2.0, 2.0))
        dist = abs(self.x - self.task.goal)
        return np.array([self.x], dtype=np.float32), -dist, False, False, {"success": dist < 0.05}


def sample_slider_tasks(rng: np.random.Generator, n: int, split: Split) -> list[SliderTask]:
    """Goals at +-(0.3..0.7) for train, +-(0.7..0.9) for test."""
    lo, hi = (0.3, 0.7) if split == "train" else (0.7, 0.9)
    return [SliderTask(goal=float(rng.choice([-1, 1]) * rng.uniform(lo, hi))) for _ in range(n)]


def make_slider_env() -> SliderEnv:
    return SliderEnv()


class SliderExpert:
    """Told the goal: a proportional step towards it (the user's own scripted controller)."""

    def __init__(self, task: SliderTask) -> None:
        self.goal = task.goal

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(np.array([(self.goal - float(obs[0])) / 0.1]), -1.0, 1.0)


SliderFamily = gym_task_family(
    "slider",
    make_slider_env,
    sample_slider_tasks,
    task_type=SliderTask,
    max_steps=15,
    expert=SliderExpert,
)
if "slider" not in family_names():
    register_family("slider", SliderFamily)
