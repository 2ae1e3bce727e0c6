"""The door's protective stop: a hand-computed force estimate, an observed flag that ends the
episode, the same trip in both engines when a door is pushed the wrong way, never for the expert."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from adapt_robot.sim.core import gripper
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.families.door import DoorFamily, DoorParams
from adapt_robot.sim.families.door import expert as de
from adapt_robot.sim.families.door import protective_stop as PS
from adapt_robot.sim.families.door import task as T
from adapt_robot.sim.families.door.expert import DoorExpert
from tests.sim.doors import door

ENGINES = ("mujoco", "pybullet")


def _sensors(ee: tuple[float, float, float], vel: tuple[float, float, float]) -> np.ndarray:
    """One sensor row (16) with the given grip-point position and velocity, the rest zero."""
    row = np.zeros(gripper.N_SENSORS + T.N_DOOR_SENSORS)
    row[0:3], row[5:8] = ee, vel
    return row[None]


_door = functools.partial(door, opens="pull", handle="knob", latched=False)


_LEFT_PUSH = np.array([[0.16, 0.2, 1.0, 0.2]])
"""Hinge row of a push door hinged on the left: axis at (0.16, 0.2), radius 0.2 m, so that a grip
point at (0.1, 0.0) holds the post (ARM_LENGTH = 0.06 m in front of the hinge axis)."""
_LEFT_PULL = _LEFT_PUSH * [1.0, 1.0, -1.0, 1.0]
"""The same door opening the other way (pull): its axis turns the other way."""


def _tripped(sensors: np.ndarray, target: np.ndarray) -> bool:
    """:func:`PS.tripped` for one row of an open door (the frame takes nothing)."""
    return bool(PS.tripped(sensors, target, _LEFT_PUSH, np.array([0.5]))[0])


# --- the estimate (pure numpy) -----------------------------------------------------------------
def test_force_is_minus_the_carriage_pd_force() -> None:
    still = _sensors((0.1, 0.0, 0.2), (0.0, 0.0, 0.0))
    # Target 1 cm ahead in x of a grip point at rest: the PD pushes +40 N, the world pushes back.
    f = PS.external_force(still, np.array([[0.11, 0.0, 0.2]]))
    np.testing.assert_allclose(f, [[-40.0, 0.0, 0.0]], atol=1e-9)
    assert not _tripped(still, np.array([[0.11, 0.0, 0.2]]))
    # 2 cm in x and 2 cm in y: sqrt(2) * 80 = 113.1 N horizontal, past the 110 N limit.
    target = np.array([[0.12, 0.02, 0.2]])
    np.testing.assert_allclose(PS.horizontal_force(still, target), [80.0 * np.sqrt(2.0)])
    assert _tripped(still, target)
    assert not _tripped(still, np.array([[0.1185, 0.0185, 0.2]]))  # 104.7 N: under it
    # Moving at 0.4 m/s towards a target 2 cm ahead: 80 N - KV * 0.4 = 36 N.
    moving = _sensors((0.1, 0.0, 0.2), (0.4, 0.0, 0.0))
    np.testing.assert_allclose(PS.horizontal_force(moving, np.array([[0.12, 0.0, 0.2]])), [36.0])


def test_vertical_force_never_trips_and_each_axis_saturates() -> None:
    still = _sensors((0.0, 0.0, 0.2), (0.0, 0.0, 0.0))
    # Pressing a lever down 5 cm below the grip point: 200 N (saturated), vertical only.
    target = np.array([[0.0, 0.0, 0.15]])
    np.testing.assert_allclose(PS.external_force(still, target), [[0.0, 0.0, 200.0]])
    assert not _tripped(still, target)
    # A target 1 m away in x saturates at the carriage limit, 200 N.
    np.testing.assert_allclose(PS.horizontal_force(still, np.array([[1.0, 0.0, 0.2]])), [200.0])


def _load(ee: tuple[float, float], push: tuple[float, float], hinges: np.ndarray) -> float:
    """Frame load (N) of a closed door when the gripper at ``ee`` pushes with ``push`` (N)."""
    sensors = _sensors((*ee, 0.2), (0.0, 0.0, 0.0))
    target = np.array([[ee[0] + push[0] / gripper.KP, ee[1] + push[1] / gripper.KP, 0.2]])
    return float(PS.frame_load(sensors, target, hinges, np.array([0.001]))[0])


def test_frame_load_is_the_torque_that_drives_a_closed_door_into_its_frame() -> None:
    post = (0.1, 0.0)
    # Pulled with 25 N at the post (arm -0.2 m along the panel): 5 N m shut, 25 N at the post.
    assert _load(post, (-25.0, 0.0), _LEFT_PUSH) == pytest.approx(25.0)
    assert _load(post, (-25.0, 0.0), _LEFT_PULL) == pytest.approx(0.0)  # the way it opens
    # 25 N in x and 12 N sideways: the sideways part turns it too, about the post's 6 cm in
    # front of the axis: (0.2 * 25 - 0.06 * 12) / 0.2 = 21.4 N into a pull door's frame.
    assert _load(post, (25.0, 12.0), _LEFT_PULL) == pytest.approx(21.4)
    assert _load(post, (25.0, 12.0), _LEFT_PUSH) == pytest.approx(0.0)
    # A sideways push alone loads one door's frame and opens the other: 0.06 * 105 / 0.2.
    assert _load(post, (0.0, -105.0), _LEFT_PULL) == pytest.approx(31.5)
    assert _load(post, (0.0, -105.0), _LEFT_PUSH) == pytest.approx(0.0)
    # At the panel's free edge (0.24 m from the axis) 26 N take 6.24 N m: 31.2 N at the post.
    assert _load((0.16, -0.04), (-26.0, 0.0), _LEFT_PUSH) == pytest.approx(31.2)
    # Open, the frame takes nothing.
    sensors = _sensors((*post, 0.2), (0.0, 0.0, 0.0))
    pull = np.array([[0.1 - 25.0 / gripper.KP, 0.0, 0.2]])
    assert PS.frame_load(sensors, pull, _LEFT_PUSH, np.array([0.3]))[0] == 0.0
    # 30 N is the limit, far below the 110 N reflex.
    assert not PS.tripped(sensors, pull, _LEFT_PUSH, np.array([0.001]))[0]
    harder = np.array([[0.1 - 31.0 / gripper.KP, 0.0, 0.2]])
    assert PS.tripped(sensors, harder, _LEFT_PUSH, np.array([0.001]))[0]
    assert not PS.tripped(sensors, harder, _LEFT_PULL, np.array([0.001]))[0]


def test_a_door_sunk_past_its_stop_is_observed_at_the_stop() -> None:
    task = _door(opens="push", hinge_side="left")
    hinges = T.hinge_rows([task])
    g = gripper.N_SENSORS
    closed = np.zeros((1, g + T.N_DOOR_SENSORS))
    closed[0, g : g + 3] = T.handle_on_arc(task, 0.0)
    sunk = closed.copy()
    sunk[0, g : g + 3] = T.handle_on_arc(task, -4e-4)
    sunk[0, g + 3 : g + 5] = (-4e-4, -0.01)
    seen = T.at_stop(sunk, hinges)
    np.testing.assert_allclose(seen, closed, atol=1e-12)
    opening = closed.copy()
    opening[0, g : g + 3] = T.handle_on_arc(task, 0.3)
    opening[0, g + 3 : g + 5] = (0.3, 0.5)
    np.testing.assert_array_equal(T.at_stop(opening, hinges), opening)


def test_flag_ends_the_episode_and_costs_reward() -> None:
    obs = np.zeros((2, T.OBS_SPEC.dim))
    nxt = obs.copy()
    nxt[1, T.STOP] = 1.0
    np.testing.assert_array_equal(T.terminated(nxt), [False, True])
    r = T.reward(obs, np.zeros((2, 4)), nxt)
    np.testing.assert_allclose(r[0] - r[1], T.W_STOP)
    assert T.OBS_SPEC.names[T.STOP] == "protective_stop" and T.OBS_SPEC.dim == 20


def test_flag_is_sticky_within_an_episode_and_cleared_by_a_new_one() -> None:
    family = DoorFamily()
    rest = _sensors((0.0, 0.0, 0.2), (0.0, 0.0, 0.0))
    state = family.new_episode([_door()], rest)
    assert family.observe(rest, state)[0, T.STOP] == 0.0
    state["target"][:] = [0.03, 0.0, 0.2]  # 120 N into whatever holds the gripper
    assert family.observe(rest, state)[0, T.STOP] == 1.0
    state["target"][:] = [0.0, 0.0, 0.2]  # the force is gone, the stop stays
    assert family.observe(rest, state)[0, T.STOP] == 1.0
    assert family.observe(rest, family.new_episode([_door()], rest))[0, T.STOP] == 0.0


# --- in the engines ----------------------------------------------------------------------------
def _run(engine: str, task: DoorParams, told: DoorParams) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[T+1, 20]`` and terminated flags ``[T]`` of the expert told ``told``."""
    family = DoorFamily()
    env = VectorTaskEnv(family, engine, 1)
    try:
        env.set_tasks([task])
        expert = family.expert(told)
        expert.reset()
        obs = [env.reset(np.random.default_rng(0))[0]]
        ends = []
        for _ in range(family.max_steps):
            o, _, term, trunc, _ = env.step(expert.act(obs[-1])[None])
            obs.append(o[0])
            ends.append(bool(term[0]))
            if term[0] or trunc[0]:
                break
    finally:
        env.close()
    return np.array(obs), np.array(ends)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("task", "wrong"),
    [
        (_door(opens="pull"), {"opens": "push"}),  # pushing a pull door against its stop
        (_door(opens="push"), {"opens": "pull"}),  # pulling a push door
        # Pulling a latched lever door without pressing the lever: the latch holds it.
        (
            _door(opens="pull", handle="lever", latched=True),
            {"handle": "knob", "latched": False},
        ),
    ],
    ids=["push-a-pull-door", "pull-a-push-door", "pull-a-latched-door"],
)
def test_forcing_a_blocked_direction_trips_the_stop_in_both_engines(
    engine: str, task: DoorParams, wrong: dict[str, object]
) -> None:
    obs, ends = _run(engine, task, dataclasses.replace(task, **wrong))  # type: ignore[arg-type]
    assert ends[-1] and ends.sum() == 1, f"{engine}: the stop did not end the episode"
    assert obs[-1, T.STOP] == 1.0 and obs[:-1, T.STOP].max() == 0.0
    assert not T.success(obs).any()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_expert_told_the_true_door_never_trips_it(engine: str) -> None:
    task = _door(opens="push", handle="lever", latched=True, damping=3.5, spring=2.5)
    obs, ends = _run(engine, task, task)
    assert not ends.any() and obs[:, T.STOP].max() == 0.0
    assert T.success(obs).any()


def _hold_then_push(
    engine: str, task: DoorParams, force_x: float, keep_going: bool = False, steps: int = 12
) -> tuple[np.ndarray, bool]:
    """Grip the post as the expert does, then move the target ``force_x / KP`` beyond it in x.

    The target is then held (a steady push of ``force_x`` while nothing moves), or with
    ``keep_going`` moved as far again every step. Returns the door angles over the ``steps``
    steps of the push and whether the stop tripped.
    """
    family = DoorFamily()
    env = VectorTaskEnv(family, engine, 1)
    try:
        env.set_tasks([task])
        expert = family.expert(task)
        assert isinstance(expert, DoorExpert)
        obs = env.reset(np.random.default_rng(0))[0]
        while expert.phase(obs) != "open":
            obs = env.step(expert.act(obs)[None])[0][0]
        # Hold the grip; move the carriage target once, then keep it (zero moves).
        move = np.array([force_x / gripper.KP / gripper.MAX_STEP, 0.0, 0.0, de.GRIP])
        angles, stopped = [], False
        for step in range(steps):
            hold = step > 0 and not keep_going
            obs, _, term, _, _ = env.step((move * [0, 0, 0, 1] if hold else move)[None])
            angles.append(obs[0, T.ANGLE])
            stopped |= bool(term[0])
            if stopped:
                break
    finally:
        env.close()
    return np.array(angles), stopped


_CLOSER_DOOR = _door(width=0.26, closer=36.0 * (0.26 - T.HANDLE_INSET))
"""A pull knob held shut by a closer that needs 36 N at the post."""


@pytest.mark.parametrize("engine", ENGINES)
def test_a_closer_door_cannot_be_felt_for_safely_in_both_engines(engine: str) -> None:
    # 25 N either way: the closer holds it shut, the frame holds: nothing tells the two apart.
    for force in (-25.0, 25.0):
        angles, stopped = _hold_then_push(engine, _CLOSER_DOOR, force)
        assert not stopped and np.abs(angles).max() < 0.01, (force, angles)
    # Firmer: the right way (a pull, -x) opens it; the wrong way damages the frame.
    # (A straight pull: on for longer, it would drag the post off its arc into the reflex.)
    angles, stopped = _hold_then_push(engine, _CLOSER_DOOR, -50.0, keep_going=True, steps=5)
    assert not stopped and angles[-1] > 0.15, angles
    _, stopped = _hold_then_push(engine, _CLOSER_DOOR, 50.0)
    assert stopped
    # The same door without its closer moves under the 25 N pull: direction is cheap to feel.
    light = dataclasses.replace(_CLOSER_DOOR, closer=0.0)
    angles, stopped = _hold_then_push(engine, light, -25.0)
    assert not stopped and angles[-1] > 0.015, angles
