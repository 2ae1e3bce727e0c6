"""PyBullet twin of the MuJoCo engine: same gripper, PD law, forces, timestep and sub-steps.

One DIRECT client per env, the gripper from ``gripper.urdf``, and the control law applied by
hand at every sub-step.

PyBullet has no batched stepping, so the B envs are stepped one after another; the interface is
the same as :class:`adapt_robot.sim.engines.mujoco_engine.MujocoPhysics`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pybullet as pb

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.family import Physics
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.mujoco_engine import ASSETS

GRAVITY = 9.81
_ALL = [0, 1, 2, 3, 4]
"""Gripper joint indices in PyBullet: gx, gy, gz, finger_l, finger_r."""
_GRAVCOMP = gripper.PALM_MASS + 2 * gripper.FINGER_MASS + 0.002


class BulletScene(ABC):
    """What a family tells the PyBullet engine about its scene (one instance per env)."""

    @abstractmethod
    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        """Initial conditions, drawn exactly as the MuJoCo scene draws them."""

    @abstractmethod
    def build(self, client: int, task: TaskParams) -> None:
        """Create the task's bodies (table and gripper already exist)."""

    @abstractmethod
    def reset(self, client: int, task: TaskParams, init: np.ndarray) -> np.ndarray:
        """Place the bodies for ``init``; return the gripper's initial joint positions [5]."""

    def apply(self, client: int, ctrl: np.ndarray) -> None:
        """Apply the family part of the control (after the gripper's 5) before a sub-step."""
        del client, ctrl

    @abstractmethod
    def sensors(self, client: int, gripper_id: int) -> np.ndarray:
        """The family part of the sensor vector (after the gripper's 10)."""

    camera_target: tuple[float, float, float] = (0.0, 0.0, 0.1)
    camera_distance: float = 0.9
    camera_yaw: float = 50.0
    camera_pitch: float = -30.0


def finger_pad_forces(client: int, gripper_id: int, finger_links: tuple[int, int]) -> np.ndarray:
    """Normal force on each finger from bodies other than the gripper (the MuJoCo touch sensor)."""
    out = np.zeros(2)
    for k, link in enumerate(finger_links):
        for c in pb.getContactPoints(bodyA=gripper_id, linkIndexA=link, physicsClientId=client):
            if c[2] != gripper_id:
                out[k] += c[9]
    return out


class BulletPhysics(Physics):
    """``batch`` PyBullet envs, each a scene created by ``scene_factory``."""

    def __init__(self, scene_factory: type[BulletScene], batch: int) -> None:
        super().__init__(batch)
        self.scenes = [scene_factory() for _ in range(batch)]
        self.clients = [pb.connect(pb.DIRECT) for _ in range(batch)]
        self.tasks: list[TaskParams] = []
        self.gripper_ids: list[int] = []
        self.sensor_dim = 0
        self.ctrl_dim = 0
        self._q = np.zeros((batch, 5))
        self._qd = np.zeros((batch, 5))

    def set_tasks(self, tasks: Sequence[TaskParams]) -> None:
        """Rebuild every world for its task."""
        if len(tasks) != self.batch:
            raise ValueError(f"tasks: expected {self.batch}, got {len(tasks)}")
        self.gripper_ids = [self._build(i, task) for i, task in enumerate(tasks)]
        self.tasks = list(tasks)

    def _build(self, i: int, task: TaskParams) -> int:
        """Rebuild the world of env ``i`` for ``task``; returns its gripper's body id."""
        client, scene = self.clients[i], self.scenes[i]
        pb.resetSimulation(physicsClientId=client)
        pb.setGravity(0, 0, -GRAVITY, physicsClientId=client)
        pb.setPhysicsEngineParameter(
            fixedTimeStep=gripper.TIMESTEP,
            numSubSteps=1,
            numSolverIterations=100,
            physicsClientId=client,
        )
        table = pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=client)
        pb.createMultiBody(0, table, physicsClientId=client)
        gid = pb.loadURDF(
            str(ASSETS / "gripper" / "gripper.urdf"),
            useFixedBase=True,
            physicsClientId=client,
        )
        # Damping is a per-body setting in PyBullet: passed with a link index it makes the
        # whole call a no-op, so set it on the base and the friction link by link.
        pb.changeDynamics(gid, -1, linearDamping=0, angularDamping=0, physicsClientId=client)
        for j in range(pb.getNumJoints(gid, physicsClientId=client)):
            pb.changeDynamics(gid, j, lateralFriction=1.0, physicsClientId=client)
        pb.setJointMotorControlArray(
            gid,
            list(range(5)),
            pb.VELOCITY_CONTROL,
            forces=[0.0] * 5,
            physicsClientId=client,
        )
        scene.build(client, task)
        return int(gid)

    def reset_envs(
        self,
        rng: np.random.Generator,
        indices: np.ndarray,
        tasks: Sequence[TaskParams] | None = None,
    ) -> np.ndarray:
        """Reset envs ``indices`` (rebuilt for new ``tasks`` if given); the others keep going."""
        if not self.tasks:
            raise RuntimeError("reset: no tasks set")
        for i, task in self.reset_plan(indices, tasks):
            if task is not None and task != self.tasks[i]:
                self.gripper_ids[i] = self._build(i, task)
                self.tasks[i] = task
            self._reset_env(i, rng)
        return self._read_all()

    def _reset_env(self, i: int, rng: np.random.Generator) -> None:
        """Place env ``i``'s bodies and gripper (initial-pose noise from ``rng``)."""
        client, scene, task = self.clients[i], self.scenes[i], self.tasks[i]
        init = scene.draw_initial(task, rng)
        q0 = scene.reset(client, task, init)
        for j, q in enumerate(q0):
            pb.resetJointState(self.gripper_ids[i], j, float(q), 0.0, physicsClientId=client)
        # Recompute contacts for the new poses: getContactPoints otherwise still reports the
        # last step's contacts (e.g. pads pressing an object that has just been moved away),
        # and the first observation of every second episode showed a phantom grip.
        pb.performCollisionDetection(physicsClientId=client)

    def _read_all(self) -> np.ndarray:
        rows = [self._read(i) for i in range(self.batch)]
        self.sensor_dim = rows[0].size
        return np.stack(rows)

    def _read(self, i: int) -> np.ndarray:
        client, gid = self.clients[i], self.gripper_ids[i]
        states = pb.getJointStates(gid, list(range(5)), physicsClientId=client)
        q = np.array([s[0] for s in states])
        qd = np.array([s[1] for s in states])
        self._q[i], self._qd[i] = q, qd
        touch = finger_pad_forces(client, gid, (3, 4))
        family = self.scenes[i].sensors(client, gid)
        return np.concatenate([q, qd[:3], touch, family])

    def step(self, ctrl: np.ndarray) -> np.ndarray:
        """``SUBSTEPS`` sub-steps per env: PD on the carriage, constant finger forces."""
        self.ctrl_dim = ctrl.shape[1]
        for i, (client, scene) in enumerate(zip(self.clients, self.scenes, strict=True)):
            gid = self.gripper_ids[i]
            target = ctrl[i, :3]
            fingers = np.clip(ctrl[i, 3:5], -gripper.FINGER_FORCE_MAX, gripper.FINGER_FORCE_MAX)
            for _ in range(gripper.SUBSTEPS):
                states = pb.getJointStates(gid, _ALL, physicsClientId=client)
                q = np.array([s[0] for s in states[:3]])
                qd = np.array([s[1] for s in states])
                f = np.clip(
                    gripper.KP * (target - q) - gripper.KV * qd[:3],
                    -gripper.CARRIAGE_FORCE_MAX,
                    gripper.CARRIAGE_FORCE_MAX,
                )
                f[2] += _GRAVCOMP * GRAVITY
                pb.setJointMotorControlArray(
                    gid,
                    [0, 1, 2, 3, 4],
                    pb.TORQUE_CONTROL,
                    forces=[*f, *(fingers - gripper.FINGER_DAMPING * qd[3:])],
                    physicsClientId=client,
                )
                scene.apply(client, ctrl[i, gripper.N_CTRL :])
                pb.stepSimulation(physicsClientId=client)
        return self._read_all()

    def render(self, index: int, width: int, height: int) -> np.ndarray:
        """RGB frame from PyBullet's software renderer (TinyRenderer, no display needed)."""
        client, scene = self.clients[index], self.scenes[index]
        view = pb.computeViewMatrixFromYawPitchRoll(
            scene.camera_target,
            scene.camera_distance,
            scene.camera_yaw,
            scene.camera_pitch,
            0,
            2,
            physicsClientId=client,
        )
        proj = pb.computeProjectionMatrixFOV(45, width / height, 0.05, 5.0, physicsClientId=client)
        img = pb.getCameraImage(
            width, height, view, proj, renderer=pb.ER_TINY_RENDERER, physicsClientId=client
        )
        rgba = np.asarray(img[2], dtype=np.uint8).reshape(height, width, 4)
        return rgba[:, :, :3].copy()

    def close(self) -> None:
        """Disconnect every client."""
        for client in self.clients:
            if pb.isConnected(physicsClientId=client):
                pb.disconnect(physicsClientId=client)
        self.clients = []
