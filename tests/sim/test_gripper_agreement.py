"""MuJoCo and PyBullet move the gripper alike under the same actions.

Documented tolerance (README, sim/core/gripper.py): over 60 random actions at 20 Hz, grip-point
position within 2 mm, finger travel within 5 mm, grip-point velocity within 0.1 m/s.
"""

from __future__ import annotations

import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.params import TaskParams
from tests.sim.gripper_only import make

POS_TOL, FINGER_TOL, VEL_TOL = 2e-3, 5e-3, 0.1


def trajectory(engine: str, seed: int) -> np.ndarray:
    physics = make(engine)
    physics.set_tasks([TaskParams()])
    sensors = physics.reset(np.random.default_rng(seed))
    target = sensors[:, :3].copy()
    rng = np.random.default_rng(seed + 1)
    out = [sensors[0]]
    for _ in range(60):
        action = rng.uniform(-1, 1, (1, 4))
        out.append(physics.step(gripper.gripper_control(action, target))[0])
    physics.close()
    return np.array(out)


def test_gripper_motion_agrees_across_engines() -> None:
    for seed in (0, 1):
        mj, pb = trajectory("mujoco", seed), trajectory("pybullet", seed)
        assert np.abs(mj[:, :3] - pb[:, :3]).max() < POS_TOL
        assert np.abs(mj[:, 3:5] - pb[:, 3:5]).max() < FINGER_TOL
        assert np.abs(mj[:, 5:8] - pb[:, 5:8]).max() < VEL_TOL
        # and it really moved: the agreement is not two grippers standing still
        assert np.ptp(mj[:, :3], axis=0).min() > 0.02


def test_workspace_and_finger_limits_hold() -> None:
    for engine in ("mujoco", "pybullet"):
        physics = make(engine)
        physics.set_tasks([TaskParams()])
        target = physics.reset(np.random.default_rng(0))[:, :3].copy()
        for _ in range(40):
            s = physics.step(gripper.gripper_control(np.array([[1.0, -1.0, -1.0, 1.0]]), target))
        physics.close()
        assert s[0, 0] <= gripper.WORKSPACE_HIGH[0] + 2e-3
        assert s[0, 2] >= gripper.WORKSPACE_LOW[2] - 2e-3
        assert s[0, 3] <= gripper.FINGER_OPEN + 2e-3
