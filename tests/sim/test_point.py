from __future__ import annotations

import numpy as np
import pytest

from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.experts.evaluate import cross_task, solvability
from adapt_robot.sim.families.point import PointFamily, PointParams


def test_reward_hand_computed() -> None:
    family = PointFamily()
    env = VectorTaskEnv(family, "numpy", 1)
    env.set_tasks([PointParams(goal_x=0.3, goal_y=-0.4)])
    obs = env.reset(np.random.default_rng(0))
    next_obs, rew, *_ = env.step(np.array([[1.0, 0.5]]))
    expected = np.clip(obs[0] + np.array([0.1, 0.05]), -1, 1)
    np.testing.assert_allclose(next_obs[0], expected, atol=1e-7)
    assert rew[0] == pytest.approx(-np.hypot(expected[0] - 0.3, expected[1] + 0.4), abs=1e-6)


def test_expert_solves_both_splits_and_goal_matters() -> None:
    family = PointFamily()
    assert solvability(family, "numpy", "train", 40).rate == 1.0
    assert solvability(family, "numpy", "test", 40).rate == 1.0
    own, other = cross_task(family, "numpy", 40)
    assert own == 1.0 and other < 0.2


def test_out_of_range_goal_rejected() -> None:
    with pytest.raises(ValueError, match=r"PointParams\.goal_x: expected a value in \[-1.0, 1.0\]"):
        PointParams(goal_x=1.5, goal_y=0.0)
    with pytest.raises(TypeError, match=r"PointParams\.goal_y: expected a number, got str"):
        PointParams(goal_x=0.0, goal_y="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside both splits"):
        PointFamily().in_split(PointParams(goal_x=0.9, goal_y=0.9))
