"""SimRobot: the task families as robots for the control loop, in MuJoCo and PyBullet."""

from __future__ import annotations

import numpy as np
import pytest

from adapt_robot.deploy import SimRobot, SimRobotConfig
from adapt_robot.runtime.loop import ControlLoop, LoopConfig
from adapt_robot.runtime.robot import Robot
from tests.runtime.loop_fakes import LinearController

CASES = [(f, e) for f in ("grasp", "door") for e in ("mujoco", "pybullet")]


def _actions(n: int, dim: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, dim)).astype(np.float32)


def _rollout(robot: SimRobot, actions: np.ndarray) -> np.ndarray:
    obs = [robot.reset()]
    for a in actions:
        robot.send_action(a)
        obs.append(robot.read_obs())
    return np.stack(obs)


@pytest.mark.parametrize(("family", "engine"), CASES)
def test_reset_step_reward_follow_the_family(family: str, engine: str) -> None:
    with SimRobot(SimRobotConfig(family=family, engine=engine, split="test", seed=0)) as robot:
        assert isinstance(robot, Robot)
        fam = robot.family
        obs = robot.reset()
        assert obs.shape == (robot.obs_dim,) == (fam.obs_spec.dim,)
        assert obs.dtype == np.float32 and np.isfinite(obs).all()
        np.testing.assert_array_equal(robot.read_obs(), obs)
        assert robot.reward() is None and not robot.done() and robot.success() is False
        assert robot.task is not None and fam.in_split(robot.task) == "test"
        ctx = fam.reward_context(robot.task)[None]
        for a in _actions(5, robot.action_dim):
            before = robot.read_obs()
            robot.send_action(a * 2)  # out-of-range commands are clipped like the env does
            after = robot.read_obs()
            clipped = np.clip(a * 2, -1, 1).astype(np.float64)
            expected = fam.reward(before[None], clipped[None], after[None], ctx)[0]
            assert robot.reward() == pytest.approx(float(expected))
        assert robot.steps == 5
        assert not np.array_equal(robot.read_obs(), obs), "the commands moved nothing"


@pytest.mark.parametrize(("family", "engine"), CASES)
def test_same_seed_gives_the_same_observations(family: str, engine: str) -> None:
    actions = _actions(8, 4)
    runs = []
    for seed in (7, 7, 8):
        with SimRobot(SimRobotConfig(family=family, engine=engine, seed=seed)) as robot:
            runs.append((_rollout(robot, actions), robot.task))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert runs[0][1] != runs[2][1] or not np.array_equal(runs[0][0], runs[2][0])


def test_episode_ends_at_the_family_horizon_and_refuses_more_actions() -> None:
    with SimRobot(SimRobotConfig(family="door", engine="mujoco")) as robot:
        robot.reset()
        zero = np.zeros(robot.action_dim, dtype=np.float32)
        while not robot.done():
            robot.send_action(zero)
        assert robot.steps == robot.family.max_steps
        assert isinstance(robot.success(), bool)
        with pytest.raises(RuntimeError, match="episode has ended; call reset"):
            robot.send_action(zero)
        robot.reset()
        assert not robot.done() and robot.steps == 0


def test_bad_actions_raise_before_any_physics() -> None:
    with SimRobot(SimRobotConfig(family="grasp", engine="pybullet")) as robot:
        with pytest.raises(RuntimeError, match="call reset"):
            robot.read_obs()
        robot.reset()
        with pytest.raises(ValueError, match=r"expected shape \(4,\)"):
            robot.send_action(np.zeros(3))
        with pytest.raises(ValueError, match="non-finite"):
            robot.send_action(np.array([0, np.nan, 0, 0]))
        assert robot.steps == 0


def test_task_is_kept_until_due() -> None:
    with SimRobot(SimRobotConfig(family="grasp", engine="mujoco", seed=3)) as robot:
        tasks = []
        for _ in range(3):
            robot.reset()
            tasks.append(robot.task)
        assert tasks[0] == tasks[1] == tasks[2]
        robot.new_task()
        robot.reset()
        assert robot.task != tasks[0]
    cfg = SimRobotConfig(family="grasp", engine="mujoco", seed=3, episodes_per_task=1)
    with SimRobot(cfg) as robot:
        drawn = []
        for _ in range(3):
            robot.reset()
            drawn.append(robot.task)
        assert drawn[0] != drawn[1] != drawn[2]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        SimRobotConfig(split="val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="episodes_per_task"):
        SimRobotConfig(episodes_per_task=0)
    with pytest.raises(ValueError, match="engine"):
        SimRobot(SimRobotConfig(family="grasp", engine="numpy"))


def test_the_control_loop_runs_episodes_on_a_sim_robot() -> None:
    with SimRobot(SimRobotConfig(family="grasp", engine="pybullet", seed=0)) as robot:
        ctrl = LinearController(robot.obs_dim, robot.action_dim, seed=0)
        ctrl.W *= 0.05
        stats = ControlLoop(robot, ctrl, LoopConfig(rate_hz=1000, max_episodes=2)).run()
    assert stats.episodes == 2 and stats.errors == 0 and stats.bad_actions == 0
    assert stats.ticks == len(ctrl.acted) == len(ctrl.observed)
    assert sum(d for _, d, _ in ctrl.observed) == 2
    assert all(isinstance(r, float) for r, _, _ in ctrl.observed)


def test_pybullet_episodes_after_the_first_start_clean() -> None:
    """Regression: PyBullet kept the last step's contacts across reset(), so every second
    episode began with a phantom grip (the expert then lifted nothing)."""
    from adapt_robot.sim.registry import get_family

    family = get_family("grasp")
    task = family.sample_tasks(np.random.default_rng(0), 1, "test")[0]
    robot = SimRobot(SimRobotConfig(family="grasp", engine="pybullet", split="test", seed=0))
    robot.set_task(task)
    expert = family.expert(task)
    try:
        for _ in range(3):
            obs = robot.reset()
            assert float(np.abs(obs[family.obs_spec.slice("pad_force")]).max()) == 0.0
            ok = False
            for _ in range(family.max_steps):
                robot.send_action(expert.act(obs))
                obs = robot.read_obs()
                ok = ok or bool(robot.success())
                if robot.done():
                    break
            assert ok
    finally:
        robot.close()
