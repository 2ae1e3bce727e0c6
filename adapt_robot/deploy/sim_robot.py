"""A simulated robot for hardware-in-the-loop runs: a task family in MuJoCo or PyBullet.

:class:`SimRobot` implements :class:`adapt_robot.runtime.robot.Robot` over one environment of a
registered task family (``grasp``, ``door``, ...) in one engine, so the real control loop, the
adapter and the bridge can be exercised against held-out objects and doors without hardware.

**Simulated time.** Every :meth:`SimRobot.send_action` advances the physics by exactly one
control period of the family (``1 / family.control_hz``, 50 ms for the 20 Hz gripper families),
however fast the control loop ticks. A loop at 100 Hz or 1 kHz therefore runs the simulation
faster than real time; what it measures is the loop and the controller, not the physics.

Observations, reward and success are the family's own (pure numpy functions of the observation
vector), identical in both engines. Tasks are drawn from ``split`` with the robot's seeded RNG,
so the same seed and the same actions give the same observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.sim.core.family import SPLITS, Split, TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.registry import get_family


@dataclass(frozen=True, kw_only=True)
class SimRobotConfig:
    """Which simulated robot to build."""

    family: str = "grasp"
    """Registered task family (``adapt_robot.sim.registry.family_names()``)."""
    engine: str = "pybullet"
    """Physics engine the family supports (``mujoco`` or ``pybullet`` for grasp and door)."""
    split: Split = "test"
    """Tasks to draw: ``train`` or ``test`` (held-out objects and doors)."""
    seed: int = 0
    """Seed of the robot's RNG (task draws and initial-pose noise)."""
    episodes_per_task: int | None = None
    """Draw a new task every this many episodes (``None``: keep the first task until
    :meth:`SimRobot.new_task` or :meth:`SimRobot.set_task`; what on-line adaptation needs)."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {self.split!r}")
        if self.episodes_per_task is not None and self.episodes_per_task < 1:
            raise ValueError(
                f"episodes_per_task: expected an integer >= 1 or None, got {self.episodes_per_task}"
            )


class SimRobot:
    """One simulated gripper in a task family's scene (see the module docstring)."""

    def __init__(self, config: SimRobotConfig) -> None:
        self.config = config
        self.family: TaskFamily[Any] = get_family(config.family)
        self.family.check_engine(config.engine)
        self._env = VectorTaskEnv(self.family, config.engine, 1)
        self._rng = np.random.default_rng(config.seed)
        self._obs = np.zeros(self.family.obs_spec.dim, dtype=np.float32)
        self._reward: float | None = None
        self._done = False
        self._success = False
        self._started = False
        self._episodes_on_task = 0
        self.task: TaskParams | None = None
        self.steps = 0
        """Control steps taken in the current episode."""

    @property
    def obs_dim(self) -> int:
        """Length of the family's observation vector."""
        return int(self.family.obs_spec.dim)

    @property
    def action_dim(self) -> int:
        """Length of the family's action vector."""
        return int(self.family.action_spec.dim)

    @property
    def control_period_s(self) -> float:
        """Simulated seconds that one :meth:`send_action` advances."""
        return 1.0 / float(self.family.control_hz)

    def set_task(self, task: TaskParams) -> None:
        """Use ``task`` from the next :meth:`reset` on."""
        self._env.set_tasks([task])
        self.task = task
        self._episodes_on_task = 0

    def new_task(self) -> TaskParams:
        """Draw the next task of the split (taking effect at the next :meth:`reset`)."""
        task = self.family.sample_tasks(self._rng, 1, self.config.split)[0]
        self.set_task(task)
        return task

    def reset(self) -> np.ndarray:
        """Start an episode on the current task (drawing one when due); the first observation."""
        every = self.config.episodes_per_task
        if self.task is None or (every is not None and self._episodes_on_task >= every):
            self.new_task()
        self._obs = self._env.reset(self._rng)[0]
        self._episodes_on_task += 1
        self._reward = None
        self._done = False
        self._success = False
        self._started = True
        self.steps = 0
        return self._obs.copy()

    def read_obs(self) -> np.ndarray:
        """Current observation (float32 copy)."""
        if not self._started:
            raise RuntimeError("read_obs: the robot has no episode yet; call reset() first")
        return self._obs.copy()

    def send_action(self, action: np.ndarray) -> None:
        """Advance one control period with ``action`` held.

        Raises ``ValueError`` for a wrong shape or a non-finite entry (before any physics runs;
        entries are clipped to [-1, 1]) and ``RuntimeError`` after the episode ended.
        """
        if not self._started:
            raise RuntimeError("send_action: the robot has no episode yet; call reset() first")
        if self._done:
            raise RuntimeError("send_action: the episode has ended; call reset() first")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.action_dim,):
            raise ValueError(f"action: expected shape ({self.action_dim},), got {a.shape}")
        obs, reward, terminated, truncated, info = self._env.step(a[None])
        self._obs = obs[0]
        self._reward = float(reward[0])
        self._done = bool(terminated[0] or truncated[0])
        self._success = bool(info["episode_success"][0])
        self.steps += 1

    def reward(self) -> float | None:
        """The family's reward of the last transition (``None`` before the first action)."""
        return self._reward

    def done(self) -> bool:
        """The episode terminated or hit the family's step limit."""
        return self._done

    def success(self) -> bool | None:
        """The episode so far succeeded, by the family's ``success_rule``."""
        return self._success if self._started else None

    def render(self, width: int = 320, height: int = 240) -> np.ndarray:
        """RGB frame ``[height, width, 3]`` uint8 of the scene (for videos)."""
        return self._env.render(0, width, height)

    def close(self) -> None:
        """Release the engine."""
        self._env.close()

    def __enter__(self) -> SimRobot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
