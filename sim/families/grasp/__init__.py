"""The ``grasp`` task family: lift objects of unknown mass, friction and fragility."""

from sim.families.grasp.family import GraspFamily
from sim.families.grasp.task import GraspParams

__all__ = ["GraspFamily", "GraspParams"]
