"""``grasp``: pick an object up with the parallel-jaw gripper and hold it 10 cm up for 1 s.

Objects differ in shape and size (visible, as a camera gives them) and in mass, friction,
centre of mass and fragility (hidden). A fragile object breaks when both pads squeeze it harder
than its break force, which is below what a heavy slippery object needs, and its safe window is
narrow (its break force is 1.1-1.6 times the smallest that allows a careful grip). Train objects
range from 50 g fragile ones to 3 kg slippery ones: no single grip suits most of them (with the
other parameters known and one fixed hidden setting, the best expert lifts about half the train
objects; see ``python -m adapt_robot.sim.experts.headroom grasp``), so the squeeze has to be adapted
to the object in hand.

The family is engine-agnostic: the engines report raw sensors (gripper 10 + object 10, see
:mod:`adapt_robot.sim.families.grasp.mujoco_scene`); :meth:`GraspFamily.observe` turns them into the
documented observation, keeps the lift timer and latches the broken flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.family import EpisodeState, Expert, Physics, Split, TaskFamily
from adapt_robot.sim.families.grasp import expert as ge
from adapt_robot.sim.families.grasp import reward as gr
from adapt_robot.sim.families.grasp import task as gt
from adapt_robot.sim.families.grasp.expert import GraspExpert

_S_EE = slice(0, 3)
_S_FQ = slice(3, 5)
_S_EV = slice(5, 8)
_S_TOUCH = slice(8, 10)
_S_OPOS = slice(10, 13)
_S_OQUAT = slice(13, 17)
_S_OVEL = slice(17, 20)
SENSOR_DIM = gripper.N_SENSORS + 10
_LOW = gr.OBS_SPEC.low.astype(np.float64)
_HIGH = gr.OBS_SPEC.high.astype(np.float64)


def _axes(quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World x and z axes of rotations given as quaternions (w, x, y, z) ``[B, 4]``."""
    q = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    xaxis = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], axis=1)
    zaxis = np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], axis=1)
    return xaxis, zaxis


class GraspFamily(TaskFamily[gt.GraspParams]):
    """Lift objects of unknown mass, friction, centre of mass and fragility."""

    name = "grasp"
    params_type = gt.GraspParams
    obs_spec = gr.OBS_SPEC
    action_spec = gr.ACTION_SPEC
    control_hz = gripper.CONTROL_HZ
    max_steps = 120
    engines = ("mujoco", "pybullet")

    def sample_tasks(self, rng: np.random.Generator, n: int, split: Split) -> list[gt.GraspParams]:
        """Solvable tasks; ``test`` holds composite shapes and out-of-training ranges."""
        return gt.sample(rng, n, split)

    def in_split(self, task: gt.GraspParams) -> Split:
        """``train`` for primitives within the train ranges, ``test`` otherwise."""
        return gt.classify(gt.as_grasp(task))

    def make_physics(self, engine: str, batch: int) -> Physics:
        """MuJoCo (threaded rollout) or PyBullet (one client per env)."""
        self.check_engine(engine)
        if engine == "mujoco":
            from adapt_robot.sim.engines.mujoco_engine import MujocoPhysics
            from adapt_robot.sim.families.grasp.mujoco_scene import GraspMujocoScene

            return MujocoPhysics(GraspMujocoScene(), batch)
        from adapt_robot.sim.engines.bullet_engine import BulletPhysics
        from adapt_robot.sim.families.grasp.bullet_scene import GraspBulletScene

        return BulletPhysics(GraspBulletScene, batch)

    def new_episode(self, tasks: Sequence[gt.GraspParams], sensors: np.ndarray) -> EpisodeState:
        """Controller target at the start pose; object size, shape and break force per env."""
        if sensors.shape != (len(tasks), SENSOR_DIM):
            raise ValueError(
                f"sensors: expected shape {(len(tasks), SENSOR_DIM)}, got {sensors.shape}"
            )
        return {
            "target": sensors[:, _S_EE].copy(),
            "size": np.stack([gt.size(t) for t in tasks]),
            "shape": np.stack([gt.shape_onehot(t) for t in tasks]),
            "break_force": np.array([t.break_force for t in tasks]),
            "held_steps": np.zeros(len(tasks)),
            "broken": np.zeros(len(tasks)),
        }

    def control(self, action: np.ndarray, state: EpisodeState) -> np.ndarray:
        """End-effector target step and finger forces (see :mod:`adapt_robot.sim.core.gripper`)."""
        return gripper.gripper_control(action, state["target"])

    def observe(self, sensors: np.ndarray, state: EpisodeState) -> np.ndarray:
        """Observation from sensors; updates the lift timer and the broken latch."""
        ee, touch = sensors[:, _S_EE], sensors[:, _S_TOUCH]
        obj = sensors[:, _S_OPOS]
        xaxis, zaxis = _axes(sensors[:, _S_OQUAT])
        size = state["size"]
        height = obj[:, 2] - size[:, 2]
        crushed = np.all(touch > state["break_force"][:, None], axis=1)
        state["broken"] = np.maximum(state["broken"], crushed.astype(np.float64))
        up = (height >= gr.LIFT_HEIGHT) & (state["broken"] < 0.5)
        state["held_steps"] = np.where(up, state["held_steps"] + 1, 0.0)
        timer = np.minimum(state["held_steps"] / self.control_hz, gr.TIMER_CAP)
        fq = sensors[:, _S_FQ]
        obs = np.concatenate(
            [
                ee,
                fq,
                (2 * gripper.FINGER_OPEN - fq.sum(axis=1))[:, None],
                sensors[:, _S_EV],
                obj,
                obj - ee,
                xaxis,
                zaxis,
                sensors[:, _S_OVEL],
                size,
                state["shape"],
                height[:, None],
                touch / gr.FORCE_SCALE,
                timer[:, None],
                state["broken"][:, None],
            ],
            axis=1,
        )
        return np.clip(obs, _LOW, _HIGH)

    def reward(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, ctx: np.ndarray
    ) -> np.ndarray:
        """Observation-based reward (:func:`adapt_robot.sim.families.grasp.reward.reward`)."""
        del ctx
        return gr.reward(obs, action, next_obs)

    def success(self, next_obs: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        """Held 1 s at 10 cm, unbroken."""
        del ctx
        return gr.success(next_obs)

    def terminated(self, next_obs: np.ndarray) -> np.ndarray:
        """The object broke."""
        return gr.terminated(next_obs)

    def expert(self, task: gt.GraspParams) -> Expert:
        """State-machine expert told the true grip window and centre of mass."""
        return GraspExpert(gt.as_grasp(task))

    law_params = ge.LAW_PARAMS

    def law_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Grip 2-108 N, centre-of-mass offset +-1 cm."""
        return ge.LAW_LOW.copy(), ge.LAW_HIGH.copy()

    def expert_law_params(self, task: gt.GraspParams) -> np.ndarray:
        """``[grip, com_x]`` of the expert told ``task``."""
        return ge.law_params(gt.as_grasp(task))

    def law_window(self, task: gt.GraspParams) -> tuple[np.ndarray, np.ndarray]:
        """:func:`adapt_robot.sim.families.grasp.expert.law_window`."""
        return ge.law_window(gt.as_grasp(task))

    def control_law(self, obs: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """:func:`adapt_robot.sim.families.grasp.expert.grasp_law`."""
        return ge.grasp_law(obs, theta)
