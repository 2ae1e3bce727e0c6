"""Gymnasium wrapper: one env of a task family, with ``set_task`` and ``rgb_array`` rendering."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from adapt_robot.sim.core.family import SPLITS, Split
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.registry import get_family


class TaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """One env of ``family`` in ``engine``; tasks are drawn from ``split`` until one is set."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 20}  # noqa: RUF012

    def __init__(
        self,
        family: str,
        engine: str = "mujoco",
        split: str = "train",
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        if split not in SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        self.split: Split = "train" if split == "train" else "test"
        self.family = get_family(family)
        self._vec = VectorTaskEnv(self.family, engine, 1)
        self.render_mode = render_mode
        self.width, self.height = width, height
        self.metadata = {**self.metadata, "render_fps": round(self.family.control_hz)}
        obs_spec, act_spec = self.family.obs_spec, self.family.action_spec
        self.observation_space = gym.spaces.Box(obs_spec.low, obs_spec.high, dtype=np.float32)
        self.action_space = gym.spaces.Box(act_spec.low, act_spec.high, dtype=np.float32)
        self.task: TaskParams | None = None
        self._task_fixed = False

    def set_task(self, task: TaskParams) -> None:
        """Use ``task`` from the next reset on (and stop drawing a new task at each reset)."""
        self._vec.set_tasks([task])
        self.task = task
        self._task_fixed = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset; a new task from ``split`` each time until :meth:`set_task` fixes one.

        Drawing uses the env's RNG (domain randomisation); after ``set_task`` the task is kept.
        """
        super().reset(seed=seed, options=options)
        if not self._task_fixed:
            task = self.family.sample_tasks(self.np_random, 1, self.split)[0]
            self._vec.set_tasks([task])
            self.task = task
        obs = self._vec.reset(self.np_random)
        return obs[0], {"task": self.task}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Gymnasium 5-tuple step.

        ``info["success"]`` says whether the task is achieved, ``info["physics_fault"]`` whether
        the engine failed to step (the episode then ends).
        """
        obs, rew, term, trunc, info = self._vec.step(np.asarray(action)[None])
        return (
            obs[0],
            float(rew[0]),
            bool(term[0]),
            bool(trunc[0]),
            {"success": bool(info["success"][0]), "physics_fault": bool(info["physics_fault"][0])},
        )

    def render(self) -> np.ndarray | None:
        """RGB frame when ``render_mode == "rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self._vec.render(0, self.width, self.height)

    def close(self) -> None:
        """Release the engine."""
        self._vec.close()
