"""Scripted grasp expert: a memoryless controller on the observation, tuned with the true task.

It reads the object's pose and size from the observation (what any policy sees) and takes from
the task only what is hidden: the squeeze (between what mass and friction need and what the
break force allows) and where the centre of mass is (it grips above it).

The action is a function of the current observation alone: no timers, no remembered phase, no
remembered target. A memoryless policy can therefore clone it (behaviour cloning averages
actions that differ for the same observation, and a timer-driven expert gives many of those).
Each step the phase is decided from observed quantities:

- ``approach``: no firm contact and the grip point is above ``CLOSE_ZONE``: open the fingers and
  move to the grip point along a funnel (the further off in x-y, the higher it stays);
- ``close``: within ``CLOSE_ZONE`` of the grasp height: close gently, holding the height;
- ``lift``: both pads press on the object: squeeze with the task's grip and carry the object
  ``LIFT`` m up, towards ``HANDOVER_XY`` once it is off the table, then hold it there. The
  expert also stays in ``lift`` when, above the grasp height, its fingers are closed on nothing
  (the object slipped out): it does not regrasp, so a too weak grip leaves the object behind.

The position target the environment integrates is not observed; it is estimated from the grip
point's position and velocity, and moves are commanded relative to that estimate.
"""

from __future__ import annotations

import numpy as np

from sim.core import gripper
from sim.families.grasp import task as gt
from sim.families.grasp.reward import OBS_SPEC

_EE = OBS_SPEC.slice("ee_pos")
_VEL = OBS_SPEC.slice("ee_vel")
_OBJ = OBS_SPEC.slice("obj_pos")
_XAXIS = OBS_SPEC.slice("obj_xaxis")
_SIZE = OBS_SPEC.slice("obj_size")
_GAP = OBS_SPEC.index("pad_gap")
_HEIGHT = OBS_SPEC.index("obj_height")
_FORCE = OBS_SPEC.slice("pad_force")

APPROACH = 0.08
"""Height above the grasp height at which the gripper lines up over the object (m)."""
FUNNEL = 12.0
"""Slope of the approach funnel: metres of height kept per metre of x-y misalignment."""
ALIGNED = 0.003
"""x-y misalignment (m) under which the funnel lets the grip point down to the grasp height."""
CLOSE_ZONE = 0.004
"""Height above the grasp height (m) under which the fingers close."""
SLIPPED_ABOVE = 0.01
"""Height above the grasp height (m) from which fingers that are not open and touch nothing
mean the object slipped out during the lift."""
OPEN_GAP = 2.0 * gripper.FINGER_OPEN - 0.01
"""Pad gap (m) above which the fingers count as open."""
TOUCH = 1.0
"""Pad force (N) that means a finger has reached the object."""
CLOSE_FORCE = 8.0
"""Largest squeeze (N) while the fingers travel to the object; at most half the final grip,
so the impact stays below the break force."""
LIFT = 0.15
"""How far above the grasp height the expert lifts the grip point (m)."""
LIFT_SPEED = 0.5
"""Largest move while carrying the object, as a fraction of the largest target step."""
HANDOVER_XY = np.zeros(2)
"""Where (x, y, m) the object is carried: one fixed point for every task, so the carry phase
steers to an observed reference instead of holding a remembered position."""
HANDOVER_RISE = 0.02
"""Object height (m) over which the carry towards ``HANDOVER_XY`` ramps up from zero, so the
object is not dragged across the table."""
PALM = 0.055
"""Height of the palm's underside above the grip point (m), as in the gripper asset."""
PALM_GAP = 0.003
"""Clearance (m) the expert keeps between the palm and the top of a tall object."""
FRAGILE_HEADROOM = 0.4
"""Where in the safe window (slip limit .. break limit) a fragile object is squeezed."""


def expert_grip(task: gt.GraspParams) -> float:
    """Squeeze per pad (N): inside the safe window; robust objects get a firm grip."""
    low, high = gt.grip_window(task)
    if not task.fragile:
        return min(max(low, 0.5 * gripper.FINGER_FORCE_MAX), high)
    return low + FRAGILE_HEADROOM * (high - low)


def hold_height(half_height: float) -> float:
    """Grip-point height of the grasp, raised where the palm would rest on the object's top.

    :func:`~sim.families.grasp.task.grasp_height` keeps the palm clear only from half-heights of
    6.5 cm; between 5.5 and 6.5 cm the palm would otherwise press on the top.
    """
    return max(gt.grasp_height(half_height), 2.0 * half_height - PALM + PALM_GAP)


def target_estimate(obs: np.ndarray) -> np.ndarray:
    """The env's position target (m), which the observation does not hold, estimated.

    Under the carriage PD law the grip point trails its target by ``KV / KP`` times its velocity.
    """
    return obs[_EE] + (gripper.KV / gripper.KP) * obs[_VEL]


class GraspExpert:
    """Approach, close gently, then lift and carry: each step decided from the observation."""

    def __init__(self, task: gt.GraspParams, grip_force: float | None = None) -> None:
        self.task = task
        self.grip = expert_grip(task) if grip_force is None else grip_force
        self.com_x = task.com_x
        self.close = min(CLOSE_FORCE, 0.5 * self.grip)

    def reset(self) -> None:
        """Start a new episode (nothing to forget: the expert keeps no state)."""

    def grasp_point(self, obs: np.ndarray) -> np.ndarray:
        """Where the grip point holds the object: above its centre of mass, at grasp height."""
        o = np.asarray(obs, dtype=np.float64)
        point = o[_OBJ] + o[_XAXIS] * self.com_x
        point[2] = hold_height(float(o[_SIZE][2]))
        return point

    def phase(self, obs: np.ndarray) -> str:
        """``approach``, ``close`` or ``lift``, decided from ``obs`` alone."""
        o = np.asarray(obs, dtype=np.float64)
        if float(np.min(o[_FORCE])) * gripper.FINGER_FORCE_MAX > TOUCH:
            return "lift"
        height = o[_EE][2] - self.grasp_point(o)[2]
        if height < CLOSE_ZONE:
            return "close"
        if height > SLIPPED_ABOVE and o[_GAP] < OPEN_GAP:
            return "lift"
        return "approach"

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action ``[dx, dy, dz, grip]`` for one observation."""
        o = np.asarray(obs, dtype=np.float64)
        phase = self.phase(o)
        target = target_estimate(o)
        point = self.grasp_point(o)
        if phase == "approach":
            miss = float(np.linalg.norm(point[:2] - o[_EE][:2]))
            point[2] += float(np.clip(FUNNEL * (miss - ALIGNED), 0.0, APPROACH))
            return _action(point - target, 1.0, -1.0)
        if phase == "close":
            return _action(np.array([0.0, 0.0, point[2] - target[2]]), 1.0, self.close)
        carry = float(np.clip(o[_HEIGHT] / HANDOVER_RISE, 0.0, 1.0))
        move = np.array([*(carry * (HANDOVER_XY - target[:2])), point[2] + LIFT - target[2]])
        return _action(move, LIFT_SPEED, self.grip)


def _action(move: np.ndarray, speed: float, squeeze: float) -> np.ndarray:
    """Action moving the target by ``move`` (m, each axis capped at ``speed`` steps).

    ``squeeze`` is the finger force (N); a negative one opens the fingers with full effort.
    """
    step = np.clip(move / gripper.MAX_STEP, -speed, speed)
    grip = -1.0 if squeeze < 0 else squeeze / gripper.FINGER_FORCE_MAX
    return np.concatenate([step, [grip]])
