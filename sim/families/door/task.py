"""Door task parameters, their splits, the door geometry, the observation layout and the reward.

The door is a vertical panel in front of the gripper, hinged about a vertical axis at one of its
edges. The handle is a short vertical post (the part the fingers close around) at the free end of
a horizontal arm that sticks out of the panel towards the robot. On ``lever`` doors the arm is a
lever that turns down about a horizontal pivot on the panel face (it must be pressed down by at
least ``LEVER_UNLATCH`` rad before a latch releases, when the door is latched); on ``knob`` doors
the same arm is held rigid by a stiff spring (a pull knob with no latch). The panel's top edge sits
just above the handle, so the downward-pointing gripper's palm clears it at any opening angle.

World frame: x away from the robot, y to the robot's left, z up (m, kg, N, s, rad). ``push`` doors
open towards +x, ``pull`` doors towards -x. The door angle is the *opening* angle (0 closed, > 0
open, in either direction); the hinge joint's axis is flipped per task so that it is.

Every door without a latch is held shut by a closer: a constant closing torque ``closer`` (N m)
on top of the spring, ``CLOSER_FORCE`` (33-40 N) at the post, more than the frame takes when the
door is driven the wrong way into it (``protective_stop.FRAME_FORCE``, 30 N). A latched door has
no closer (its latch holds it) and moves under a light push once the lever is pressed.

Reward (pure numpy on observations and actions, computable on the robot)::

    r = W_REACH * (1 - tanh(REACH_SCALE * |handle - grip point|))
      + W_OPEN * clip(angle' / SUCCESS_ANGLE, 0, 1)
      + W_PROGRESS * (clip(angle', 0, SUCCESS_ANGLE) - clip(angle, 0, SUCCESS_ANGLE))
      + W_SUCCESS * [angle' >= SUCCESS_ANGLE]
      - W_STOP * protective_stop'
      - W_ACTION * |a_xyz|^2

with ``angle`` the door angle in ``obs`` and ``angle'``, ``protective_stop'`` in ``next_obs``.
A protective stop (:mod:`adapt_robot.sim.families.door.protective_stop`: the horizontal force at the
grip point above 110 N, or a closed door driven into its frame with more than 30 N) also ends the
episode (:func:`terminated`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.family import Split
from adapt_robot.sim.core.params import TaskParams, param
from adapt_robot.sim.core.spec import Field, VectorSpec

# --- geometry shared by both engines (m, kg) --------------------------------------------------
PANEL_THICKNESS = 0.02
"""Door panel thickness; the hinge axis lies on the panel's robot-side face."""
PANEL_BOTTOM = 0.01
"""Height of the panel's lower edge above the floor (it never touches the floor)."""
PANEL_TOP_ABOVE_HANDLE = 0.02
"""The panel's top edge is this far above the handle centre."""
HANDLE_INSET = 0.04
"""Distance from the handle post to the panel's free (latch) edge."""
ARM_LENGTH = 0.06
"""Horizontal arm (lever) from the panel face to the post axis, towards the robot."""
ARM_HALF = (0.008, 0.006)
"""Half width (along the panel) and half height of the arm."""
POST_RADIUS = 0.012
"""Radius of the handle post (a vertical capsule)."""
PIVOT_BELOW_HANDLE = 0.03
"""The lever pivot (arm centre line) is this far below the handle centre, the point of the post
the grip point holds (the ``handle_pos`` sensor)."""
POST_BOTTOM, POST_TOP = 0.006, PIVOT_BELOW_HANDLE + 0.055 - POST_RADIUS
"""Post capsule segment ends above the lever pivot (the caps add ``POST_RADIUS``): the top cap
reaches 55 mm above the handle centre, the height of the palm's underside when the grip point is
at the handle, so the palm pushes a lever down by the post top."""
PANEL_MASS = 1.5
ARM_MASS = 0.05
"""Mass of the arm (lever), centred half-way along it."""
ARM_INERTIA = (1e-5, 3e-5, 3e-5)
"""Arm principal inertia (kg m^2) about its centre, axes parallel to the world axes."""
POST_MASS = 0.05
"""Mass of the post, centred at the handle centre."""
POST_INERTIA = (2e-5, 2e-5, 2e-5)
"""Post inertia (kg m^2), rounded up from the capsule's for stable contacts in both engines."""
GRAVITY = 9.81
POST_SOLREF = 0.004
"""MuJoCo contact time constant of the post (s): stiff, so a 120 N pinch sinks about 1 mm."""

# --- joints (identical laws in both engines) --------------------------------------------------
HINGE_RANGE = 1.75
"""Opening range of the door (rad, ~100 deg); 0 is the closed stop."""
HINGE_LIMIT_SOLREF = 0.004
"""MuJoCo time constant (s) of the hinge's closed stop: stiff, so that how far a door sinks into
its frame stays small: with the default 0.02 s a closer's door held with 25 N either way sat
1.9 and 6.4 mrad past closed (1.2 mm apart at the handle); with 0.004 s, 0.15 and 0.46 mrad
(0.08 mm). What is left (also in PyBullet, up to ~0.6 mrad) is hidden from the observation by
:func:`at_stop`."""
LEVER_RANGE = 0.6
"""Lever travel (rad): 0 at rest, up to 0.6 pressed down."""
LEVER_LOW = -0.1
"""Lower stop of the lever (rad); the lever rests at 0, clear of it."""
LEVER_STIFFNESS = 1.5
"""Lever return spring (N m/rad): ~17 N at the post to press the lever fully."""
KNOB_STIFFNESS = 40.0
"""Spring holding a knob's arm rigid (N m/rad): a 60 N horizontal pull turns it < 0.05 rad."""
LEVER_DAMPING = 0.01
"""Viscous damping of the lever (N m s/rad)."""
SWIVEL_DAMPING = 0.002
"""The post swivels about its own axis on the arm (so a gripper that cannot turn its wrist
holds it while the door turns); viscous damping of that swivel (N m s/rad)."""
LEVER_GRAVITY_TORQUE = GRAVITY * (ARM_MASS * ARM_LENGTH / 2 + POST_MASS * ARM_LENGTH)
"""Torque of gravity pressing the lever down at rest (N m); the return spring's rest angle is
set so that it balances it at 0."""
LEVER_UNLATCH = 0.3
"""Lever angle (rad) above which the latch is released."""
LATCH_ZONE = 0.1
"""Door angle (rad) below which a latched door is held by the latch."""
LATCH_STIFFNESS = 2000.0
"""Latch torque per rad of opening (N m/rad) while engaged: the gripper cannot force it."""
LATCH_DAMPING = 10.0
"""Latch damping (N m s/rad) while engaged."""

# --- task ranges ------------------------------------------------------------------------------
WIDTH_TRAIN = (0.22, 0.30)
WIDTH_TEST = (0.30, 0.34)
"""Test doors are wider than any training door (left-open at 0.30: that width is train)."""
DAMPING_TRAIN = (0.5, 4.0)
DAMPING_TEST = (0.5, 8.0)
SPRING_TRAIN = (0.0, 3.0)
SPRING_TEST = (0.0, 5.0)
FRICTION_RANGE = (0.0, 1.0)
CLOSER_FORCE = (33.0, 40.0)
"""Static force (N) at the handle post a closer needs before its door moves (its preload torque
is this times the hinge-to-post radius; the hinge's dry friction adds up to 1 N m, so 33-45 N in
all): above ``FRAME_FORCE``, so a closed door with a closer does not move under any push that is
safe the wrong way (both are torques about the hinge, so this holds wherever and however the
door is pushed; see ``protective_stop``)."""
HANDLE_X = (-0.05, -0.02)
HANDLE_Y = (-0.07, 0.07)
HANDLE_Z = (0.10, 0.28)

SUCCESS_ANGLE = float(np.deg2rad(60.0))
"""Success: opening angle >= 60 degrees."""
W_REACH, REACH_SCALE = 0.5, 10.0
W_OPEN = 1.0
W_PROGRESS = 5.0
W_SUCCESS = 2.0
W_ACTION = 0.01
W_STOP = 5.0
"""Penalty of the transition that trips the protective stop (the episode then ends)."""
TOUCH_MAX = 10.0
"""Normalised pad forces are clipped to this many ``FINGER_FORCE_MAX``."""


@dataclass(frozen=True, kw_only=True)
class DoorParams(TaskParams):
    """One door: geometry, handle, hinge side, opening direction and hinge dynamics."""

    hinge_side: str = param(
        doc="hinge on the robot's 'left' (+y) or 'right' (-y) of the handle",
        choices=("left", "right"),
        hidden=True,
    )
    opens: str = param(
        doc="'push' opens away from the robot (+x), 'pull' towards it (-x)",
        choices=("push", "pull"),
        hidden=True,
    )
    handle: str = param(
        doc="'lever' (turns down, may be latched) or 'knob' (rigid pull knob, never latched)",
        choices=("lever", "knob"),
        hidden=True,
    )
    latched: bool = param(
        doc="a latch holds the closed door until the lever is pressed (lever doors only)",
        choices=(False, True),
        hidden=True,
    )
    width: float = param(doc="door width (m), hinge to free edge", low=0.2, high=0.34, hidden=True)
    handle_x: float = param(
        doc="handle post centre x (m), door closed", low=-0.08, high=0.0, hidden=False
    )
    handle_y: float = param(
        doc="handle post centre y (m), door closed", low=-0.08, high=0.08, hidden=False
    )
    handle_z: float = param(doc="handle post centre height (m)", low=0.08, high=0.3, hidden=False)
    damping: float = param(doc="hinge viscous damping (N m s/rad)", low=0.0, high=8.0, hidden=True)
    friction: float = param(doc="hinge dry friction (N m)", low=0.0, high=2.0, hidden=True)
    spring: float = param(
        doc="closing spring (N m/rad) about closed", low=0.0, high=5.0, hidden=True
    )
    closer: float = param(
        doc="door closer preload (N m): a constant closing torque on top of the spring; 0 = none",
        low=0.0,
        high=15.0,
        hidden=True,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latched and self.handle != "lever":
            raise ValueError(
                f"DoorParams.latched: only lever doors can be latched, got handle={self.handle!r}"
            )
        if self.latched and self.closer > 0.0:
            raise ValueError(
                f"DoorParams.closer: a latched door has no closer (the latch holds it shut), got "
                f"closer={self.closer:g} N m; use closer=0 or latched=False"
            )


@dataclass(frozen=True, kw_only=True)
class DoorGeometry:
    """Derived placement of one door (engine-agnostic), all in the world frame."""

    hinge: np.ndarray
    """Hinge axis foot point ``[3]`` (on the floor, on the panel's robot-side face)."""
    along: float
    """+1 when the panel extends from the hinge towards +y, -1 towards -y."""
    sign: float
    """Hinge axis is ``(0, 0, sign)``: positive joint angle opens the door."""
    radius: float
    """Hinge axis to handle post, along the panel (m)."""
    panel_half: np.ndarray
    """Panel half sizes ``[3]`` (x thickness, y width, z height)."""
    panel_centre: np.ndarray
    """Panel centre in the door frame (origin at ``hinge``)."""
    pivot: np.ndarray
    """Lever pivot in the door frame."""
    lever_stiffness: float
    """Return spring of the arm (lever or rigid knob)."""
    lever_springref: float
    """Rest angle of the return spring, so that the arm rests at 0 under gravity."""


def as_door(task: TaskParams) -> DoorParams:
    """``task`` itself, checked to be a door (engines pass tasks as the base type)."""
    if not isinstance(task, DoorParams):
        raise TypeError(f"task: expected DoorParams, got {type(task).__name__}")
    return task


def post_radius(width: float) -> float:
    """Hinge-to-post distance along the panel (m) of a door of ``width``."""
    return width - HANDLE_INSET


def geometry(task: DoorParams) -> DoorGeometry:
    """Where the door of ``task`` is, from its handle position, width and hinge side."""
    along = -1.0 if task.hinge_side == "left" else 1.0
    push = 1.0 if task.opens == "push" else -1.0
    radius = post_radius(task.width)
    hinge = np.array([task.handle_x + ARM_LENGTH, task.handle_y - along * radius, 0.0])
    top = task.handle_z + PANEL_TOP_ABOVE_HANDLE
    stiffness = LEVER_STIFFNESS if task.handle == "lever" else KNOB_STIFFNESS
    half = np.array([PANEL_THICKNESS / 2, task.width / 2, (top - PANEL_BOTTOM) / 2])
    return DoorGeometry(
        hinge=hinge,
        along=along,
        sign=-along * push,
        radius=radius,
        panel_half=half,
        panel_centre=np.array([half[0], along * half[1], PANEL_BOTTOM + half[2]]),
        pivot=np.array([0.0, along * radius, task.handle_z - PIVOT_BELOW_HANDLE]),
        lever_stiffness=stiffness,
        lever_springref=-LEVER_GRAVITY_TORQUE / stiffness,
    )


def hinge_rows(tasks: Sequence[DoorParams]) -> np.ndarray:
    """Hinges ``[B, 4]`` of ``tasks``, one row per door: axis x, axis y, sign, radius.

    The axis is ``(0, 0, sign)`` through ``(x, y)`` (positive angles open); the radius is the
    hinge-to-post distance along the panel (m). An array (one row per env), so that the
    episode state of a subset of envs can be reset.
    """
    rows = [(g.hinge[0], g.hinge[1], g.sign, g.radius) for g in map(geometry, tasks)]
    return np.array(rows, dtype=np.float64).reshape(len(rows), 4)


def at_stop(sensors: np.ndarray, hinges: np.ndarray) -> np.ndarray:
    """Sensors ``[B, 16]`` with a door pressed past its closed stop reported at the stop.

    ``hinges [B, 4]`` as :func:`hinge_rows` gives them.
    An engine's stop is not rigid: pressed into its frame a door sinks a fraction of a
    milliradian past closed, by an amount that depends on how hard and which way it is pushed,
    which would tell a push door from a pull door that does not move. Like an encoder zeroed at
    the stop, the observation reports such a door at angle 0, at rest, with its handle where
    it is at angle 0.
    """
    g = gripper.N_SENSORS
    out = sensors.copy()
    angle = sensors[:, g + 3]
    sunk = angle < 0.0
    if not sunk.any():
        return out
    axis = hinges[:, 0:2]
    phi = -hinges[:, 2] * angle  # the turn back to the stop, about +z
    c, s = np.cos(phi), np.sin(phi)
    rel = sensors[:, g : g + 2] - axis
    back = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], axis=1)
    out[:, g : g + 2] = np.where(sunk[:, None], axis + back, sensors[:, g : g + 2])
    out[:, g + 3] = np.where(sunk, 0.0, angle)
    out[:, g + 4] = np.where(sunk, 0.0, sensors[:, g + 4])
    return out


def panel_inertia(half: np.ndarray) -> np.ndarray:
    """Principal inertia of the panel box about its centre."""
    a, b, c = (2 * half) ** 2
    return PANEL_MASS / 12.0 * np.array([b + c, a + c, a + b])


def handle_on_arc(task: DoorParams, angle: float | np.ndarray) -> np.ndarray:
    """Handle post centre ``[..., 3]`` when the door is open by ``angle`` (lever at rest)."""
    g = geometry(task)
    rel = np.array([-ARM_LENGTH, g.along * g.radius])
    phi = g.sign * np.asarray(angle, dtype=np.float64)
    c, s = np.cos(phi), np.sin(phi)
    x = g.hinge[0] + c * rel[0] - s * rel[1]
    y = g.hinge[1] + s * rel[0] + c * rel[1]
    return np.stack([x, y, np.full_like(x, task.handle_z)], axis=-1)


# --- splits -----------------------------------------------------------------------------------
def sample_split(rng: np.random.Generator, n: int, split: Split) -> list[DoorParams]:
    """``n`` doors of ``split``: test doors are wider, and may be more damped and stiffer.

    Closers are drawn alike in both splits: every door without a latch has one.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if n < 0:
        raise ValueError(f"n: expected an integer >= 0, got {n}")
    train = split == "train"
    width_lo, width_hi = WIDTH_TRAIN if train else WIDTH_TEST
    damping = DAMPING_TRAIN if train else DAMPING_TEST
    spring = SPRING_TRAIN if train else SPRING_TEST
    tasks = []
    for _ in range(n):
        kind = int(rng.integers(3))  # knob, unlatched lever, latched lever
        width = float(rng.uniform(width_lo, width_hi))
        if not train:
            width = max(width, float(np.nextafter(WIDTH_TRAIN[1], 1.0)))
        tasks.append(
            DoorParams(
                hinge_side=str(rng.choice(["left", "right"])),
                opens=str(rng.choice(["push", "pull"])),
                handle="knob" if kind == 0 else "lever",
                latched=kind == 2,
                width=width,
                handle_x=float(rng.uniform(*HANDLE_X)),
                handle_y=float(rng.uniform(*HANDLE_Y)),
                handle_z=float(rng.uniform(*HANDLE_Z)),
                damping=float(rng.uniform(*damping)),
                friction=float(rng.uniform(*FRICTION_RANGE)),
                spring=float(rng.uniform(*spring)),
                closer=0.0 if kind == 2 else closer_preload(rng, width),
            )
        )
    return tasks


def closer_preload(rng: np.random.Generator, width: float) -> float:
    """Preload (N m) of the closer of a door of ``width``: ``CLOSER_FORCE`` at the post, drawn."""
    return float(rng.uniform(*CLOSER_FORCE)) * post_radius(width)


def split_of(task: DoorParams) -> Split:
    """Test doors are wider than 0.30 m; training doors are not, and stay in the train ranges."""
    if task.width > WIDTH_TRAIN[1]:
        return "test"
    bad = [
        f"{name}={value:g} (train range {rng_[0]:g}-{rng_[1]:g})"
        for name, value, rng_ in (
            ("width", task.width, WIDTH_TRAIN),
            ("damping", task.damping, DAMPING_TRAIN),
            ("spring", task.spring, SPRING_TRAIN),
        )
        if not rng_[0] <= value <= rng_[1]
    ]
    if bad:
        raise ValueError(
            f"door task is in neither split: width <= {WIDTH_TRAIN[1]} m makes it a training "
            f"door, but {', '.join(bad)}"
        )
    return "train"


def draw_initial(task: DoorParams, rng: np.random.Generator) -> np.ndarray:
    """Gripper start ``[3]``: back from the door and above it, with a few cm of noise."""
    del task
    base = np.array([-0.2, 0.0, 0.32])
    return base + rng.uniform(-0.03, 0.03, size=3)


# --- observation ------------------------------------------------------------------------------
N_DOOR_SENSORS = 6
"""Door part of the sensor vector: handle_pos[3], door angle, door velocity, lever angle."""

OBS_SPEC = VectorSpec(
    (
        Field(name="ee_pos", size=3, low=-1, high=1, unit="m", doc="grip point position"),
        Field(
            name="finger_q",
            size=2,
            low=-0.01,
            high=0.06,
            unit="m",
            doc="finger closing travel (0 open, 0.05 pads touching)",
        ),
        Field(name="ee_vel", size=3, unit="m/s", doc="grip point velocity"),
        Field(
            name="touch",
            size=2,
            low=0,
            high=TOUCH_MAX,
            unit="1",
            doc="finger pad normal force / FINGER_FORCE_MAX (clipped)",
        ),
        Field(
            name="handle_pos",
            size=3,
            low=-1,
            high=1,
            unit="m",
            doc="handle post centre (tracked by a camera or forward kinematics)",
        ),
        Field(name="handle_rel", size=3, low=-2, high=2, unit="m", doc="handle_pos - ee_pos"),
        Field(
            name="door_angle",
            low=-np.pi,
            high=np.pi,
            unit="rad",
            doc="opening angle: 0 closed, > 0 open (either direction)",
        ),
        Field(name="door_vel", unit="rad/s", doc="opening angular velocity"),
        Field(
            name="lever_angle",
            low=-np.pi,
            high=np.pi,
            unit="rad",
            doc="lever pressed-down angle (0 at rest; ~0 for a knob)",
        ),
        Field(
            name="protective_stop",
            low=0,
            high=1,
            unit="1",
            doc="1 once the episode was stopped (force reflex > 110 N, or frame forced > 30 N)",
        ),
    )
)
EE = OBS_SPEC.slice("ee_pos")
HANDLE = OBS_SPEC.slice("handle_pos")
HANDLE_REL = OBS_SPEC.slice("handle_rel")
ANGLE = OBS_SPEC.index("door_angle")
LEVER = OBS_SPEC.index("lever_angle")
FINGERS = OBS_SPEC.slice("finger_q")
STOP = OBS_SPEC.index("protective_stop")


def observe(sensors: np.ndarray, stopped: np.ndarray) -> np.ndarray:
    """Observation ``[B, 20]`` from sensors ``[B, 16]`` (gripper's 10 then the door's 6).

    ``stopped [B]`` (bool) is the protective-stop state the family keeps (the last entry).
    """
    g = gripper.N_SENSORS
    ee = sensors[:, 0:3]
    touch = np.clip(sensors[:, 8:10] / gripper.FINGER_FORCE_MAX, 0.0, TOUCH_MAX)
    handle = sensors[:, g : g + 3]
    return np.concatenate(
        [
            ee,
            sensors[:, 3:5],
            sensors[:, 5:8],
            touch,
            handle,
            handle - ee,
            sensors[:, g + 3 :],
            np.asarray(stopped, dtype=np.float64)[:, None],
        ],
        axis=1,
    )


def reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Shaped reward (see the module docstring); any leading batch shape."""
    dist = np.linalg.norm(next_obs[..., HANDLE_REL], axis=-1)
    before = np.clip(obs[..., ANGLE], 0.0, SUCCESS_ANGLE)
    after = np.clip(next_obs[..., ANGLE], 0.0, SUCCESS_ANGLE)
    return (
        W_REACH * (1.0 - np.tanh(REACH_SCALE * dist))
        + W_OPEN * after / SUCCESS_ANGLE
        + W_PROGRESS * (after - before)
        + W_SUCCESS * success(next_obs)
        - W_STOP * next_obs[..., STOP]
        - W_ACTION * np.sum(action[..., :3] ** 2, axis=-1)
    )


def success(next_obs: np.ndarray) -> np.ndarray:
    """Door open by at least 60 degrees."""
    return np.asarray(next_obs[..., ANGLE] >= SUCCESS_ANGLE)


def terminated(next_obs: np.ndarray) -> np.ndarray:
    """The protective stop has tripped: the episode ends (any leading batch shape)."""
    return np.asarray(next_obs[..., STOP] > 0.5)
