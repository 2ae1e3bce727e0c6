"""Behaviour of the door family: solvable splits, hidden parameters that matter, a latch that holds,
observation-based rewards, and the same door in both engines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.experts.evaluate import cross_task, run_experts, solvability
from adapt_robot.sim.families.door import DoorFamily, DoorParams
from adapt_robot.sim.families.door import task as T
from adapt_robot.sim.families.door.mujoco_scene import door_mjcf
from tests.sim.doors import door

ENGINES = ("mujoco", "pybullet")


@pytest.fixture(scope="module")
def family() -> DoorFamily:
    return DoorFamily()


def _episode(family: DoorFamily, engine: str, task: DoorParams, expert_task: DoorParams):
    """Run the expert tuned for ``expert_task`` on ``task``; observations, actions, rewards."""
    env = VectorTaskEnv(family, engine, 1)
    try:
        env.set_tasks([task])
        expert = family.expert(expert_task)
        expert.reset()
        obs = [env.reset(np.random.default_rng(0))[0]]
        acts, rews = [], []
        for _ in range(family.max_steps):
            a = expert.act(obs[-1])
            o, r, *_ = env.step(a[None])
            obs.append(o[0])
            acts.append(a)
            rews.append(r[0])
    finally:
        env.close()
    return np.array(obs), np.array(acts), np.array(rews)


# --- parameters and splits ----------------------------------------------------------------------
def test_bad_parameters_raise_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"DoorParams\.width"):
        door(width=0.5)
    with pytest.raises(ValueError, match=r"DoorParams\.hinge_side"):
        door(hinge_side="top")
    with pytest.raises(TypeError, match=r"DoorParams\.damping"):
        door(damping="stiff")
    with pytest.raises(ValueError, match=r"DoorParams\.latched"):
        door(handle="knob", latched=True)


def test_hidden_parameters_are_the_ones_to_adapt_to() -> None:
    hidden = set(DoorParams.hidden_names())
    assert {"hinge_side", "opens", "latched", "damping", "friction", "spring"} <= hidden
    assert not {"handle_x", "handle_y", "handle_z"} & hidden


def test_splits_are_disjoint_and_classified(family: DoorFamily) -> None:
    rng = np.random.default_rng(0)
    train = family.sample_tasks(rng, 200, "train")
    test = family.sample_tasks(rng, 200, "test")
    assert all(family.in_split(t) == "train" for t in train)
    assert all(family.in_split(t) == "test" for t in test)
    assert max(t.width for t in train) < min(t.width for t in test)
    # Every combination of the hidden choices appears in both splits.
    for tasks in (train, test):
        combos = {(t.hinge_side, t.opens, t.handle, t.latched) for t in tasks}
        assert len(combos) == 12
    with pytest.raises(ValueError, match="neither split"):
        family.in_split(door(width=0.25, damping=6.0))
    with pytest.raises(ValueError, match="split"):
        family.sample_tasks(rng, 1, "val")  # type: ignore[arg-type]


def test_every_door_compiles_to_the_same_sizes(family: DoorFamily) -> None:
    import mujoco

    from adapt_robot.sim.engines.mujoco_engine import asset_bytes

    assets = {"gripper.xml": asset_bytes("gripper/gripper.xml")}
    tasks = [door(handle="knob", latched=False, hinge_side="right", opens="pull"), door()]
    sizes = set()
    for t in tasks:
        m = mujoco.MjModel.from_xml_string(door_mjcf(t), assets)
        sizes.add((m.nq, m.nv, m.nu, m.na, m.nsensordata))
    assert sizes == {(8, 8, 6, 0, 16)}


# --- reward ------------------------------------------------------------------------------------
def test_reward_is_a_pure_function_of_observations() -> None:
    obs = np.zeros((3, T.OBS_SPEC.dim))
    nxt = obs.copy()
    nxt[:, T.HANDLE_REL] = [[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]]
    nxt[:, T.ANGLE] = [0.0, 0.0, T.SUCCESS_ANGLE]
    act = np.zeros((3, 4))
    r = T.reward(obs, act, nxt)
    assert r.shape == (3,)
    assert r[0] > r[1]  # closer to the handle is better
    assert r[2] > r[0] + T.W_SUCCESS  # opening plus the success bonus
    np.testing.assert_array_equal(T.success(nxt), [False, False, True])
    np.testing.assert_allclose(T.reward(obs[0], act[0], nxt[0]), r[0])  # unbatched


@pytest.mark.parametrize("engine", ENGINES)
def test_env_reward_equals_reward_recomputed_from_observations(
    family: DoorFamily, engine: str
) -> None:
    task = door(opens="pull", hinge_side="right")
    obs, acts, rews = _episode(family, engine, task, task)
    recomputed = T.reward(obs[:-1], acts, obs[1:])
    # The env reports float32 observations; recomputing from them matches to float32 precision.
    np.testing.assert_allclose(rews, recomputed, atol=1e-4)
    assert T.success(obs[1:]).any()


# --- the latch -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_latched_door_opens_only_after_pressing_the_lever(family: DoorFamily, engine: str) -> None:
    task = door(opens="pull", latched=True)
    # An expert that believes it is a knob pulls without pressing: the latch holds the door.
    naive = dataclasses.replace(task, handle="knob", latched=False)
    obs, _, _ = _episode(family, engine, task, naive)
    assert obs[:, T.ANGLE].max() < T.LATCH_ZONE
    assert obs[:, T.LEVER].max() < T.LEVER_UNLATCH
    # The same door without its latch opens under the same naive expert.
    free = dataclasses.replace(task, latched=False)
    obs, _, _ = _episode(family, engine, free, naive)
    assert obs[:, T.ANGLE].max() >= T.SUCCESS_ANGLE
    # Pressing the lever first releases the latch.
    obs, _, _ = _episode(family, engine, task, task)
    assert obs[:, T.LEVER].max() > T.LEVER_UNLATCH
    assert obs[:, T.ANGLE].max() >= T.SUCCESS_ANGLE


# --- engines agree ----------------------------------------------------------------------------
def test_engines_agree_on_the_same_actions(family: DoorFamily) -> None:
    task = door(opens="pull", handle="knob", latched=False)
    mj, acts, _ = _episode(family, "mujoco", task, task)
    env = VectorTaskEnv(family, "pybullet", 1)
    try:
        env.set_tasks([task])
        pb = [env.reset(np.random.default_rng(0))[0]]
        for a in acts[:40]:
            pb.append(env.step(a[None])[0][0])
    finally:
        env.close()
    pb_obs = np.array(pb)
    np.testing.assert_allclose(pb_obs[0], mj[0], atol=1e-3)  # same start, same sensors
    np.testing.assert_allclose(pb_obs[:, T.EE], mj[:41, T.EE], atol=0.01)
    np.testing.assert_allclose(pb_obs[:, T.ANGLE], mj[:41, T.ANGLE], atol=0.05)


# --- experts ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("engine", "n"), [("mujoco", 16), ("pybullet", 8)])
@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_solves_both_splits(family: DoorFamily, engine: str, split: str, n: int) -> None:
    result = solvability(family, engine, split, n, seed=1)  # type: ignore[arg-type]
    assert result.rate >= 0.95, f"{engine}/{split}: expert success {result.rate:.2f}"


def test_hidden_parameters_matter(family: DoorFamily) -> None:
    tasks = family.sample_tasks(np.random.default_rng(2), 16, "train")
    flips = {
        "opens": {"push": "pull", "pull": "push"},
        "hinge_side": {"left": "right", "right": "left"},
    }
    for name, flip in flips.items():
        wrong = [dataclasses.replace(t, **{name: flip[getattr(t, name)]}) for t in tasks]
        rate = run_experts(family, "mujoco", tasks, wrong, seed=2).rate
        assert rate <= 0.2, f"an expert with the wrong {name} still succeeds {rate:.2f}"
    own, other = cross_task(family, "mujoco", 16, seed=2)
    assert own >= 0.95 and other <= own - 0.5


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_solves_both_splits_at_scale(family: DoorFamily, engine: str, split: str) -> None:
    result = solvability(family, engine, split, 48, seed=0)  # type: ignore[arg-type]
    assert result.rate >= 0.95, f"{engine}/{split}: expert success {result.rate:.2f}"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_cross_task_at_scale(family: DoorFamily, engine: str) -> None:
    own, other = cross_task(family, engine, 48, seed=0)
    assert own >= 0.95 and other <= own - 0.5
