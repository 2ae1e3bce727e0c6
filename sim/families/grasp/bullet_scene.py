"""PyBullet twin of the grasp scene, with the same object, physics and sensors as MuJoCo's.

The object has the same pieces, mass, inertia, friction and centre of mass as in
:mod:`adapt_robot.sim.families.grasp.mujoco_scene`, and reports the same object sensors.

PyBullet reports (and resets) a base at its centre of mass, so the object frame is recovered
from the inertial offset; friction coefficients multiply in Bullet, and the fingers and table
have 1.0, so the object's own friction is the one that acts (as MuJoCo's ``priority`` does).
"""

from __future__ import annotations

import math

import numpy as np
import pybullet as pb

from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.bullet_engine import BulletScene
from adapt_robot.sim.families.grasp import task as gt
from adapt_robot.sim.families.grasp.mujoco_scene import TORSION

_COLOR = (0.3, 0.55, 0.85, 1.0)
_ALONG_X = (0.0, math.sqrt(0.5), 0.0, math.sqrt(0.5))
"""Bullet (x, y, z, w) quaternion turning a piece's z axis onto x."""
_NO_TURN = (0.0, 0.0, 0.0, 1.0)


def _quat_wxyz(xyzw: tuple[float, ...]) -> np.ndarray:
    return np.array([xyzw[3], xyzw[0], xyzw[1], xyzw[2]])


def _collision_args(part: gt.Part) -> dict[str, object]:
    """createCollisionShape(Array) arguments of one piece (MuJoCo sizes to Bullet's)."""
    if part.kind == "box":
        return {"shapeType": pb.GEOM_BOX, "halfExtents": list(part.size)}
    if part.kind == "sphere":
        return {"shapeType": pb.GEOM_SPHERE, "radius": part.size[0]}
    if part.kind == "cylinder":
        return {"shapeType": pb.GEOM_CYLINDER, "radius": part.size[0], "height": 2 * part.size[1]}
    if part.kind == "capsule":
        return {"shapeType": pb.GEOM_CAPSULE, "radius": part.size[0], "height": 2 * part.size[1]}
    raise ValueError(f"part.kind: expected box, sphere, cylinder or capsule, got {part.kind!r}")


def _collision_shape(client: int, pieces: tuple[gt.Part, ...]) -> int:
    if len(pieces) == 1:
        return int(
            pb.createCollisionShape(
                **_collision_args(pieces[0]),
                collisionFramePosition=list(pieces[0].pos),
                collisionFrameOrientation=_ALONG_X if pieces[0].along_x else _NO_TURN,
                physicsClientId=client,
            )
        )
    args = [_collision_args(p) for p in pieces]
    return int(
        pb.createCollisionShapeArray(
            shapeTypes=[a["shapeType"] for a in args],
            radii=[a.get("radius", 0.0) for a in args],
            halfExtents=[a.get("halfExtents", [0.0, 0.0, 0.0]) for a in args],
            lengths=[a.get("height", 0.0) for a in args],
            collisionFramePositions=[list(p.pos) for p in pieces],
            collisionFrameOrientations=[_ALONG_X if p.along_x else _NO_TURN for p in pieces],
            physicsClientId=client,
        )
    )


class GraspBulletScene(BulletScene):
    """One env's object (rebuilt by :meth:`build` for each task)."""

    camera_target = (0.0, 0.0, 0.05)
    camera_distance = 0.55

    def __init__(self) -> None:
        self.object_id = -1
        self.com = np.zeros(3)

    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        """Shared initial conditions (:func:`adapt_robot.sim.families.grasp.task.draw_initial`)."""
        return gt.draw_initial(gt.as_grasp(task), rng)

    def build(self, client: int, task: TaskParams) -> None:
        """Create the object; give the table and fingers MuJoCo's friction conventions."""
        task = gt.as_grasp(task)
        for body in range(pb.getNumBodies(physicsClientId=client)):
            name = pb.getBodyInfo(body, physicsClientId=client)[1].decode()
            links = range(-1, pb.getNumJoints(body, physicsClientId=client))
            for link in links:
                pb.changeDynamics(
                    body,
                    link,
                    lateralFriction=1.0,
                    spinningFriction=1.0 if name else 0.0,
                    physicsClientId=client,
                )
        shape = _collision_shape(client, gt.parts(task))
        self.com = np.array([task.com_x, 0.0, task.com_z])
        self.object_id = int(
            pb.createMultiBody(
                baseMass=task.mass,
                baseCollisionShapeIndex=shape,
                basePosition=[0.0, 0.0, gt.rest_height(task)],
                baseInertialFramePosition=self.com.tolist(),
                physicsClientId=client,
            )
        )
        pb.changeDynamics(
            self.object_id,
            -1,
            lateralFriction=task.friction,
            spinningFriction=TORSION,
            rollingFriction=0.0,
            restitution=0.0,
            linearDamping=0.0,
            angularDamping=0.0,
            localInertiaDiagonal=gt.inertia(task).tolist(),
            physicsClientId=client,
        )
        pb.changeVisualShape(self.object_id, -1, rgbaColor=_COLOR, physicsClientId=client)

    def reset(self, client: int, task: TaskParams, init: np.ndarray) -> np.ndarray:
        """Object on the table at ``init[:3]``; returns the gripper's start joints."""
        task = gt.as_grasp(task)
        w, x, y, z = gt.yaw_quat(float(init[2]))
        rot = np.array(pb.getMatrixFromQuaternion([x, y, z, w])).reshape(3, 3)
        origin = np.array([init[0], init[1], gt.rest_height(task)])
        pb.resetBasePositionAndOrientation(
            self.object_id,
            (origin + rot @ self.com).tolist(),
            [x, y, z, w],
            physicsClientId=client,
        )
        pb.resetBaseVelocity(self.object_id, [0, 0, 0], [0, 0, 0], physicsClientId=client)
        return np.array([init[3], init[4], init[5], 0.0, 0.0])

    def sensors(self, client: int, gripper_id: int) -> np.ndarray:
        """Object frame position, quaternion (w, x, y, z) and linear velocity, as in MuJoCo."""
        del gripper_id
        com_pos, xyzw = pb.getBasePositionAndOrientation(self.object_id, physicsClientId=client)
        v_com, omega = pb.getBaseVelocity(self.object_id, physicsClientId=client)
        rot = np.array(pb.getMatrixFromQuaternion(xyzw)).reshape(3, 3)
        arm = rot @ self.com
        pos = np.asarray(com_pos) - arm
        vel = np.asarray(v_com) - np.cross(np.asarray(omega), arm)
        quat = _quat_wxyz(xyzw)
        if quat[0] < 0:
            quat = -quat
        return np.concatenate([pos, quat, vel])
