"""One door for the door tests: a latched lever door, pushed open, hinged on the left."""

from __future__ import annotations

from adapt_robot.sim.families.door import DoorParams

BASE: dict[str, object] = {
    "hinge_side": "left",
    "opens": "push",
    "handle": "lever",
    "latched": True,
    "width": 0.26,
    "handle_x": -0.03,
    "handle_y": 0.0,
    "handle_z": 0.2,
    "damping": 2.0,
    "friction": 0.3,
    "spring": 1.0,
    "closer": 0.0,
}


def door(**kw: object) -> DoorParams:
    """:data:`BASE` with the fields ``kw`` changes."""
    return DoorParams(**{**BASE, **kw})  # type: ignore[arg-type]
