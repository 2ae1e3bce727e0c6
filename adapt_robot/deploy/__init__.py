"""Deployment helpers that may use the training stack: simulated robots for hardware-in-the-loop.

Unlike :mod:`adapt_robot.runtime`, this package imports ``sim`` (and so MuJoCo/PyBullet); a
robot that runs only the adapter never imports it.
"""

from adapt_robot.deploy.sim_robot import SimRobot, SimRobotConfig

__all__ = ["SimRobot", "SimRobotConfig"]
