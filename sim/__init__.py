"""Simulated task families (grasp, door, point) in MuJoCo and PyBullet.

Off-screen rendering: on a machine with no display, MuJoCo needs ``MUJOCO_GL=osmesa`` (or
``egl``) before it is imported. Unless the environment already says, that default is set here,
so renders work from a headless shell as they do under ``make``.
"""

import os
import sys

if "mujoco" not in sys.modules and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
):
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from adapt_robot.sim.registry import family_names, get_family, register_family, register_gym_envs

register_gym_envs()

__all__ = ["family_names", "get_family", "register_family"]
