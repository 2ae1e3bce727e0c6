"""Scripted door expert: a state machine on the observation, told the door's hidden parameters.

It reads the handle position and the door and lever angles from the observation, and uses the
true hinge side, opening direction, width and handle type to know the arc the handle follows.
Phases: ``reach`` above the handle, ``descend`` around the post with open fingers, ``press``
the lever down with the palm on the post top (lever doors), ``grip`` the post, then ``open``:
follow the handle's arc a little ahead of the observed door angle until the door is open past
the goal angle, then ``release`` the post and lift clear (holding a door that still swings
would brake it or drag it off its arc, and trip the protective stop). The expert keeps its own
copy of the env's position target (it knows its actions), so it commands target positions.
"""

from __future__ import annotations

import numpy as np

from sim.core import gripper
from sim.families.door import task as T
from sim.families.door.task import DoorParams

ABOVE = 0.07
"""Approach height of the grip point above the handle (m)."""
GRIP = 0.7
"""Grip effort while holding the post (84 N per finger)."""
PRESS_ANGLE = 0.45
"""Lever angle (rad, past ``LEVER_UNLATCH``) at which the expert stops pressing and grips."""
PRESS_DEPTH = 0.02
"""While pressing, the target is this far below the (descending) handle: ~80 N on the post top."""
PRESS_TARGET = 0.65
"""Lever angle the expert's target is set for (beyond the 0.6 stop: the palm presses firmly)."""
PRESSED_UNTIL = 0.2
"""Door angle (rad) after which the lever is let up."""
LEAD = 0.12
"""How far ahead of the observed door angle the target is put on the arc (rad)."""
GOAL = float(np.deg2rad(68.0))
"""Opening angle the expert drives the door to (success is at 60 degrees)."""
HOLD_Z = 0.003
"""The grip point holds the post this far above the handle centre (the palm just clears the top)."""
REACH_TOL = 0.015
"""Distance (m) at which a reach waypoint counts as reached (half of it for the descent)."""
GRIP_STEPS = 4
"""Control steps spent closing the fingers before pulling."""
LIFT = 0.1
"""Height (m) the grip point rises by after letting go of the open door."""


def lever_offset(angle: float) -> np.ndarray:
    """Displacement of the post centre when the lever is pressed down by ``angle`` (closed door)."""
    x0, z0 = -T.ARM_LENGTH, T.PIVOT_BELOW_HANDLE
    c, s = np.cos(angle), np.sin(angle)
    return np.array([x0 * c - z0 * s - x0, 0.0, x0 * s + z0 * c - z0])


class DoorExpert:
    """Reach, grip, press (lever doors), then swing the handle along the door's arc."""

    def __init__(self, task: DoorParams) -> None:
        self.task = task
        self.geom = T.geometry(task)
        self.press = task.handle == "lever"
        self.reset()

    def reset(self) -> None:
        """Start a new episode."""
        self.phase = "reach"
        self.count = 0
        self.target: np.ndarray | None = None
        self.rest: np.ndarray | None = None
        self.lift = np.zeros(3)

    def _arc(self, rest: np.ndarray, angle: float) -> np.ndarray:
        """Grip target at door opening ``angle``, about the hinge implied by the rest pose."""
        g = self.geom
        rel = np.array([-T.ARM_LENGTH, g.along * g.radius])
        hinge = rest[:2] - rel
        phi = g.sign * angle
        c, s = np.cos(phi), np.sin(phi)
        xy = hinge + np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1]])
        return np.array([xy[0], xy[1], rest[2] + HOLD_Z])

    def _rotated(self, offset: np.ndarray, angle: float) -> np.ndarray:
        """A closed-door offset turned with the door open by ``angle``."""
        phi = self.geom.sign * angle
        c, s = np.cos(phi), np.sin(phi)
        return np.array([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1], offset[2]])

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action ``[4]`` for one observation."""
        obs = np.asarray(obs, dtype=np.float64)
        ee, handle = obs[T.EE], obs[T.HANDLE]
        angle, lever = float(obs[T.ANGLE]), float(obs[T.LEVER])
        if self.target is None:
            self.target = ee.copy()
        if self.rest is None:
            self.rest = handle.copy()
        grip = -1.0
        if self.phase == "reach":
            goal = handle + np.array([0.0, 0.0, ABOVE])
            if np.linalg.norm(ee - goal) < REACH_TOL:
                self.phase = "descend"
        if self.phase == "descend":
            goal = handle + np.array([0.0, 0.0, HOLD_Z])
            if np.linalg.norm(ee - goal) < REACH_TOL / 2:
                self.phase = "press" if self.press else "grip"
        if self.phase == "press":
            # The palm pushes the post top down; the fingers stay open so the post moves freely.
            goal = handle + np.array([0.0, 0.0, HOLD_Z - PRESS_DEPTH])
            if lever > PRESS_ANGLE:
                self.phase = "grip"
        if self.phase == "grip":
            goal, grip = handle + np.array([0.0, 0.0, HOLD_Z]), GRIP
            if self.press:
                goal[2] -= PRESS_DEPTH
            self.count += 1
            if self.count > GRIP_STEPS:
                self.phase = "open"
        if self.phase == "open":
            grip = GRIP
            goal = self._arc(self.rest, min(max(angle, 0.0) + LEAD, GOAL))
            if self.press and angle < PRESSED_UNTIL:
                goal = goal + self._rotated(lever_offset(PRESS_TARGET), angle)
            if angle >= GOAL:
                self.phase = "release"
                self.lift = ee + np.array([0.0, 0.0, LIFT])
        if self.phase == "release":
            # The door is open: let go of the post and lift clear, so that the gripper neither
            # brakes a door still swinging nor holds it off its arc (both would trip the stop).
            goal = self.lift
        step = np.clip(goal - self.target, -gripper.MAX_STEP, gripper.MAX_STEP)
        new = np.clip(self.target + step, gripper.WORKSPACE_LOW, gripper.WORKSPACE_HIGH)
        action = (new - self.target) / gripper.MAX_STEP
        self.target = new
        return np.array([*action, grip])
