"""MuJoCo scene of a grasp task: table, one free object, the shared gripper, object sensors.

Sensor layout: the gripper's ``N_SENSORS`` entries, then the object frame's position (3),
orientation quaternion (w, x, y, z) (4) and linear velocity (3), read at a site at the object
frame's origin (not its centre of mass).
"""

from __future__ import annotations

import mujoco
import numpy as np

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.mujoco_engine import MujocoScene
from adapt_robot.sim.families.grasp import task as gt

N_OBJECT_SENSORS = 10
"""Object part of the sensor vector: pos (3), quat w,x,y,z (4), linear velocity (3)."""
SOLREF = "0.004 1"
"""Object contact stiffness: time constant of 2 timesteps, critically damped."""
SOLIMP = "0.95 0.99 0.001"
"""Object contact impedance: stiff from 1 mm of penetration on."""
TORSION = 0.01
"""Torsional friction (m) of the object contacts (resists pivoting about the pad normal)."""


def _f(values: tuple[float, ...] | np.ndarray) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _geom(part: gt.Part, index: int, friction: float) -> str:
    size = {"box": part.size, "sphere": part.size[:1]}.get(part.kind, part.size[:2])
    axis = ' zaxis="1 0 0"' if part.along_x else ""
    return (
        f'<geom name="obj{index}" type="{part.kind}" size="{_f(size)}" pos="{_f(part.pos)}"{axis} '
        f'priority="1" condim="4" friction="{friction:.6g} {TORSION} 0.0001" '
        f'solref="{SOLREF}" solimp="{SOLIMP}" rgba="0.3 0.55 0.85 1"/>'
    )


def grasp_mjcf(task: gt.GraspParams) -> str:
    """The MJCF of one grasp task (includes ``gripper.xml``)."""
    geoms = "\n      ".join(_geom(p, i, task.friction) for i, p in enumerate(gt.parts(task)))
    com = (task.com_x, 0.0, task.com_z)
    return f"""<mujoco model="grasp_{task.shape}">
  <compiler angle="radian"/>
  <option timestep="{gripper.TIMESTEP}" cone="elliptic" impratio="10" integrator="implicitfast"/>
  <visual><global offwidth="640" offheight="480"/></visual>
  <include file="gripper.xml"/>
  <worldbody>
    <light name="top" pos="0 0 1.5" dir="0 0 -1" diffuse="0.8 0.8 0.8"/>
    <camera name="overview" pos="0.35 -0.35 0.3" xyaxes="0.707 0.707 0 -0.323 0.323 0.889"/>
    <geom name="table" type="plane" size="1 1 0.05" rgba="0.85 0.82 0.75 1" condim="3"/>
    <body name="object" pos="0 0 {task.half_height:.6g}">
      <freejoint name="object"/>
      <inertial pos="{_f(com)}" mass="{task.mass:.6g}" diaginertia="{_f(gt.inertia(task))}"/>
      <site name="object" size="0.003" rgba="0 1 0 1"/>
      {geoms}
    </body>
  </worldbody>
  <sensor>
    <framepos name="obj_pos" objtype="site" objname="object"/>
    <framequat name="obj_quat" objtype="site" objname="object"/>
    <framelinvel name="obj_vel" objtype="site" objname="object"/>
  </sensor>
</mujoco>
"""


class GraspMujocoScene(MujocoScene):
    """Builds :func:`grasp_mjcf` scenes and places the object and gripper at reset."""

    def mjcf(self, task: TaskParams) -> str:
        """The task's MJCF."""
        return grasp_mjcf(gt.as_grasp(task))

    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        """Shared initial conditions (:func:`adapt_robot.sim.families.grasp.task.draw_initial`)."""
        return gt.draw_initial(gt.as_grasp(task), rng)

    def initial_qpos(self, model: mujoco.MjModel, task: TaskParams, init: np.ndarray) -> np.ndarray:
        """Gripper at ``init[3:6]``, fingers open; object on the table at ``init[:3]``."""
        task = gt.as_grasp(task)
        qpos = np.zeros(model.nq)
        qpos[0:3] = init[3:6]
        qpos[5:8] = (init[0], init[1], gt.rest_height(task))
        qpos[8:12] = gt.yaw_quat(float(init[2]))
        return qpos
