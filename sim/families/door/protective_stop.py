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
force limit is horizontal only, since pressing a lever down is a legitimate vertical push. A door
that is free to move in the direction it is pushed yields; the force builds when the handle is
pulled against a latch or dragged off its arc about the hinge (forcing the wrong hinge side;
along the fingers' closing axis the force-controlled fingers give way instead, so a sideways
drag of a closed door's post mostly pulls it out of the pinch: the grip is lost rather than the
stop tripped).

The frame. A closed door (opening angle ``< FRAME_ZONE``) driven into its frame, the way it does
not open (a pull door pushed, a push door pulled), takes the push on the frame's stop moulding,
which gives way above ``FRAME_FORCE``: damage, like a fragile object crushed, so the episode ends
the same way (the ``protective_stop`` entry, terminated). :func:`frame_load` is the part of the
gripper's push on the world, ``-F_ext``, turning the door shut about its hinge (a torque, so
that a push anywhere and in any direction counts), over the hinge-to-post radius. Every
door without a latch has a closer (:mod:`adapt_robot.sim.families.door.task`) that holds it shut
until 33-40 N are pushed or pulled the right way at the post, more than the frame takes the
wrong way: so a push the frame survives does not tell a closer's door's direction (it moves
neither way), and the first firm push is a commitment. One full-speed control step into a
blocked door (``MAX_STEP`` = 2 cm of target) builds ``KP * MAX_STEP`` = 80 N, well past the
frame's limit; pulling against a latch, the reflex trips in the second such step. A door that
sinks past its closed stop is observed at the stop
(:func:`adapt_robot.sim.families.door.task.at_stop`), so how far it sinks tells nothing either.

Thresholds. ``STOP_FORCE`` = 110 N lies above the scripted expert's peak horizontal force when
it is told the true door (91 N MuJoCo, 100 N PyBullet, pulling a closer's door, before success
on 48 train + 48 test doors of seeds 0 and 1). ``FRAME_FORCE`` = 30 N lies above its peak frame
load (23 N MuJoCo, 16 N PyBullet, pressing a push door's lever: the post turns in the pinch,
with a part of the press towards the robot; the estimate also carries the carriage's inertia,
~6 N) and below the 33 N a closer needs at least.
"""

from __future__ import annotations

import numpy as np

from adapt_robot.sim.core import gripper

STOP_FORCE = 110.0
"""Horizontal external-force limit (N) above which the protective stop trips (see above)."""
FRAME_FORCE = 30.0
"""Force (N) into the frame of a closed door above which the frame is damaged (see above)."""
FRAME_ZONE = 0.02
"""Door angle (rad) under which the door counts as closed, resting on its frame."""


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


def opening_torque(sensors: np.ndarray, target: np.ndarray, hinges: np.ndarray) -> np.ndarray:
    """Torque ``[B]`` (N m) the gripper's push turns each door open with (negative: closed).

    ``hinges [B, 4]``: axis x, axis y, sign, radius per door
    (:func:`adapt_robot.sim.families.door.task.hinge_rows`).
    The gripper pushes on the world with ``-F_ext`` at its grip point ``ee_pos``; the torque is
    taken about the door's hinge axis ``(0, 0, sign)``, so any push counts wherever it lands
    (the post, the panel's free edge) and in any horizontal direction (the post stands
    ``ARM_LENGTH`` in front of the hinge axis, so a sideways push turns the door too).
    """
    push = -external_force(sensors, target)
    arm = sensors[:, 0:2] - hinges[:, 0:2]
    torque_z = arm[:, 0] * push[:, 1] - arm[:, 1] * push[:, 0]
    return np.asarray(hinges[:, 2] * torque_z)


def frame_load(
    sensors: np.ndarray, target: np.ndarray, hinges: np.ndarray, door_angle: np.ndarray
) -> np.ndarray:
    """Load ``[B]`` (N at the post) the gripper drives a closed door into its frame with.

    The closing part of :func:`opening_torque` over the hinge-to-post radius, while the door
    rests on its frame (``door_angle < FRAME_ZONE``); 0 when it is open.
    """
    closing = np.maximum(-opening_torque(sensors, target, hinges), 0.0) / hinges[:, 3]
    return np.where(door_angle < FRAME_ZONE, closing, 0.0)


def tripped(
    sensors: np.ndarray, target: np.ndarray, hinges: np.ndarray, door_angle: np.ndarray
) -> np.ndarray:
    """Boolean ``[B]``: horizontal force over ``STOP_FORCE``, or frame load over ``FRAME_FORCE``."""
    reflex = horizontal_force(sensors, target) > STOP_FORCE
    return reflex | (frame_load(sensors, target, hinges, door_angle) > FRAME_FORCE)
