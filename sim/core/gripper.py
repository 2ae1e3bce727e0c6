"""The parallel-jaw gripper shared by every manipulation family, in numbers both engines use.

The gripper is commanded in end-effector space, as a robot controller would take it:
``action = (dx, dy, dz, grip)`` in [-1, 1]. ``dx, dy, dz`` move the position target of the grip
point by up to ``MAX_STEP`` metres per control step (clipped to the workspace); a joint-space PD
law (gains below, identical in MuJoCo and PyBullet) tracks it. ``grip`` is finger effort:
``grip * FINGER_FORCE_MAX`` newtons on each finger when closing (``grip > 0``), and
``grip * FINGER_OPEN_FORCE`` when opening; the finger drives saturate at those limits.

Control runs at ``CONTROL_HZ`` with ``SUBSTEPS`` physics steps of ``TIMESTEP`` in between.
"""

from __future__ import annotations

import numpy as np

from adapt_robot.sim.core.spec import Field, VectorSpec

TIMESTEP = 0.002
"""Physics step (s): 500 Hz, small enough for stable box/cylinder contacts under 100 N grips."""
SUBSTEPS = 25
"""Physics steps per control step."""
CONTROL_HZ = 1.0 / (TIMESTEP * SUBSTEPS)
"""Control rate (Hz): 20 Hz."""
MAX_STEP = 0.02
"""Largest target displacement per control step (m): 0.4 m/s."""
FINGER_FORCE_MAX = 120.0
"""Finger force limit (N) per finger."""
FINGER_OPEN_FORCE = 15.0
"""Opening force (N) at ``grip = -1``: opening needs no strength, and a gentle drive keeps the
fingers off their end stops."""
FINGER_OPEN = 0.05
"""Finger travel (m): 0 = fully open (10 cm between pads), 0.05 = pads touching."""
FINGER_DAMPING = 30.0
"""Viscous damping of each finger slide (N s/m)."""
KP = 4000.0
"""Proportional gain of the carriage PD law (N/m)."""
KV = 110.0
"""Derivative gain of the carriage PD law (N s/m)."""
CARRIAGE_FORCE_MAX = 200.0
"""Force limit of each carriage axis (N)."""
PALM_MASS = 0.6
FINGER_MASS = 0.1
WORKSPACE_LOW = np.array([-0.3, -0.3, 0.02])
"""Lower bound of the grip-point target (m); z keeps the fingertips 5 mm above the table."""
WORKSPACE_HIGH = np.array([0.3, 0.3, 0.45])
"""Upper bound of the grip-point target (m)."""

N_SENSORS = 10
"""Gripper part of every family's sensor vector, in this order:
``ee_pos[3]`` grip-point position (m), ``finger_q[2]`` finger closing travel (m),
``ee_vel[3]`` grip-point velocity (m/s), ``touch[2]`` normal force on each finger pad (N)."""
N_CTRL = 5
"""Gripper part of every family's control vector: target xyz (m), finger force L, R (N)."""


def gripper_control(action: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Advance the position ``target [B, 3]`` in place and return the control ``[B, 5]``."""
    target += action[:, :3] * MAX_STEP
    np.clip(target, WORKSPACE_LOW, WORKSPACE_HIGH, out=target)
    grip = action[:, 3:4]
    force = np.where(grip > 0, grip * FINGER_FORCE_MAX, grip * FINGER_OPEN_FORCE)
    return np.concatenate([target, force, force], axis=1)


ACTION_SPEC = VectorSpec(
    (
        Field(
            name="delta",
            size=3,
            low=-1.0,
            high=1.0,
            unit="1",
            doc=f"grip-point target displacement x {MAX_STEP} m per step",
        ),
        Field(
            name="grip",
            low=-1.0,
            high=1.0,
            unit="1",
            doc=f"finger effort: x {FINGER_FORCE_MAX:g} N closing, "
            f"x {FINGER_OPEN_FORCE:g} N opening",
        ),
    )
)
"""Action layout of every gripper family: end-effector commands, as a robot controller takes
them."""
