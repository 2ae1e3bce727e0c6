"""The door's control law: memoryless and batched, the expert's one implementation, traceable,
and told the true door it opens it in both engines."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import pytest

from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.experts.evaluate import run_experts
from adapt_robot.sim.families.door import DoorFamily, DoorParams
from adapt_robot.sim.families.door import expert as de
from adapt_robot.sim.families.door import task as T
from tests.sim.doors import door

ENGINES = ("mujoco", "pybullet")


@pytest.fixture(scope="module")
def family() -> DoorFamily:
    return DoorFamily()


_door = functools.partial(door, width=0.31, handle_y=0.02, damping=5.0, friction=0.5, spring=3.0)


def _closer(width: float, force: float = 36.0) -> float:
    """Closer preload (N m) that needs ``force`` N at the post of a door of ``width``."""
    return force * (width - T.HANDLE_INSET)


KINDS = (
    _door(),  # latched lever, push, hinge left (no closer)
    _door(
        hinge_side="right",
        opens="pull",
        handle="knob",
        latched=False,
        width=0.24,
        damping=3.5,  # a training door: width and damping in the train ranges
        closer=_closer(0.24, 39.0),
    ),
    _door(
        opens="pull",
        latched=False,
        handle_y=-0.05,
        handle_z=0.12,
        width=0.28,
        closer=_closer(0.28),
    ),
    _door(
        hinge_side="right",
        handle="knob",
        latched=False,
        handle_z=0.27,
        damping=7.5,
        closer=_closer(0.31, 34.0),
    ),
)
"""One door of each handle kind and both sides and directions, train and test widths; every
unlatched door has a closer, as in the task family."""


def _record(
    family: DoorFamily, engine: str, tasks: tuple[DoorParams, ...], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[N, T, 20]`` and expert actions ``[N, T, 4]`` of full episodes."""
    env = VectorTaskEnv(family, engine, len(tasks))
    try:
        env.set_tasks(list(tasks))
        experts = [family.expert(t) for t in tasks]
        obs = env.reset(np.random.default_rng(seed))
        seen, acts = [], []
        for _ in range(family.max_steps):
            act = np.stack([e.act(o) for e, o in zip(experts, obs, strict=True)])
            seen.append(obs)
            acts.append(act)
            obs, *_ = env.step(act)
    finally:
        env.close()
    return np.stack(seen, axis=1), np.stack(acts, axis=1)


@pytest.fixture(scope="module")
def recorded(family: DoorFamily) -> tuple[np.ndarray, np.ndarray]:
    return _record(family, "mujoco", KINDS)


def _thetas(family: DoorFamily, tasks: tuple[DoorParams, ...], steps: int) -> np.ndarray:
    return np.repeat(np.stack([family.expert_law_params(t) for t in tasks])[:, None], steps, 1)


def test_law_hooks_describe_theta(family: DoorFamily) -> None:
    assert family.law_params == ("hinge", "opens", "press", "width")
    low, high = family.law_bounds()
    tasks = family.sample_tasks(np.random.default_rng(0), 40, "train")
    tasks += family.sample_tasks(np.random.default_rng(0), 40, "test")
    for t in tasks:
        theta = family.expert_law_params(t)
        assert np.all(low <= theta) and np.all(theta <= high)
        assert theta[0] == (1.0 if t.hinge_side == "left" else -1.0)
        assert theta[1] == (1.0 if t.opens == "push" else -1.0)
        assert theta[2] == (1.0 if t.latched else -1.0)
        assert theta[3] == t.width
    # Damping, friction, spring and closer change nothing the expert does.
    same = dataclasses.replace(KINDS[1], damping=0.5, friction=0.0, spring=0.0, closer=0.0)
    np.testing.assert_array_equal(
        family.expert_law_params(same), family.expert_law_params(KINDS[1])
    )


def test_law_equals_the_experts_actions_step_by_step(
    family: DoorFamily, recorded: tuple[np.ndarray, np.ndarray]
) -> None:
    obs, acts = recorded
    n, steps, _ = obs.shape
    theta = _thetas(family, KINDS, steps)
    got = family.control_law(obs.reshape(n * steps, -1), theta.reshape(n * steps, -1))
    np.testing.assert_array_equal(got.reshape(acts.shape), acts)
    # Memoryless: the expert gives the same action for an observation whatever came before.
    expert = family.expert(KINDS[0])
    backwards = np.stack([expert.act(o) for o in obs[0][::-1]])[::-1]
    np.testing.assert_array_equal(backwards, acts[0])


def test_phases_follow_each_other_in_order(
    family: DoorFamily, recorded: tuple[np.ndarray, np.ndarray]
) -> None:
    obs, _ = recorded
    for task, episode in zip(KINDS, obs, strict=True):
        expert = family.expert(task)
        assert isinstance(expert, de.DoorExpert)
        phases = [expert.phase(o) for o in episode]
        # Up to the release: after it a closer swings its door shut, and the law starts over.
        done = phases.index("release") if "release" in phases else len(phases)
        order = [de.PHASES.index(p) for p in phases[: done + 1]]
        assert order == sorted(order), f"{task}: phases {phases}"
        assert T.success(episode[: done + 2]).any(), f"{task}: released before success"
        assert ("press" in phases) == task.latched
        assert {"approach", "close", "open"} <= set(phases)


def test_batch_rows_are_independent(
    family: DoorFamily, recorded: tuple[np.ndarray, np.ndarray]
) -> None:
    obs, _ = recorded
    rng = np.random.default_rng(3)
    low, high = family.law_bounds()
    # Rows from different doors and steps, each with its own theta (the experts' and random).
    rows = obs[rng.integers(0, obs.shape[0], 64), rng.integers(0, obs.shape[1], 64)]
    theta = np.concatenate(
        [_thetas(family, KINDS, 8).reshape(32, -1), rng.uniform(low, high, (32, low.size))]
    )
    batched = family.control_law(rows, theta)
    alone = np.concatenate(
        [family.control_law(rows[i : i + 1], theta[i : i + 1]) for i in range(64)]
    )
    np.testing.assert_array_equal(batched, alone)
    assert batched.shape == (64, 4) and np.all(np.abs(batched) <= 1.0)


def test_law_traces_to_the_same_actions(
    family: DoorFamily, recorded: tuple[np.ndarray, np.ndarray]
) -> None:
    torch = pytest.importorskip("torch")
    from adapt_robot.export.graphs import _Fn, _numpy_traced

    def law(obs: Any, theta: Any) -> Any:
        return torch.from_numpy(de.door_law(obs.numpy(), theta.numpy()))

    rng = np.random.default_rng(0)
    low, high = family.law_bounds()
    example = (
        torch.as_tensor(rng.standard_normal((5, T.OBS_SPEC.dim)) * 0.1, dtype=torch.float32),
        torch.as_tensor(rng.uniform(low, high, (5, low.size))),
    )
    batch = torch.export.Dim("batch", min=1)
    traced = _numpy_traced(_Fn(law), example, (({0: batch}, {0: batch}),))
    # Fresh observations from every phase of the recorded episodes, experts' and random theta.
    obs, _ = recorded
    rows = obs.reshape(-1, obs.shape[-1])
    theta = np.concatenate(
        [
            _thetas(family, KINDS, obs.shape[1]).reshape(rows.shape[0], -1)[: rows.shape[0] // 2],
            rng.uniform(low, high, (rows.shape[0] - rows.shape[0] // 2, low.size)),
        ]
    )
    got = traced(torch.as_tensor(rows), torch.as_tensor(theta)).numpy()
    np.testing.assert_allclose(got, de.door_law(rows, theta), atol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_expert_opens_every_kind_of_door_in_both_engines(
    family: DoorFamily, engine: str
) -> None:
    result = run_experts(family, engine, list(KINDS), seed=5)
    assert result.success.all(), f"{engine}: {result.success}"


def test_near_zero_opens_holds_the_handle_without_forcing_it(family: DoorFamily) -> None:
    task = KINDS[1]  # a pull knob with a closer
    env = VectorTaskEnv(family, "mujoco", 1)
    try:
        env.set_tasks([task])
        theta = family.expert_law_params(task)[None] * np.array([1.0, 0.0, 1.0, 1.0])
        obs = env.reset(np.random.default_rng(0))
        for _ in range(family.max_steps):
            obs, _, term, _, _ = env.step(family.control_law(obs, theta))
            assert not term[0], "the protective stop tripped"
    finally:
        env.close()
    assert obs[0, T.ANGLE] < 0.05  # held, not opened
    assert np.min(obs[0, T.OBS_SPEC.slice("touch")]) > de.TOUCH_FIRM  # the post is gripped


def test_working_window_holds_the_experts_theta_and_the_law_opens_doors_at_its_edges(
    family: DoorFamily,
) -> None:
    tasks = list(KINDS) + family.sample_tasks(np.random.default_rng(6), 8, "train")
    low, high = family.law_bounds()
    windows = [family.law_window(t) for t in tasks]
    for task, (lo, hi) in zip(tasks, windows, strict=True):
        theta = family.expert_law_params(task)
        assert np.all(low <= lo) and np.all(lo <= theta) and np.all(theta <= hi)
        assert np.all(hi <= high)
        # Press a latched lever, and only a latched one (the sign is part of every window).
        assert (lo[2] > 0) == task.latched and (hi[2] < 0) == (not task.latched)
    env = VectorTaskEnv(family, "mujoco", len(tasks))
    rng = np.random.default_rng(0)
    try:
        env.set_tasks(tasks)
        # The two corners, and the signs at one edge with the width at the other.
        for corner in ((0, 0), (1, 1), (0, 1), (1, 0)):
            theta = np.stack([np.r_[w[corner[0]][:3], w[corner[1]][3]] for w in windows])
            obs = env.reset(rng)
            success = np.zeros(len(tasks), dtype=bool)
            while not env.done.all():
                live = ~env.done
                obs, _, _, _, info = env.step(family.control_law(obs, theta))
                success |= info["success"] & live
            assert success.all(), (corner, success)
    finally:
        env.close()
