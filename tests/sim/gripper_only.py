"""A scene with only the table and the gripper, in both engines (for gripper-agreement tests)."""

from __future__ import annotations

import mujoco
import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.bullet_engine import BulletPhysics, BulletScene
from adapt_robot.sim.engines.mujoco_engine import MujocoPhysics, MujocoScene

START = np.array([0.0, 0.0, 0.2, 0.0, 0.0])

MJCF = f"""<mujoco model="gripper_only">
  <option timestep="{gripper.TIMESTEP}" cone="elliptic" integrator="implicitfast"/>
  <include file="gripper.xml"/>
  <worldbody>
    <geom name="table" type="plane" size="1 1 0.01"/>
    <camera name="overview" pos="0.8 -0.8 0.6" xyaxes="1 1 0 -0.3 0.3 1"/>
  </worldbody>
</mujoco>"""


class _Start:
    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        return START + np.r_[rng.uniform(-0.05, 0.05, 3), 0.0, 0.0]


class MujocoGripperOnly(_Start, MujocoScene):
    def mjcf(self, task: TaskParams) -> str:
        return MJCF

    def initial_qpos(self, model: mujoco.MjModel, task: TaskParams, init: np.ndarray) -> np.ndarray:
        return init.copy()


class BulletGripperOnly(_Start, BulletScene):
    def build(self, client: int, task: TaskParams) -> None:
        pass

    def reset(self, client: int, task: TaskParams, init: np.ndarray) -> np.ndarray:
        return init

    def sensors(self, client: int, gripper_id: int) -> np.ndarray:
        return np.zeros(0)


def make(engine: str, batch: int = 1) -> MujocoPhysics | BulletPhysics:
    if engine == "mujoco":
        return MujocoPhysics(MujocoGripperOnly(), batch)
    return BulletPhysics(BulletGripperOnly, batch)
