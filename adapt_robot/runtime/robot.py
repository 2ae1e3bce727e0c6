"""The robot side of a control loop: where observations come from and actions go to.

A :class:`Robot` is whatever executes end-effector commands (xyz delta + gripper, see
``docs/task_families.md``) and reports the task's observation vector: a real arm behind its
driver, a simulated one (:class:`adapt_robot.deploy.sim_robot.SimRobot`), or a test double.
Numpy only; nothing here knows about simulators or ONNX.

One control tick of :class:`adapt_robot.runtime.loop.ControlLoop` calls, in order::

    obs = robot.read_obs()
    robot.send_action(controller.act(obs))
    reward, done = robot.reward(), robot.done()
    next_obs = robot.read_obs()

and :meth:`Robot.reset` starts every episode (the loop calls it once before the first tick and
again at the first tick after ``done()``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Robot(Protocol):
    """A robot the control loop can drive (structural type: no base class needed)."""

    @property
    def obs_dim(self) -> int:
        """Length of the observation vector."""
        ...

    @property
    def action_dim(self) -> int:
        """Length of the action vector (the loop's safe action has this length)."""
        ...

    def reset(self) -> np.ndarray:
        """Start an episode (home pose, new object or door); return the first observation."""
        ...

    def read_obs(self) -> np.ndarray:
        """Current observation, float32 ``[obs_dim]``."""
        ...

    def send_action(self, action: np.ndarray) -> None:
        """Execute ``action`` (float32 ``[action_dim]``); raise ``ValueError`` for a bad one."""
        ...

    def reward(self) -> float | None:
        """Reward of the last transition, or ``None`` to let the controller compute it."""
        ...

    def done(self) -> bool:
        """The episode has ended (success, failure, or the time limit)."""
        ...

    def success(self) -> bool | None:
        """Whether the task was achieved in this episode, or ``None`` when unknown."""
        ...
