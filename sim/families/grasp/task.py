"""Grasp task parameters, the object geometry both engines build, and the train/test splits.

Units: metres, kilograms, newtons, seconds. An object's frame sits at the centre of its main
(graspable) part, which rests on the table (z = 0), so the rest height of the frame is
``half_height``. Composite shapes add a part on the object's +x side:

- ``mug``: a cylinder (radius ``half_width``, half-height ``half_height``) with a box handle;
- ``capsule``: lies on the table along x (radius ``half_width`` = ``half_height``, total
  half-length ``half_depth``);
- ``lblock``: an upright box post (``half_depth, half_width, half_height``) with a foot that
  runs along +x on the table (narrower than the post, so the fingers only touch the post).

Splits are disjoint by construction: a task is ``train`` when its shape is a primitive
(``TRAIN_SHAPES``) and every parameter lies in the train range (``TRAIN_RANGES``); any other
valid, solvable task is ``test`` (a composite shape, or a size or mass never seen in
training). A task that no controller could solve belongs to neither split.

Both splits draw mass uniformly (0.05-3 kg in train) and friction uniformly (0.2-1.5). An
object is fragile with chance ``FRAGILE_P`` when its squeeze allows it: its break force is
``FRAGILE_WINDOW`` times the smallest that allows a careful grip (at least ``FRAGILE_MIN``); one
that would need more than ``FRAGILE_MAX`` is robust. So heavy slippery objects need a squeeze
that breaks fragile ones, and a middle squeeze breaks one kind and drops the other.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.family import Split
from adapt_robot.sim.core.params import TaskParams, param

GRAVITY = 9.81
SHAPES: tuple[str, ...] = ("box", "cylinder", "sphere", "capsule", "mug", "lblock")
"""Every object shape; the observation's one-hot follows this order."""
TRAIN_SHAPES: tuple[str, ...] = ("box", "cylinder", "sphere", "capsule")
TEST_SHAPES: tuple[str, ...] = ("mug", "lblock")
"""Composite (non-convex) shapes, kept for the test split only."""
ROUND_SHAPES: tuple[str, ...] = ("cylinder", "sphere", "mug")
"""Shapes whose horizontal section is a circle: ``half_depth`` must equal ``half_width``."""

TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "half_width": (0.018, 0.035),
    "half_depth": (0.018, 0.06),
    "half_height": (0.018, 0.06),
    "mass": (0.05, 3.0),
    "friction": (0.2, 1.5),
}
"""Train ranges; the declared field ranges are the union of both splits. Heavy slippery objects
(up to 3 kg, friction down to 0.2) are in training: they need a squeeze that breaks a fragile
object, so training already asks for the squeeze to be adapted."""
TEST_EXTRA: dict[str, tuple[float, float]] = {
    "half_width": (0.035, 0.042),
    "half_height": (0.06, 0.075),
    "mass": (3.0, 4.0),
}
"""Out-of-training ranges a primitive test object draws one of its parameters from."""
UNBREAKABLE = 1000.0
"""Break force of a robust object (N): far above what the fingers can squeeze."""
FRAGILE_MIN = 8.0
"""Smallest break force (N): above the gentle closing squeeze of the expert."""
FRAGILE_MAX = 55.0
"""Largest break force of a fragile object (N): below what a heavy slippery object needs.
An object whose safe squeeze would need a higher break force is always robust."""
FRAGILE_WINDOW = (1.1, 1.6)
"""Break force of a fragile object, as a multiple of the least it can have (the careful grip
``grip_window(task)[0]`` divided by ``BREAK_MARGIN``): the safe window of a fragile object is
narrow, so a squeeze that suits one object breaks or drops another."""
FRAGILE_P = 0.7
"""Chance that an object whose squeeze allows it (see ``FRAGILE_MAX``) is fragile."""
SLIP_MARGIN = 1.6
"""Safety factor on the squeeze needed not to slip (lift acceleration, soft contacts)."""
BREAK_MARGIN = 0.7
"""Fraction of the break force a careful grip may use."""
GRIP_BIAS = 2.0
"""Squeeze added to the slip limit (N), for contact transients."""
MAX_HALF_WIDTH = 0.042
"""Widest object that fits between the open pads (10 cm apart) with 8 mm to spare each side."""
PALM_CLEARANCE = 0.065
"""Grip point to palm underside (5.5 cm) plus 1 cm of clearance above the object (m)."""
MIN_HALF_HEIGHT = 0.015
"""Lowest object the pads can hold with the fingertips 5 mm above the table."""


@dataclass(frozen=True, kw_only=True)
class GraspParams(TaskParams):
    """One object to pick up. Shape and size are visible (a camera sees them); the rest is not."""

    shape: str = param(doc="object shape (see SHAPES)", choices=SHAPES, hidden=False)
    half_width: float = param(
        doc="half-extent across the fingers, y (m); the radius of round shapes",
        low=0.015,
        high=MAX_HALF_WIDTH,
        hidden=False,
    )
    half_depth: float = param(
        doc="half-extent along x (m); equals half_width for round shapes",
        low=0.015,
        high=0.07,
        hidden=False,
    )
    half_height: float = param(
        doc="half-height of the main part (m); equals half_width for a sphere",
        low=MIN_HALF_HEIGHT,
        high=0.08,
        hidden=False,
    )
    mass: float = param(doc="object mass (kg)", low=0.05, high=4.0, hidden=True)
    friction: float = param(doc="sliding friction coefficient", low=0.2, high=1.5, hidden=True)
    com_x: float = param(
        doc="centre-of-mass offset along the object x axis (m)", low=-0.01, high=0.01, hidden=True
    )
    com_z: float = param(
        doc="centre-of-mass offset along the object z axis (m)", low=-0.01, high=0.01, hidden=True
    )
    break_force: float = param(
        doc=f"squeeze on both pads that breaks the object (N); {UNBREAKABLE:g} = robust",
        low=5.0,
        high=UNBREAKABLE,
        hidden=True,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.shape in ROUND_SHAPES and self.half_depth != self.half_width:
            raise ValueError(
                f"{name}.half_depth: a {self.shape} is round, expected half_depth == half_width "
                f"({self.half_width}), got {self.half_depth}"
            )
        if self.shape in ("sphere", "capsule") and self.half_height != self.half_width:
            raise ValueError(
                f"{name}.half_height: a {self.shape} needs half_height == half_width "
                f"({self.half_width}), got {self.half_height}"
            )
        if self.shape == "capsule" and self.half_depth < self.half_width + 0.005:
            raise ValueError(
                f"{name}.half_depth: a capsule needs half_depth >= half_width + 0.005 "
                f"({self.half_width + 0.005:.3f}), got {self.half_depth}"
            )

    @property
    def fragile(self) -> bool:
        """True when the fingers could break the object."""
        return self.break_force < gripper.FINGER_FORCE_MAX


def slip_force(task: GraspParams) -> float:
    """Squeeze per pad (N) at which a static lift just holds: ``m g / (2 mu)``."""
    return task.mass * GRAVITY / (2.0 * task.friction)


def grip_window(task: GraspParams) -> tuple[float, float]:
    """(lowest safe, highest safe) squeeze per pad (N) for ``task``."""
    low = SLIP_MARGIN * slip_force(task) + GRIP_BIAS
    high = min(BREAK_MARGIN * task.break_force, 0.9 * gripper.FINGER_FORCE_MAX)
    return low, high


def solvable_reason(task: GraspParams) -> str | None:
    """Why no controller could lift ``task`` (``None`` when it can be solved)."""
    if task.shape in ("sphere", "capsule") and (
        task.com_z > 0 or (task.shape == "sphere" and task.com_x)
    ):
        return (
            f"a {task.shape} with its centre of mass off-axis or above its centre rolls away "
            f"(com_x={task.com_x}, com_z={task.com_z})"
        )
    low, high = grip_window(task)
    if low > high:
        return (
            f"needs {low:.1f} N per pad not to slip but may squeeze at most {high:.1f} N "
            f"(finger limit {gripper.FINGER_FORCE_MAX:g} N, break force {task.break_force:g} N)"
        )
    return None


def size(task: GraspParams) -> np.ndarray:
    """Half-extents (x, y, z) of the main part: what a camera reports."""
    return np.array([task.half_depth, task.half_width, task.half_height])


def shape_onehot(task: GraspParams) -> np.ndarray:
    """One-hot of the shape in ``SHAPES`` order."""
    out = np.zeros(len(SHAPES))
    out[SHAPES.index(task.shape)] = 1.0
    return out


@dataclass(frozen=True, kw_only=True)
class Part:
    """One convex piece of an object, in the object frame (built the same way by both engines)."""

    kind: str
    """``box``, ``cylinder``, ``sphere`` or ``capsule`` (round ones along z unless ``along_x``)."""
    size: tuple[float, float, float]
    """MuJoCo geom size: box half-extents; (radius, half-length, 0) for cylinders and capsules
    (the capsule's half-length excludes its caps); (radius, 0, 0) for spheres."""
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Centre of the piece in the object frame (m)."""
    along_x: bool = False
    """Cylinders and capsules: axis along the object x axis instead of z."""


def parts(task: GraspParams) -> tuple[Part, ...]:
    """The convex pieces of ``task``'s object."""
    w, d, h = task.half_width, task.half_depth, task.half_height
    if task.shape == "box":
        return (Part(kind="box", size=(d, w, h)),)
    if task.shape == "cylinder":
        return (Part(kind="cylinder", size=(w, h, 0.0)),)
    if task.shape == "sphere":
        return (Part(kind="sphere", size=(w, 0.0, 0.0)),)
    if task.shape == "capsule":
        return (Part(kind="capsule", size=(w, d - w, 0.0), along_x=True),)
    if task.shape == "mug":
        handle = (0.012, 0.005, 0.6 * h)
        return (
            Part(kind="cylinder", size=(w, h, 0.0)),
            Part(kind="box", size=handle, pos=(w + handle[0] - 0.002, 0.0, 0.0)),
        )
    if task.shape == "lblock":
        foot = (d, 0.6 * w, 0.3 * h)
        return (
            Part(kind="box", size=(d, w, h)),
            Part(kind="box", size=foot, pos=(2.0 * d, 0.0, -h + foot[2])),
        )
    raise ValueError(f"shape: expected one of {list(SHAPES)}, got {task.shape!r}")


def inertia(task: GraspParams) -> np.ndarray:
    """Principal moments (kg m^2) of a solid box filling the main part (used by both engines)."""
    d, w, h = size(task)
    m = task.mass
    return np.array([m * (w * w + h * h), m * (d * d + h * h), m * (d * d + w * w)]) / 3.0


def grasp_height(half_height: float) -> float:
    """Grip-point height that holds the main part while keeping the palm 1 cm above its top."""
    return max(float(gripper.WORKSPACE_LOW[2]), half_height, 2.0 * half_height - PALM_CLEARANCE)


def draw_initial(task: GraspParams, rng: np.random.Generator) -> np.ndarray:
    """Initial conditions ``[obj_x, obj_y, obj_yaw, ee_x, ee_y, ee_z]`` (shared by both engines)."""
    del task
    obj = rng.uniform([-0.05, -0.05, -0.25], [0.05, 0.05, 0.25])
    ee = rng.uniform([-0.06, -0.06, 0.18], [0.06, 0.06, 0.25])
    return np.concatenate([obj, ee])


def in_train_ranges(task: GraspParams) -> bool:
    """Whether every ranged parameter lies in its train range."""
    return all(lo <= getattr(task, k) <= hi for k, (lo, hi) in TRAIN_RANGES.items())


def classify(task: GraspParams) -> Split:
    """The split of ``task``; raises ValueError for a task no controller can solve."""
    reason = solvable_reason(task)
    if reason is not None:
        raise ValueError(f"task is in neither split: it cannot be solved ({reason}): {task}")
    if task.shape in TRAIN_SHAPES and in_train_ranges(task):
        return "train"
    return "test"


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))


def _draw_one(rng: np.random.Generator, split: Split) -> GraspParams:
    """One candidate task of ``split`` (may be unsolvable; the caller rejects those)."""
    ranges = dict(TRAIN_RANGES)
    if split == "train":
        shape = str(rng.choice(TRAIN_SHAPES))
    elif rng.uniform() < 0.5:
        shape = str(rng.choice(TEST_SHAPES))
    else:
        shape = str(rng.choice(TRAIN_SHAPES))
        key = str(rng.choice(list(TEST_EXTRA)))
        ranges[key] = TEST_EXTRA[key]
    w = _uniform(rng, ranges["half_width"])
    d = w if shape in ROUND_SHAPES else _uniform(rng, ranges["half_depth"])
    h = _uniform(rng, ranges["half_height"])
    if shape == "sphere":
        h = w
    elif shape == "capsule":
        h, d = w, w + _uniform(rng, (0.008, 0.025))
    mass = _uniform(rng, ranges["mass"])
    friction = _uniform(rng, ranges["friction"])
    com = rng.uniform(-0.01, 0.01, size=2)
    if shape in ("sphere", "capsule"):
        com = np.array([0.0 if shape == "sphere" else com[0], -abs(com[1])])
    task = GraspParams(
        shape=shape,
        half_width=w,
        half_depth=d,
        half_height=h,
        mass=mass,
        friction=friction,
        com_x=float(com[0]),
        com_z=float(com[1]),
        break_force=UNBREAKABLE,
    )
    if rng.uniform() < FRAGILE_P:
        least = (SLIP_MARGIN * slip_force(task) + GRIP_BIAS) / BREAK_MARGIN
        brk = max(least * float(rng.uniform(*FRAGILE_WINDOW)), FRAGILE_MIN)
        if brk <= FRAGILE_MAX:
            task = dataclasses.replace(task, break_force=brk)
    return task


def sample(rng: np.random.Generator, n: int, split: Split) -> list[GraspParams]:
    """``n`` solvable tasks of ``split`` (rejection sampling)."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if n < 0:
        raise ValueError(f"n: expected an integer >= 0, got {n}")
    out: list[GraspParams] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * max(n, 1):
            raise RuntimeError(f"could not draw {n} solvable {split} tasks in {tries} tries")
        task = _draw_one(rng, split)
        if solvable_reason(task) is None and classify(task) == split:
            out.append(task)
    return out


def rest_height(task: GraspParams) -> float:
    """Height of the object frame when the object stands on the table (m)."""
    return task.half_height


def yaw_quat(yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation by ``yaw`` about z."""
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def as_grasp(task: TaskParams) -> GraspParams:
    """``task`` as :class:`GraspParams`, or a TypeError saying what was passed instead."""
    if not isinstance(task, GraspParams):
        raise TypeError(f"task: expected GraspParams, got {type(task).__name__}")
    return task
