"""Protective stop of the door family: a force reflex that ends the episode, as a real arm's does.

A real arm's controller estimates the external force at the end effector from its joint torques
(libfranka reports it as ``O_F_ext_hat_K``) and stops the robot with a reflex when that estimate
crosses the collision thresholds set for each Cartesian axis (``setCollisionBehavior``); the
controller then reports the stop, and the motion must be restarted. Here that is the door's
``protective_stop``: a force limit on the *horizontal* external force at the grip point.

Force estimate (the same in both engines, from the sensors each reports). The carriage tracks
its position target with the PD law of :mod:`adapt_robot.sim.core.gripper`,
``F_pd = clip(KP (target - ee_pos) - KV ee_vel, +-CARRIAGE_FORCE_MAX)`` per axis (the engines
add gravity compensation on top, which the estimate leaves out). At the end of every control
step the family evaluates that law on the ``ee_pos`` and ``ee_vel`` sensors and the target held
during the step, and takes ``F_ext = -F_pd``: the force the world (handle, panel) exerts on the
gripper, up to the carriage's inertia (0.8 kg: about 6 N at the fastest start from rest).

The stop. Whenever ``|F_ext[x, y]| > STOP_FORCE`` the stop trips: the ``protective_stop``
observation entry becomes 1 and the episode terminates (no further reward, no success). Its
force limit is horizontal only, since pressing a lever down is a legitimate vertical push of up
to ~80 N on the post top. A door that is free to move in the direction it is pushed yields;
the force only builds when the handle is pushed or pulled against a blocked direction: pushing a
pull door or pulling a push door (its closed stop), pulling a latched door, or dragging the
handle off its arc about the hinge (forcing the wrong hinge side; along the fingers' closing
axis the force-controlled fingers give way instead, so a sideways drag of a closed door's post
mostly pulls it out of the pinch: the grip is lost rather than the stop tripped). With the
door blocked, one
full-speed control step (``MAX_STEP`` = 2 cm of target) builds ``KP * MAX_STEP`` = 80 N, past
the limit: a robot cannot probe the wrong way at speed.

Threshold. ``STOP_FORCE`` = 70 N lies above the scripted expert's peak horizontal force when it
is told the true door (47 N MuJoCo, 51 N PyBullet, before success on 48 train + 48 test doors of
seeds 0 and 1; it presses a lever with the post held in the pinch, not with the palm on the post
top, which took ~53 N) and below the 80 N of one blocked full-speed step.
"""

from __future__ import annotations

import numpy as np

from adapt_robot.sim.core import gripper

STOP_FORCE = 70.0
"""Horizontal external-force limit (N) above which the protective stop trips (see above)."""


def external_force(sensors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Estimated external force ``[B, 3]`` (N) on the grip point, from sensors ``[B, S]``.

    ``sensors`` hold the gripper's ``ee_pos`` (columns 0-2) and ``ee_vel`` (columns 5-7), as
    every engine reports them; ``target [B, 3]`` is the carriage position target held during
    the step. The estimate is minus the carriage PD force (see the module docstring).
    """
    ee, vel = sensors[:, 0:3], sensors[:, 5:8]
    pd = gripper.KP * (target - ee) - gripper.KV * vel
    limit = gripper.CARRIAGE_FORCE_MAX
    return -np.clip(pd, -limit, limit)


def horizontal_force(sensors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Magnitude ``[B]`` (N) of the horizontal (x, y) part of :func:`external_force`."""
    return np.linalg.norm(external_force(sensors, target)[:, :2], axis=1)


def tripped(sensors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Boolean ``[B]``: the horizontal external force exceeds ``STOP_FORCE``."""
    return horizontal_force(sensors, target) > STOP_FORCE
