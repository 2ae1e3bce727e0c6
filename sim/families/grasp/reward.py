"""Grasp observation layout, and reward / success / termination as pure numpy functions of it.

Reward of a transition ``(obs, action, next_obs)``, every term read from ``next_obs``:

- reach ``0.5 * (1 - tanh(10 d))`` with ``d`` the distance from grip point to object (m);
- contact ``+0.5`` when both pads press on something with more than ``CONTACT_FORCE`` N;
- lift ``2 * clip(height / LIFT_HEIGHT, 0, 1.5)`` with ``height`` above the object's rest;
- hold ``+0.1`` per second of the lift timer (up to ``TIMER_CAP``);
- success bonus ``+5`` when the object has been held ``HOLD_TIME`` s at ``LIFT_HEIGHT``;
- break penalty ``-10`` on the step the object breaks (the episode then terminates).

Every function takes arrays with a leading batch axis (or a single vector) and needs nothing a
robot could not measure, so it runs on-line and exports to ONNX.
"""

from __future__ import annotations

import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.spec import Field, VectorSpec
from adapt_robot.sim.families.grasp.task import SHAPES

LIFT_HEIGHT = 0.10
"""Height above rest the object must reach (m)."""
HOLD_TIME = 1.0
"""Seconds it must stay there."""
TIMER_CAP = 2.0
"""The lift timer stops counting here (s)."""
CONTACT_FORCE = 1.0
"""Pad force (N) that counts as contact."""
FORCE_SCALE = gripper.FINGER_FORCE_MAX
"""Pad forces are divided by this (N) in the observation."""
_W = gripper.WORKSPACE_LOW, gripper.WORKSPACE_HIGH

OBS_SPEC = VectorSpec(
    (
        Field(
            name="ee_pos",
            size=3,
            low=-0.5,
            high=0.5,
            unit="m",
            doc="grip-point position (carriage encoders)",
        ),
        Field(
            name="finger_q",
            size=2,
            low=0.0,
            high=gripper.FINGER_OPEN,
            unit="m",
            doc="closing travel of the left and right finger (0 = open)",
        ),
        Field(
            name="pad_gap",
            low=0.0,
            high=2 * gripper.FINGER_OPEN,
            unit="m",
            doc="distance between the pads (0.1 - both travels)",
        ),
        Field(name="ee_vel", size=3, low=-5.0, high=5.0, unit="m/s", doc="grip-point velocity"),
        Field(
            name="obj_pos",
            size=3,
            low=-1.0,
            high=1.0,
            unit="m",
            doc="object frame position (camera / pose tracker)",
        ),
        Field(
            name="obj_rel",
            size=3,
            low=-2.0,
            high=2.0,
            unit="m",
            doc="object position minus grip-point position",
        ),
        Field(
            name="obj_xaxis",
            size=3,
            low=-1.0,
            high=1.0,
            unit="1",
            doc="object x axis in world (first column of its rotation)",
        ),
        Field(
            name="obj_zaxis",
            size=3,
            low=-1.0,
            high=1.0,
            unit="1",
            doc="object z axis in world (third column of its rotation)",
        ),
        Field(
            name="obj_vel",
            size=3,
            low=-5.0,
            high=5.0,
            unit="m/s",
            doc="object frame linear velocity",
        ),
        Field(
            name="obj_size",
            size=3,
            low=0.0,
            high=0.1,
            unit="m",
            doc="half-extents x, y, z of the object's main part (camera)",
        ),
        Field(
            name="shape",
            size=len(SHAPES),
            low=0.0,
            high=1.0,
            unit="1",
            doc="one-hot of " + ", ".join(SHAPES) + " (camera)",
        ),
        Field(
            name="obj_height",
            low=-0.5,
            high=1.0,
            unit="m",
            doc="object height above its rest height (obj_pos z - obj_size z)",
        ),
        Field(
            name="pad_force",
            size=2,
            low=0.0,
            high=5.0,
            unit="1",
            doc=f"normal force on the left and right pad / {FORCE_SCALE:g} N",
        ),
        Field(
            name="lift_timer",
            low=0.0,
            high=TIMER_CAP,
            unit="s",
            doc=f"seconds the object has stayed >= {LIFT_HEIGHT} m up, unbroken (capped)",
        ),
        Field(
            name="broken",
            low=0.0,
            high=1.0,
            unit="1",
            doc="1 once the object has been crushed (latched)",
        ),
    )
)
"""Observation layout, index by index (identical in MuJoCo and PyBullet)."""

ACTION_SPEC = gripper.ACTION_SPEC
"""Action layout: the gripper's commands (:data:`adapt_robot.sim.core.gripper.ACTION_SPEC`)."""

I_REL = OBS_SPEC.slice("obj_rel")
I_HEIGHT = OBS_SPEC.index("obj_height")
I_FORCE = OBS_SPEC.slice("pad_force")
I_TIMER = OBS_SPEC.index("lift_timer")
I_BROKEN = OBS_SPEC.index("broken")


def success(next_obs: np.ndarray) -> np.ndarray:
    """Held ``HOLD_TIME`` s at ``LIFT_HEIGHT``, unbroken."""
    o = np.asarray(next_obs)
    return (o[..., I_TIMER] >= HOLD_TIME - 1e-4) & (o[..., I_BROKEN] < 0.5)


def terminated(next_obs: np.ndarray) -> np.ndarray:
    """The object is broken."""
    return np.asarray(next_obs)[..., I_BROKEN] > 0.5


def reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Shaped reward of a transition (see the module docstring)."""
    del action
    o, n = np.asarray(obs), np.asarray(next_obs)
    dist = np.linalg.norm(n[..., I_REL], axis=-1)
    reach = 0.5 * (1.0 - np.tanh(10.0 * dist))
    contact = 0.5 * np.all(n[..., I_FORCE] * FORCE_SCALE > CONTACT_FORCE, axis=-1)
    lift = 2.0 * np.clip(n[..., I_HEIGHT] / LIFT_HEIGHT, 0.0, 1.5)
    hold = 0.1 * n[..., I_TIMER]
    bonus = 5.0 * success(n)
    broke = 10.0 * ((n[..., I_BROKEN] > 0.5) & (o[..., I_BROKEN] < 0.5))
    return reach + contact + lift + hold + bonus - broke
