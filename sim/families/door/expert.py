"""Scripted door expert: a memoryless control law on the observation, told four parameters.

The action is a function of the current observation and ``theta`` alone (:func:`door_law`): no
phase variable, no step counter, no remembered target or rest pose. The hidden parameters reach
the actions only through ``theta`` (:data:`LAW_PARAMS`)::

    theta = [hinge, opens, press, width]

- ``hinge`` in [-1, 1]: +1 hinge on the robot's left (+y), -1 on its right (-y);
- ``opens`` in [-1, 1]: +1 push (the door opens away from the robot), -1 pull;
- ``press`` in [-1, 1]: > 0 press the lever down before opening (latched doors: it releases the
  latch), <= 0 open at once (knobs, and unlatched levers);
- ``width`` in [0.2, 0.34] m: the door's width, which gives the radius of the handle's arc.

The two direction entries act by their sign; from ``SIGN_FULL`` = 0.5 of magnitude on the law
is the full behaviour, and nearer 0 it blends continuously: ``opens`` scales the push or pull
along the arc (at 0 the law holds the handle and opens nothing, so a door is never forced),
and ``hinge`` scales the arc's curvature (at 0 the law moves the handle on a straight line,
as if the door were infinitely wide: right for the first few degrees of either side, then it
drags the handle off its arc). ``press`` acts by its sign alone (0 does not press).

Each step the phase is decided from observed quantities, in this order:

- ``release``: the door is open past ``GOAL`` (or past the success angle with the grip point
  at the edge of the workspace, ``EDGE``), or past ``RELEASED_ANGLE`` with the fingers off
  the post and the grip point ``RELEASED_RISE`` above the handle (the law already let go):
  open the fingers and lift ``LIFT`` above the handle (holding a door that still swings would
  brake it or drag it off its arc, and trip the protective stop);
- ``press`` (``press > 0``): both pads squeeze the post, the lever is up (< ``PRESS_ANGLE``)
  and the door nearly closed (< ``PRESSED_UNTIL``): move the post down along the lever's arc;
- ``open``: both pads squeeze the post: move it along the door's arc ``LEAD`` metres ahead of
  where it is, the lever held pressed (``press > 0``) until the door is past ``PRESSED_UNTIL``;
- ``close``: the grip point is at the handle (within ``AT_XY`` across and below
  ``HOLD_Z + AT_Z``): close the fingers on the post;
- ``approach``: open fingers, move to the handle along a funnel (the further off in x-y, the
  higher above the handle it stays, so the fingers come down on either side of the post).

The env's position target is not observed; it is estimated from the grip point's position and
velocity (:func:`target_estimate`), and moves are commanded relative to that estimate. While the
post is held, moves are commanded as the displacement the post needs, not as a grip-point goal:
the post sits in the pinch wherever it was caught, and a goal for the grip point would keep
pulling it towards the pinch centre. The hinge and the arc are computed from the observed
handle position and lever and door angles with the ``theta`` side, direction and width, so no
rest pose is remembered. The lever is pressed with the post in the pinch (the post turns in
it about a point ``PINCH`` above the handle), not with the palm on the post top (a palm that
slides on the post top while the post tilts drags the gripper sideways with the friction of
the press force, which a memoryless law cannot bound).
"""

from __future__ import annotations

import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.families.door import task as T
from adapt_robot.sim.families.door.task import DoorParams

_EE = T.EE
_VEL = T.OBS_SPEC.slice("ee_vel")
_TOUCH = T.OBS_SPEC.slice("touch")
_HANDLE = T.HANDLE
_ANGLE = T.ANGLE
_LEVER = T.LEVER

ABOVE = 0.07
"""Approach height of the grip point above the handle (m), kept until it is over the post."""
FUNNEL = 12.0
"""Slope of the approach funnel: metres of height kept per metre of x-y misalignment."""
ALIGNED = 0.003
"""x-y misalignment (m) under which the funnel lets the grip point down to the handle."""
HOLD_Z = 0.003
"""The grip point closes on the post this far above the handle centre (the palm clears its top)."""
AT_XY = 0.015
"""x-y distance (m) from the handle within which the grip point counts as at the handle."""
AT_Z = 0.0075
"""Height (m) above ``HOLD_Z`` under which the grip point counts as down at the handle."""
GRIP = 1.0
"""Grip effort while holding the post (120 N per finger: a closer's door is pulled with up to
~90 N, and the post must not be pulled out of the pinch)."""
PRESS_GRIP = 0.35
"""Grip effort while pressing a lever (42 N per finger, above ``TOUCH_FIRM``'s 36 N): the post
turns in the pinch as the lever goes down, and a lighter pinch lets it turn with less force,
whose part towards the robot drives a closed push door into its frame
(``protective_stop.FRAME_FORCE``: the press peaks at 23 N of frame load, 38 N with the full
grip)."""
TOUCH_FIRM = 0.3
"""Pad force (fraction of ``FINGER_FORCE_MAX``: 36 N) on both pads that means the post is held."""
PRESS_LEVEL = 0.52
"""Lever angle (rad) the law presses a lever to and holds while the door starts to open."""
PRESS_ANGLE = 0.42
"""Lever angle (rad, past ``LEVER_UNLATCH`` = 0.3) from which the door is opened."""
LEVER_LEAD = 0.15
"""While pressing, the post is moved to where it is with the lever this much further down (rad)."""
PINCH = 0.02
"""Height (m) above the handle centre of the point of the post the law moves along the lever's
arc: about where the post turns in the pinch (the middle of its overlap with the pads), so the
post turns in the pinch without sliding and comes back to its place when the lever is let up."""
PRESSED_UNTIL = 0.12
"""Door angle (rad) after which the lever is let up (the latch zone ends at 0.1). Early: pulled
towards the robot above its pivot a pressed lever turns further down, and letting it up later,
under the pull a closer's door needs, pulled the post out of the pinch (at 0.2 rad, MuJoCo)."""
LEAD = 0.025
"""How far ahead (m of arc) of its present position the post is sent each step while opening.
The law integrates (the env adds each step to its target), so this sets the opening speed,
about ``LEAD / (1 / CONTROL_HZ + KV / KP)`` = 0.32 m/s, not a force."""
GOAL = float(np.deg2rad(68.0))
"""Opening angle (rad) at which the law lets go (success is at 60 degrees)."""
LIFT = 0.1
"""Height (m) above the handle the grip point rises to after letting go."""
RELEASED_ANGLE = 0.2
"""Door angle (rad) past which a grip point high above the handle with the pads off the post
means the law has let go: it stays in ``release`` while a sprung door swings back, down to this
angle (a memoryless law cannot tell that it already opened the door)."""
RELEASED_RISE = 0.04
"""Height (m) above the handle from which the grip point counts as lifted clear."""
EDGE = 0.005
"""Distance (m) from a horizontal workspace bound at which the grip point counts as at the edge:
past the success angle the law then lets go (the door cannot follow its arc any further, and
pulling on would wind the target up into a protective stop)."""
_REACH_X = (float(gripper.WORKSPACE_LOW[0]) + EDGE, float(gripper.WORKSPACE_HIGH[0]) - EDGE)
_REACH_Y = (float(gripper.WORKSPACE_LOW[1]) + EDGE, float(gripper.WORKSPACE_HIGH[1]) - EDGE)
"""Horizontal workspace inside ``EDGE`` (Python floats: a traced law must not read arrays)."""
SIGN_FULL = 0.5
"""Magnitude of the ``hinge`` and ``opens`` entries from which the law acts fully on their sign."""

LAW_PARAMS = ("hinge", "opens", "press", "width")
"""The expert's behaviour parameters, the only way the hidden parameters reach its actions:
hinge side (+1 left, -1 right), opening direction (+1 push, -1 pull), press the lever first
(> 0) or not, and the door width (m)."""
WIDTH_RANGE = (0.2, 0.34)
"""Bounds of the ``width`` entry (m): the range of ``DoorParams.width``."""
LAW_LOW = np.array([-1.0, -1.0, -1.0, WIDTH_RANGE[0]])
"""Lowest ``theta`` of :func:`door_law`."""
LAW_HIGH = np.array([1.0, 1.0, 1.0, WIDTH_RANGE[1]])
"""Highest ``theta`` of :func:`door_law`."""
_HALF_VEL = gripper.KV / gripper.KP
"""Seconds of velocity by which the grip point trails its target under the carriage PD law."""


def law_params(task: DoorParams) -> np.ndarray:
    """``[hinge, opens, press, width]`` the expert uses for ``task`` (privileged).

    It presses only a latched lever: an unlatched lever needs no press, and on a closer's door
    (every unlatched one) a pressed lever under the strong pull slipped out of the pinch on 1 of
    192 doors (MuJoCo, seeds 0 and 1, both splits); unpressed, none did.
    """
    return np.array(
        [
            1.0 if task.hinge_side == "left" else -1.0,
            1.0 if task.opens == "push" else -1.0,
            1.0 if task.latched else -1.0,
            task.width,
        ]
    )


WIDTH_TOL = 0.02
"""Error (m) in the width :func:`law_window` allows. Measured on 48 train + 48 test doors: the
law told the true door but a width 2 cm off opens 100% of them (MuJoCo, seeds 0 and 2; PyBullet,
seed 2); 3 cm too narrow: 97.9% of train doors (MuJoCo, seed 2)."""


def law_window(task: DoorParams) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest ``theta`` with which the law opens ``task`` (privileged).

    The hinge, direction and press entries need the right sign and at least ``SIGN_FULL`` of
    magnitude (measured: 100% at 0.5, same doors as ``WIDTH_TOL``); the width within
    ``WIDTH_TOL``. (An unlatched lever also opens pressed, but not always: see
    :func:`law_params`.)
    """
    theta = law_params(task)
    lo = np.array([*(np.minimum(theta[:3] * SIGN_FULL, theta[:3])), theta[3] - WIDTH_TOL])
    hi = np.array([*(np.maximum(theta[:3] * SIGN_FULL, theta[:3])), theta[3] + WIDTH_TOL])
    return np.clip(lo, LAW_LOW, LAW_HIGH), np.clip(hi, LAW_LOW, LAW_HIGH)


def target_estimate(obs: np.ndarray) -> np.ndarray:
    """The env's position target (m), which the observation does not hold, estimated.

    Under the carriage PD law the grip point trails its target by ``KV / KP`` times its velocity
    (plus the external force over ``KP``, which the observation does not give).
    """
    return obs[..., _EE] + _HALF_VEL * obs[..., _VEL]


def _post_point(lever: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Door-frame (x, z) displacement of the post point ``PINCH`` above the handle centre.

    With the lever pressed down by ``lever`` rad, from where that point is with the lever at rest.
    """
    c, s = np.cos(lever), np.sin(lever)
    up = T.PIVOT_BELOW_HANDLE + PINCH
    return T.ARM_LENGTH * (1.0 - c) - up * s, up * (c - 1.0) - T.ARM_LENGTH * s


def _sinc(x: np.ndarray) -> np.ndarray:
    """``sin(x) / x`` by its series (|x| <= 0.2 here: error < 1e-10), defined at 0."""
    x2 = x * x
    return 1.0 - x2 / 6.0 + x2 * x2 / 120.0 - x2 * x2 * x2 / 5040.0


def _signs(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Soft hinge and direction signs ``[B, 1]``, the press mask and the arc radius (m)."""
    hinge = np.clip(theta[:, 0:1] / SIGN_FULL, -1.0, 1.0)
    opens = np.clip(theta[:, 1:2] / SIGN_FULL, -1.0, 1.0)
    press = theta[:, 2:3] > 0.0
    radius = np.maximum(theta[:, 3:4] - T.HANDLE_INSET, 0.1)
    return hinge, opens, press, radius


def _phases(
    o: np.ndarray, press: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Masks ``[B, 1]``: release, press, open, close (else approach), and lever-held (early)."""
    ee, handle = o[:, _EE], o[:, _HANDLE]
    angle, lever = o[:, _ANGLE : _ANGLE + 1], o[:, _LEVER : _LEVER + 1]
    rel = ee - handle
    miss = np.sqrt(rel[:, 0:1] ** 2 + rel[:, 1:2] ** 2)
    height = rel[:, 2:3]
    holding = np.min(o[:, _TOUCH], axis=1, keepdims=True) > TOUCH_FIRM
    edge = (
        (ee[:, 0:1] < _REACH_X[0])
        | (ee[:, 0:1] > _REACH_X[1])
        | (ee[:, 1:2] < _REACH_Y[0])
        | (ee[:, 1:2] > _REACH_Y[1])
    )
    done = (angle >= GOAL) | ((angle >= T.SUCCESS_ANGLE) & edge)
    released = done | ((angle >= RELEASED_ANGLE) & (height > RELEASED_RISE) & ~holding)
    early = press & (angle < PRESSED_UNTIL)
    pressing = holding & early & (lever < PRESS_ANGLE) & ~released
    opening = holding & ~pressing & ~released
    at_handle = (miss < AT_XY) & (height < HOLD_Z + AT_Z)
    closing = at_handle & ~holding & ~released
    return released, pressing, opening, closing, early, miss


def door_law(obs: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The expert's control law, batched: actions ``[B, 4]`` for ``obs [B, O]``, ``theta [B, 4]``.

    ``theta`` is ``[hinge, opens, press, width]`` per row (:data:`LAW_PARAMS`). Branch-free numpy
    (phases by ``np.where``, Python-float constants only), so TorchDynamo traces it into
    ``policy.onnx`` for the control-law policy. See the module docstring for the phases.
    """
    o = obs.astype(np.float64)
    hinge, opens, press, radius = _signs(theta.astype(np.float64))
    released, pressing, opening, closing, early, miss = _phases(o, press)
    ee, vel, handle = o[:, _EE], o[:, _VEL], o[:, _HANDLE]
    angle, lever = o[:, _ANGLE : _ANGLE + 1], o[:, _LEVER : _LEVER + 1]
    target = ee + _HALF_VEL * vel
    # The door frame: turned by the opening angle about the hinge (sign: side times direction).
    turn = hinge * opens * angle
    c, s = np.cos(turn), np.sin(turn)
    now_x, now_z = _post_point(lever)

    def post_move(lever_goal: np.ndarray, lead: float) -> np.ndarray:
        """Move ``[B, 3]`` taking the post point to lever ``lever_goal``, ``lead`` m on its arc."""
        goal_x, goal_z = _post_point(lever_goal)
        arm = T.ARM_LENGTH - goal_x  # the point's distance in front of the panel
        arc = opens * lead  # signed arc length (+ push)
        turn_by = hinge * arc / radius  # door-frame turn (rad), 0 on a straight line
        # Chord of the arc of radius ``radius / |hinge|`` about the hinge behind the panel.
        dx = arm * (1.0 - np.cos(turn_by)) + arc * _sinc(turn_by) + goal_x - now_x
        dy = hinge * arc * arc / (2.0 * radius) * _sinc(0.5 * turn_by) ** 2 - arm * np.sin(turn_by)
        world = np.concatenate([c * dx - s * dy, s * dx + c * dy, goal_z - now_z], axis=1)
        return world - _HALF_VEL * vel

    zero = np.zeros_like(miss)
    press_move = post_move(np.minimum(lever + LEVER_LEAD, PRESS_LEVEL), 0.0)
    open_move = post_move(np.where(early, zero + PRESS_LEVEL, zero), LEAD)
    raise_z = np.clip(FUNNEL * (miss - ALIGNED), 0.0, ABOVE)
    approach_move = handle + np.concatenate([zero, zero, HOLD_Z + raise_z], axis=1) - target
    close_move = handle + np.concatenate([zero, zero, zero + HOLD_Z], axis=1) - target
    lift = handle[:, 2:3] + (HOLD_Z + LIFT) - target[:, 2:3]
    release_move = np.concatenate([zero, zero, lift], axis=1)
    move = np.where(
        released,
        release_move,
        np.where(
            opening,
            open_move,
            np.where(pressing, press_move, np.where(closing, close_move, approach_move)),
        ),
    )
    # Array branches (not Python floats) keep a traced law in float64.
    grip = np.where(opening | closing, zero + GRIP, zero - 1.0)
    grip = np.where(pressing, zero + PRESS_GRIP, grip)
    return np.concatenate([np.clip(move / gripper.MAX_STEP, -1.0, 1.0), grip], axis=1)


PHASES = ("approach", "close", "press", "open", "release")
"""Phase names of :meth:`DoorExpert.phase`."""


class DoorExpert:
    """Reach, grip, press a lever, open along the arc: :func:`door_law` told the task's theta."""

    def __init__(self, task: DoorParams) -> None:
        self.task = task
        self.theta = law_params(task)[None]

    def reset(self) -> None:
        """Start a new episode (nothing to forget: the expert keeps no state)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action ``[dx, dy, dz, grip]`` for one observation."""
        out: np.ndarray = door_law(np.asarray(obs, dtype=np.float64)[None], self.theta)[0]
        return out

    def phase(self, obs: np.ndarray) -> str:
        """The phase :func:`door_law` is in for ``obs`` (one of :data:`PHASES`)."""
        o = np.asarray(obs, dtype=np.float64)[None]
        released, pressing, opening, closing, _, _ = _phases(o, self.theta[:, 2:3] > 0.0)
        for name, mask in (
            ("release", released),
            ("press", pressing),
            ("open", opening),
            ("close", closing),
        ):
            if bool(mask[0, 0]):
                return name
        return "approach"
