"""Scripted grasp expert: a state machine on the observation, tuned with the true task.

It reads the object's pose and size from the observation (what any policy sees) and takes from
the task only what is hidden: the squeeze (between what mass and friction need and what the
break force allows) and where the centre of mass is (it grips above it).
"""

from __future__ import annotations

import numpy as np

from sim.core import gripper
from sim.families.grasp import task as gt
from sim.families.grasp.reward import OBS_SPEC

_EE = OBS_SPEC.slice("ee_pos")
_OBJ = OBS_SPEC.slice("obj_pos")
_XAXIS = OBS_SPEC.slice("obj_xaxis")
_SIZE = OBS_SPEC.slice("obj_size")
_FORCE = OBS_SPEC.slice("pad_force")

APPROACH = 0.08
"""Height above the grasp height at which the gripper lines up over the object (m)."""
LIFT = 0.15
"""How far the expert lifts (m)."""
TOUCH = 1.0
"""Pad force (N) that means a finger has reached the object."""
CLOSE_FORCE = 8.0
"""Largest squeeze (N) while the fingers travel to the object; at most half the final grip,
so the impact stays below the break force."""


FRAGILE_HEADROOM = 0.4
"""Where in the safe window (slip limit .. break limit) a fragile object is squeezed."""


def expert_grip(task: gt.GraspParams) -> float:
    """Squeeze per pad (N): inside the safe window; robust objects get a firm grip."""
    low, high = gt.grip_window(task)
    if not task.fragile:
        return min(max(low, 0.5 * gripper.FINGER_FORCE_MAX), high)
    return low + FRAGILE_HEADROOM * (high - low)


class GraspExpert:
    """Line up, descend, close gently, squeeze, lift ``LIFT`` m, hold."""

    def __init__(self, task: gt.GraspParams, grip_force: float | None = None) -> None:
        self.task = task
        self.grip = expert_grip(task) if grip_force is None else grip_force
        self.com_x = task.com_x
        self.close = min(CLOSE_FORCE, 0.5 * self.grip)
        self.reset()

    def reset(self) -> None:
        """Start a new episode."""
        self.phase = "align"
        self.target: np.ndarray | None = None
        self.timer = 0
        self.goal = np.zeros(3)

    def _move(self, goal: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Displacement action taking the internal target towards ``goal``."""
        assert self.target is not None
        step = np.clip((goal - self.target) / gripper.MAX_STEP, -speed, speed)
        self.target = np.clip(
            self.target + step * gripper.MAX_STEP, gripper.WORKSPACE_LOW, gripper.WORKSPACE_HIGH
        )
        return step

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action for one observation."""
        o = np.asarray(obs, dtype=np.float64)
        if self.target is None:
            self.target = o[_EE].copy()
        half_height = o[_SIZE][2]
        grasp = o[_OBJ] + o[_XAXIS] * self.com_x
        grasp[2] = gt.grasp_height(half_height)
        grip = -1.0
        self.timer += 1
        if self.phase == "align":
            goal = grasp + np.array([0.0, 0.0, APPROACH])
            if np.linalg.norm(goal[:2] - o[_EE][:2]) < 0.004 and abs(goal[2] - o[_EE][2]) < 0.02:
                self.phase, self.timer = "descend", 0
        elif self.phase == "descend":
            goal = grasp
            if abs(o[_EE][2] - goal[2]) < 0.003 or self.timer > 20:
                self.phase, self.timer = "close", 0
        else:
            goal = self.goal
        if self.phase == "close":
            if self.timer == 1:
                self.goal = goal = self.target.copy()
            force = o[_FORCE] * gripper.FINGER_FORCE_MAX
            grip = self.close / gripper.FINGER_FORCE_MAX
            if np.all(force > TOUCH):
                self.phase, self.timer = "squeeze", 0
            elif self.timer > 30:
                self.phase, self.timer = "squeeze", 0
        if self.phase == "squeeze":
            ramp = min(1.0, (self.timer + 1) / 6)
            grip = (self.close + ramp * (self.grip - self.close)) / gripper.FINGER_FORCE_MAX
            if self.timer >= 8:
                self.phase, self.timer = "lift", 0
                self.goal = self.goal + np.array([0.0, 0.0, LIFT])
        if self.phase == "lift":
            grip = self.grip / gripper.FINGER_FORCE_MAX
            return np.concatenate([self._move(self.goal, 0.5), [grip]])
        return np.concatenate([self._move(goal), [grip]])
