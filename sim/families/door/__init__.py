"""The ``door`` task family: open a hinged door with the Cartesian parallel-jaw gripper."""

from adapt_robot.sim.families.door.family import DoorFamily
from adapt_robot.sim.families.door.task import DoorParams

__all__ = ["DoorFamily", "DoorParams"]
