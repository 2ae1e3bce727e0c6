"""PyBullet twin of the door scene, with the same bodies, masses, inertias and joint laws.

The door is a multibody (panel, lever arm, post) on a fixed base at the hinge; the joint laws are
applied by hand before every sub-step.

Joint laws (both engines): hinge torque ``-closer - spring q - damping qdot`` plus the latch
``-(LATCH_STIFFNESS q + LATCH_DAMPING qdot) * ctrl``, and dry friction ``friction`` (a velocity
motor with target 0 and that force limit, PyBullet's counterpart of MuJoCo's ``frictionloss``);
lever torque ``-stiffness (q - springref) - LEVER_DAMPING qdot``; swivel torque
``-SWIVEL_DAMPING qdot``. Joint ranges are enforced as joint limits (the swivel has none).
"""

from __future__ import annotations

import numpy as np
import pybullet as pb

from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.bullet_engine import BulletScene
from adapt_robot.sim.families.door import task as T
from adapt_robot.sim.families.door.task import DoorGeometry, DoorParams

_IDENTITY = (0.0, 0.0, 0.0, 1.0)
_HINGE, _LEVER, _SWIVEL = 0, 1, 2
_JOINTS = (_HINGE, _LEVER, _SWIVEL)
_WOOD = (0.72, 0.55, 0.35, 1.0)
_METAL = (0.6, 0.6, 0.65, 1.0)


class DoorBulletScene(BulletScene):
    """One door in one PyBullet client."""

    camera_target = (0.05, 0.0, 0.12)
    camera_distance = 1.1
    camera_yaw = -50.0
    camera_pitch = -28.0

    def __init__(self) -> None:
        self.body = -1
        self.task: DoorParams | None = None
        self.geom: DoorGeometry | None = None

    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        """Gripper start, drawn as the MuJoCo scene draws it."""
        return T.draw_initial(T.as_door(task), rng)

    def build(self, client: int, task: TaskParams) -> None:
        """Create the door multibody: fixed base at the hinge, panel, lever (arm), post links."""
        door = T.as_door(task)
        g = T.geometry(door)
        s = T.ARM_LENGTH
        panel_col = pb.createCollisionShape(
            pb.GEOM_BOX,
            halfExtents=g.panel_half.tolist(),
            collisionFramePosition=g.panel_centre.tolist(),
            physicsClientId=client,
        )
        panel_vis = pb.createVisualShape(
            pb.GEOM_BOX,
            halfExtents=g.panel_half.tolist(),
            rgbaColor=_WOOD,
            visualFramePosition=g.panel_centre.tolist(),
            physicsClientId=client,
        )
        post_len = T.POST_TOP - T.POST_BOTTOM
        post_centre = [0.0, 0.0, (T.POST_TOP + T.POST_BOTTOM) / 2]
        arm_half = [s / 2, *T.ARM_HALF]
        arm_col = pb.createCollisionShape(
            pb.GEOM_BOX,
            halfExtents=arm_half,
            collisionFramePosition=[-s / 2, 0.0, 0.0],
            physicsClientId=client,
        )
        arm_vis = pb.createVisualShape(
            pb.GEOM_BOX,
            halfExtents=arm_half,
            rgbaColor=_METAL,
            visualFramePosition=[-s / 2, 0.0, 0.0],
            physicsClientId=client,
        )
        post_col = pb.createCollisionShape(
            pb.GEOM_CAPSULE,
            radius=T.POST_RADIUS,
            height=post_len,
            collisionFramePosition=post_centre,
            physicsClientId=client,
        )
        post_vis = pb.createVisualShape(
            pb.GEOM_CAPSULE,
            radius=T.POST_RADIUS,
            length=post_len,
            rgbaColor=_METAL,
            visualFramePosition=post_centre,
            physicsClientId=client,
        )
        self.body = pb.createMultiBody(
            baseMass=0.0,
            basePosition=g.hinge.tolist(),
            linkMasses=[T.PANEL_MASS, T.ARM_MASS, T.POST_MASS],
            linkCollisionShapeIndices=[panel_col, arm_col, post_col],
            linkVisualShapeIndices=[panel_vis, arm_vis, post_vis],
            linkPositions=[[0.0, 0.0, 0.0], g.pivot.tolist(), [-s, 0.0, 0.0]],
            linkOrientations=[_IDENTITY] * 3,
            linkInertialFramePositions=[
                g.panel_centre.tolist(),
                [-s / 2, 0.0, 0.0],
                [0.0, 0.0, T.PIVOT_BELOW_HANDLE],
            ],
            linkInertialFrameOrientations=[_IDENTITY] * 3,
            linkParentIndices=[0, 1, 2],
            linkJointTypes=[pb.JOINT_REVOLUTE] * 3,
            linkJointAxis=[[0.0, 0.0, g.sign], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
            physicsClientId=client,
        )
        inertia = (
            T.panel_inertia(g.panel_half).tolist(),
            list(T.ARM_INERTIA),
            list(T.POST_INERTIA),
        )
        limits = ((0.0, T.HINGE_RANGE), (T.LEVER_LOW, T.LEVER_RANGE), (1.0, -1.0))
        # PyBullet multiplies the two bodies' friction coefficients; MuJoCo takes the larger.
        # Scale the door's so that finger-on-door friction is 1, as in MuJoCo.
        friction = 1.0 / _finger_friction(client)
        # (Damping keywords must go alone, on the base: with link keywords the call is ignored.)
        pb.changeDynamics(
            self.body, -1, linearDamping=0.0, angularDamping=0.0, physicsClientId=client
        )
        for link in _JOINTS:
            pb.changeDynamics(
                self.body,
                link,
                localInertiaDiagonal=inertia[link],
                jointLowerLimit=limits[link][0],
                jointUpperLimit=limits[link][1],
                lateralFriction=friction,
                physicsClientId=client,
            )
        # Dry friction of the hinge; no motor on the lever and the swivel.
        pb.setJointMotorControlArray(
            self.body,
            list(_JOINTS),
            pb.VELOCITY_CONTROL,
            targetVelocities=[0.0] * 3,
            forces=[door.friction, 0.0, 0.0],
            physicsClientId=client,
        )
        self.task, self.geom = door, g

    def reset(self, client: int, task: TaskParams, init: np.ndarray) -> np.ndarray:
        """Door closed, lever at rest; gripper joints at ``init`` with open fingers."""
        for link in _JOINTS:
            pb.resetJointState(self.body, link, 0.0, 0.0, physicsClientId=client)
        return np.array([*init[:3], 0.0, 0.0])

    def apply(self, client: int, ctrl: np.ndarray) -> None:
        """Hinge spring, damping and latch torques; lever return spring and damping."""
        if self.task is None or self.geom is None:
            raise RuntimeError("apply: build() was not called")
        (q, qd, *_), (ql, qld, *_), (_, qsd, *_) = pb.getJointStates(
            self.body, list(_JOINTS), physicsClientId=client
        )
        latch = float(np.clip(ctrl[0], 0.0, 1.0))
        hinge = -self.task.closer - self.task.spring * q - self.task.damping * qd
        hinge -= latch * (T.LATCH_STIFFNESS * q + T.LATCH_DAMPING * qd)
        g = self.geom
        lever = -g.lever_stiffness * (ql - g.lever_springref) - T.LEVER_DAMPING * qld
        pb.setJointMotorControlArray(
            self.body,
            list(_JOINTS),
            pb.TORQUE_CONTROL,
            forces=[hinge, lever, -T.SWIVEL_DAMPING * qsd],
            physicsClientId=client,
        )

    def sensors(self, client: int, gripper_id: int) -> np.ndarray:
        """handle_pos[3], door angle, door angular velocity, lever angle (as in MuJoCo)."""
        del gripper_id
        state = pb.getLinkState(
            self.body, _SWIVEL, computeForwardKinematics=True, physicsClientId=client
        )
        rot = np.array(pb.getMatrixFromQuaternion(state[5])).reshape(3, 3)
        handle = np.asarray(state[4]) + rot @ np.array([0.0, 0.0, T.PIVOT_BELOW_HANDLE])
        (q, qd, *_), (ql, *_) = pb.getJointStates(
            self.body, [_HINGE, _LEVER], physicsClientId=client
        )
        return np.array([*handle, q, qd, ql])


def _finger_friction(client: int) -> float:
    """Lateral friction of the gripper's left finger (the gripper is the URDF named so)."""
    for index in range(pb.getNumBodies(physicsClientId=client)):
        body = pb.getBodyUniqueId(index, physicsClientId=client)
        if pb.getBodyInfo(body, physicsClientId=client)[1] == b"gripper":
            return float(pb.getDynamicsInfo(body, 3, physicsClientId=client)[1])
    raise RuntimeError("door scene: the gripper must be loaded before the door is built")
