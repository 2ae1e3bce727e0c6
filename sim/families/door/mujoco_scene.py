"""MuJoCo scene of a door task: MJCF generated per task around ``gripper.xml``.

Every task compiles to the same sizes (nq=8, nv=8, nu=6, 16 sensors): the lever joint exists on
knob doors too, held rigid by a stiff spring. The latch is the ``latch`` actuator on the hinge,
an affine-gain actuator whose force is ``-(LATCH_STIFFNESS q + LATCH_DAMPING qdot) * ctrl``, with
``ctrl`` in {0, 1} decided by the family each control step, plus its constant bias ``-closer``
(the door closer's preload torque, 0 on latched doors).
"""

from __future__ import annotations

import mujoco
import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.mujoco_engine import MujocoScene
from adapt_robot.sim.families.door import task as T
from adapt_robot.sim.families.door.task import DoorParams

_GRIPPER_JOINTS = ("gx", "gy", "gz", "finger_l", "finger_r")


def _v(x: np.ndarray | tuple[float, ...]) -> str:
    return " ".join(f"{float(v):.6g}" for v in x)


def _camera() -> str:
    pos = np.array([-0.75, -0.6, 0.6])
    forward = np.array([0.05, 0.0, 0.12]) - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return f'<camera name="overview" pos="{_v(pos)}" xyaxes="{_v(right)} {_v(up)}"/>'


def door_mjcf(task: DoorParams) -> str:
    """The MJCF of one door task (the gripper is included from ``gripper.xml``)."""
    g = T.geometry(task)
    s = T.ARM_LENGTH
    inertia = T.panel_inertia(g.panel_half)
    # The visual frame post at the hinge and the jamb at the free edge never collide.
    jamb_y = g.hinge[1] + g.along * (task.width + 0.015)
    frame_h = g.panel_half[2] * 2 + T.PANEL_BOTTOM
    return f"""<mujoco model="door">
  <compiler angle="radian"/>
  <option timestep="{gripper.TIMESTEP}" cone="elliptic" impratio="10"/>
  <include file="gripper.xml"/>
  <visual><global offwidth="640" offheight="480"/></visual>
  <worldbody>
    <light pos="0 -0.4 1.2" dir="0 0.3 -1" diffuse="0.8 0.8 0.8"/>
    <geom name="floor" type="plane" size="1 1 0.05" rgba="0.82 0.82 0.8 1"/>
    {_camera()}
    <geom name="hinge_post" type="box" contype="0" conaffinity="0" rgba="0.4 0.3 0.2 1"
          pos="{_v((g.hinge[0] + 0.03, g.hinge[1] - g.along * 0.015, frame_h / 2))}"
          size="{_v((0.01, 0.008, frame_h / 2))}"/>
    <geom name="jamb" type="box" contype="0" conaffinity="0" rgba="0.4 0.3 0.2 1"
          pos="{_v((g.hinge[0] + 0.03, jamb_y, frame_h / 2))}"
          size="{_v((0.01, 0.008, frame_h / 2))}"/>
    <body name="door" pos="{_v(g.hinge)}">
      <joint name="hinge" type="hinge" axis="0 0 {g.sign:g}" range="0 {T.HINGE_RANGE}"
             solreflimit="{T.HINGE_LIMIT_SOLREF} 1"
             damping="{task.damping:.6g}" frictionloss="{task.friction:.6g}"
             stiffness="{task.spring:.6g}" springref="0"/>
      <inertial pos="{_v(g.panel_centre)}" mass="{T.PANEL_MASS}" diaginertia="{_v(inertia)}"/>
      <geom name="panel" type="box" pos="{_v(g.panel_centre)}" size="{_v(g.panel_half)}"
            rgba="0.72 0.55 0.35 1"/>
      <body name="lever" pos="{_v(g.pivot)}">
        <joint name="lever" type="hinge" axis="0 -1 0" range="{T.LEVER_LOW} {T.LEVER_RANGE}"
               stiffness="{g.lever_stiffness:g}" springref="{g.lever_springref:.6g}"
               damping="{T.LEVER_DAMPING}"/>
        <inertial pos="{-s / 2:.6g} 0 0" mass="{T.ARM_MASS}" diaginertia="{_v(T.ARM_INERTIA)}"/>
        <geom name="arm" type="box" pos="{-s / 2:.6g} 0 0"
              size="{_v((s / 2, *T.ARM_HALF))}" rgba="0.6 0.6 0.65 1"/>
        <body name="post" pos="{-s:.6g} 0 0">
          <joint name="swivel" type="hinge" axis="0 0 1" damping="{T.SWIVEL_DAMPING}"/>
          <inertial pos="0 0 {T.PIVOT_BELOW_HANDLE}" mass="{T.POST_MASS}"
                    diaginertia="{_v(T.POST_INERTIA)}"/>
          <geom name="post" type="capsule" size="{T.POST_RADIUS}" priority="1" condim="4"
                solref="{T.POST_SOLREF} 1" friction="1 0.02 0.001"
                fromto="{_v((0, 0, T.POST_BOTTOM, 0, 0, T.POST_TOP))}" rgba="0.6 0.6 0.65 1"/>
          <site name="handle" pos="0 0 {T.PIVOT_BELOW_HANDLE}" size="0.004"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <general name="latch" joint="hinge" gaintype="affine"
             gainprm="0 {-T.LATCH_STIFFNESS:g} {-T.LATCH_DAMPING:g}" biastype="affine"
             biasprm="{-task.closer:.6g} 0 0"
             ctrlrange="0 1" ctrllimited="true"/>
  </actuator>
  <sensor>
    <framepos name="handle_pos" objtype="site" objname="handle"/>
    <jointpos name="door_angle" joint="hinge"/>
    <jointvel name="door_vel" joint="hinge"/>
    <jointpos name="lever_angle" joint="lever"/>
  </sensor>
</mujoco>
"""


class DoorMujocoScene(MujocoScene):
    """Door scenes for :class:`adapt_robot.sim.engines.mujoco_engine.MujocoPhysics`."""

    def mjcf(self, task: TaskParams) -> str:
        """MJCF of ``task``."""
        return door_mjcf(T.as_door(task))

    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        """Gripper start (shared with PyBullet)."""
        return T.draw_initial(T.as_door(task), rng)

    def initial_qpos(self, model: mujoco.MjModel, task: TaskParams, init: np.ndarray) -> np.ndarray:
        """Gripper at ``init`` with open fingers; door closed, lever at rest."""
        qpos = np.zeros(model.nq)
        values = (*init[:3], 0.0, 0.0)
        for name, value in zip(_GRIPPER_JOINTS, values, strict=True):
            qpos[model.jnt_qposadr[model.joint(name).id]] = value
        return qpos
