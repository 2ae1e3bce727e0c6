"""The ``door`` task family: open a hinged door with the Cartesian parallel-jaw gripper."""

from sim.families.door.family import DoorFamily
from sim.families.door.task import DoorParams

__all__ = ["DoorFamily", "DoorParams"]
