"""The ``grasp`` task family: lift objects of unknown mass, friction and fragility."""

from adapt_robot.sim.families.grasp.family import GraspFamily
from adapt_robot.sim.families.grasp.task import GraspParams

__all__ = ["GraspFamily", "GraspParams"]
