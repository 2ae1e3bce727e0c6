"""Behaviour of the grasp family: solvable splits, hidden parameters that matter, pure rewards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from adapt_robot.sim.core import gripper
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.experts.evaluate import cross_task, run_experts, solvability
from adapt_robot.sim.families.grasp import GraspFamily, GraspParams
from adapt_robot.sim.families.grasp import reward as gr
from adapt_robot.sim.families.grasp import task as gt
from adapt_robot.sim.families.grasp.expert import GraspExpert
from adapt_robot.sim.families.grasp.family import SENSOR_DIM

ENGINES = ("mujoco", "pybullet")
S = gr.OBS_SPEC


@pytest.fixture(scope="module")
def family() -> GraspFamily:
    return GraspFamily()


def _task(**kw: object) -> GraspParams:
    base: dict[str, object] = {
        "shape": "box",
        "half_width": 0.025,
        "half_depth": 0.025,
        "half_height": 0.04,
        "mass": 0.3,
        "friction": 0.8,
        "com_x": 0.0,
        "com_z": 0.0,
        "break_force": 1000.0,
    }
    base.update(kw)
    return GraspParams(**base)  # type: ignore[arg-type]


def _episode(family, engine, task, grip_force=None, seed=0):
    """Run one expert episode; returns (obs [T+1, O], actions [T, A], rewards, success, term)."""
    env = VectorTaskEnv(family, engine, 1)
    try:
        env.set_tasks([task])
        expert = GraspExpert(task, grip_force=grip_force)
        obs = env.reset(np.random.default_rng(seed))
        traj, acts, rews, succ, term = [obs[0]], [], [], [], []
        for _ in range(family.max_steps):
            a = expert.act(obs[0])
            obs, r, te, _, info = env.step(a[None])
            traj.append(obs[0])
            acts.append(a)
            rews.append(r[0])
            succ.append(info["success"][0])
            term.append(te[0])
            if env.done.all():
                break
    finally:
        env.close()
    return np.array(traj), np.array(acts), np.array(rews), np.array(succ), np.array(term)


# --- solvability and hidden parameters ------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_solves_split(family, engine, split):
    result = solvability(family, engine, split, 12, seed=1)
    assert result.rate >= 0.95, f"{engine}/{split}: expert success {result.rate:.2f}"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_solves_split_many(family, engine, split):
    result = solvability(family, engine, split, 48, seed=2)
    assert result.rate >= 0.95, f"{engine}/{split}: expert success {result.rate:.2f}"


@pytest.mark.parametrize("engine", ENGINES)
def test_mismatched_expert_fails_more(family, engine):
    own, other = cross_task(family, engine, 16, seed=0)
    assert own >= 0.95
    assert other <= own - 0.25, f"cross-task success {other:.2f} vs own {own:.2f}"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_mismatched_expert_fails_more_many(family, engine):
    own, other = cross_task(family, engine, 48, seed=4)
    assert own >= 0.95
    assert other <= own - 0.25


@pytest.mark.parametrize("engine", ENGINES)
def test_fragile_object_breaks_when_over_squeezed(family, engine):
    fragile = _task(mass=0.1, friction=1.0, break_force=15.0)
    obs, _, rew, succ, term = _episode(family, engine, fragile, grip_force=60.0)
    assert term.any() and not succ.any()
    assert obs[-1, S.index("broken")] == 1.0
    first = int(np.argmax(term))
    assert rew[first] < -5.0, "breaking must be penalised"
    _, _, _, succ_gentle, term_gentle = _episode(family, engine, fragile)
    assert succ_gentle.any() and not term_gentle.any()


@pytest.mark.parametrize("engine", ENGINES)
def test_heavy_slippery_object_slips_with_weak_grip(family, engine):
    heavy = _task(mass=2.8, friction=0.25, half_height=0.05)
    assert family.in_split(heavy) == "train", "heavy slippery objects are trained on"
    obs, _, _, succ, _ = _episode(family, engine, heavy, grip_force=20.0)
    assert not succ.any()
    assert obs[-1, S.index("obj_height")] < 0.05, "a weak grip must let it slip"
    assert obs[-1, S.slice("ee_pos")][2] > 0.15, "the gripper itself did lift"
    _, _, _, succ_firm, _ = _episode(family, engine, heavy)
    assert succ_firm.any()


def test_expert_action_is_a_function_of_the_observation(family):
    """A memoryless policy can clone the expert: a fresh expert, fed the episode's observations
    backwards, gives the same actions (no timer or remembered phase decides anything)."""
    task = family.sample_tasks(np.random.default_rng(5), 1, "train")[0]
    obs, acts, _, succ, _ = _episode(family, "mujoco", task)
    assert succ.any()
    fresh = GraspExpert(task)
    again = np.array([fresh.act(o) for o in obs[-2::-1]])[::-1]
    np.testing.assert_array_equal(again, acts)
    phases = [fresh.phase(o) for o in obs[:-1]]
    assert {"approach", "close", "lift"} <= set(phases)


def test_wrong_grip_is_what_fails_cross_task(family):
    light_fragile = _task(mass=0.08, friction=1.2, break_force=12.0)
    heavy_slippery = _task(mass=2.5, friction=0.3, half_height=0.05)
    tasks = [light_fragile, heavy_slippery]
    assert [family.in_split(t) for t in tasks] == ["train", "train"]
    own = run_experts(family, "mujoco", tasks, seed=0)
    swapped = run_experts(family, "mujoco", tasks, expert_tasks=tasks[::-1], seed=0)
    assert own.success.all()
    assert not swapped.success.any()


# --- reward, observation and episode logic (no simulator needed for most) -------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_reward_recomputed_from_observations(family, engine):
    task = family.sample_tasks(np.random.default_rng(5), 1, "train")[0]
    obs, acts, rew, succ, term = _episode(family, engine, task)
    again = gr.reward(obs[:-1], acts, obs[1:])
    np.testing.assert_allclose(again, rew, atol=1e-4)
    np.testing.assert_array_equal(gr.success(obs[1:]), succ)
    np.testing.assert_array_equal(gr.terminated(obs[1:]), term)
    assert succ.any()


def _sensors(batch=1, obj_z=0.04, touch=(0.0, 0.0)):
    s = np.zeros((batch, SENSOR_DIM))
    s[:, 0:3] = (0.0, 0.0, 0.2)
    s[:, 8:10] = touch
    s[:, 10:13] = (0.01, 0.02, obj_z)
    s[:, 13:17] = (1.0, 0.0, 0.0, 0.0)
    return s


def test_observe_layout_timer_and_break_latch(family):
    task = _task(break_force=20.0)
    state = family.new_episode([task], _sensors())
    obs = family.observe(_sensors(), state)
    assert obs.shape == (1, S.dim)
    np.testing.assert_allclose(obs[0, S.slice("obj_size")], [0.025, 0.025, 0.04])
    np.testing.assert_allclose(obs[0, S.slice("obj_zaxis")], [0, 0, 1])
    np.testing.assert_allclose(obs[0, S.slice("obj_xaxis")], [1, 0, 0])
    np.testing.assert_allclose(obs[0, S.slice("obj_rel")], [0.01, 0.02, -0.16])
    assert obs[0, S.slice("shape")][gt.SHAPES.index("box")] == 1.0
    assert obs[0, S.index("obj_height")] == pytest.approx(0.0)
    up = _sensors(obj_z=0.04 + 0.11, touch=(15.0, 15.0))
    for k in range(1, 21):
        obs = family.observe(up, state)
        assert obs[0, S.index("lift_timer")] == pytest.approx(k / gripper.CONTROL_HZ)
    assert gr.success(obs)[0]
    down = family.observe(_sensors(), state)
    assert down[0, S.index("lift_timer")] == 0.0, "dropping resets the timer"
    one_pad = family.observe(_sensors(touch=(25.0, 0.0)), state)
    assert one_pad[0, S.index("broken")] == 0.0, "breaking needs a squeeze from both pads"
    crushed = family.observe(_sensors(obj_z=0.15, touch=(25.0, 25.0)), state)
    assert crushed[0, S.index("broken")] == 1.0
    assert gr.terminated(crushed)[0] and not gr.success(crushed)[0]
    later = family.observe(_sensors(obj_z=0.15), state)
    assert later[0, S.index("broken")] == 1.0, "broken is latched"
    assert later[0, S.index("lift_timer")] == 0.0


def test_reward_terms_are_pure_and_batched():
    obs = np.zeros((3, S.dim))
    nxt = obs.copy()
    nxt[1, S.index("lift_timer")] = 1.0
    nxt[1, S.index("obj_height")] = 0.12
    nxt[2, S.index("broken")] = 1.0
    r = gr.reward(obs, np.zeros((3, 4)), nxt)
    assert r.shape == (3,)
    assert r[1] - r[0] == pytest.approx(2.0 * 1.2 + 0.1 + 5.0)
    assert r[2] - r[0] == pytest.approx(-10.0)
    again = gr.reward(nxt, np.zeros((3, 4)), nxt)
    assert again[2] == pytest.approx(r[0]), "the break penalty is paid once"
    np.testing.assert_array_equal(gr.success(nxt), [False, True, False])


@pytest.mark.parametrize("engine", ENGINES)
def test_every_shape_starts_where_drawn(family, engine):
    """Same seed, same start in both engines: checks the object frame (not its COM) is reported."""
    rng = np.random.default_rng(0)
    tasks = []
    for shape in gt.SHAPES:
        split = "test" if shape in gt.TEST_SHAPES else "train"
        while True:
            t = family.sample_tasks(rng, 1, split)[0]
            if t.shape == shape:
                tasks.append(dataclasses.replace(t, com_x=0.0 if shape == "sphere" else 0.008))
                break
    env = VectorTaskEnv(family, engine, len(tasks))
    try:
        env.set_tasks(tasks)
        obs = env.reset(np.random.default_rng(3))
        init_rng = np.random.default_rng(3)
        for i, task in enumerate(tasks):
            init = gt.draw_initial(task, init_rng)
            np.testing.assert_allclose(obs[i, S.slice("obj_pos")][:2], init[:2], atol=1e-5)
            assert obs[i, S.index("obj_height")] == pytest.approx(0.0, abs=1e-5)
            np.testing.assert_allclose(obs[i, S.slice("ee_pos")], init[3:6], atol=1e-5)
            yaw = np.arctan2(*obs[i, S.slice("obj_xaxis")][1::-1])
            assert yaw == pytest.approx(init[2], abs=1e-4)
        for _ in range(10):  # resting objects stay put
            obs, *_ = env.step(np.tile([0.0, 0.0, 0.0, -1.0], (len(tasks), 1)))
        assert np.abs(obs[:, S.index("obj_height")]).max() < 3e-3
        assert np.abs(obs[:, S.slice("obj_vel")]).max() < 0.02
    finally:
        env.close()


# --- splits and parameter validation --------------------------------------------------------


def test_splits_are_disjoint_and_test_holds_new_objects(family):
    train = family.sample_tasks(np.random.default_rng(0), 300, "train")
    test = family.sample_tasks(np.random.default_rng(0), 300, "test")
    assert all(family.in_split(t) == "train" for t in train)
    assert all(family.in_split(t) == "test" for t in test)
    assert not set(train) & set(test)
    assert {t.shape for t in train} == set(gt.TRAIN_SHAPES)
    assert set(gt.TEST_SHAPES) <= {t.shape for t in test}
    for t in test:
        if t.shape in gt.TRAIN_SHAPES:
            assert not gt.in_train_ranges(t), f"a primitive test object must be out of range: {t}"
    assert any(t.fragile for t in train) and any(not t.fragile for t in train)
    for t in train + test:
        low, high = gt.grip_window(t)
        assert low <= high <= gripper.FINGER_FORCE_MAX
        assert t.half_width <= gt.MAX_HALF_WIDTH


def test_same_seed_same_tasks(family):
    a = family.sample_tasks(np.random.default_rng(9), 20, "test")
    b = family.sample_tasks(np.random.default_rng(9), 20, "test")
    assert a == b


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"mass": 10.0}, "GraspParams.mass"),
        ({"friction": "high"}, "GraspParams.friction"),
        ({"shape": "cone"}, "GraspParams.shape"),
        ({"half_width": 0.06}, "GraspParams.half_width"),
        ({"shape": "sphere", "half_width": 0.03, "half_depth": 0.03}, "GraspParams.half_height"),
        ({"shape": "cylinder", "half_depth": 0.03}, "GraspParams.half_depth"),
    ],
)
def test_bad_parameter_names_the_field(kw, field):
    with pytest.raises((ValueError, TypeError), match=field):
        _task(**kw)


def test_unsolvable_task_is_in_neither_split(family):
    too_heavy_for_its_fragility = _task(mass=2.0, friction=0.3, break_force=20.0)
    with pytest.raises(ValueError, match="neither split"):
        family.in_split(too_heavy_for_its_fragility)
    rolling_ball = _task(
        shape="sphere", half_width=0.03, half_depth=0.03, half_height=0.03, com_x=0.005
    )
    with pytest.raises(ValueError, match="rolls"):
        family.in_split(rolling_ball)
    with pytest.raises(ValueError, match="split"):
        family.sample_tasks(np.random.default_rng(0), 2, "val")  # type: ignore[arg-type]
