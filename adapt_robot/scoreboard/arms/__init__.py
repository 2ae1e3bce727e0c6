"""Pluggable scoreboard arms: :data:`ARM_TYPES` maps a launch file's ``arms[i].type`` to its type.

Built in:

- ``expert`` (oracle): the scripted expert told the true task;
- ``fixed_expert`` (robust): the expert told the true visible parameters and one hidden setting
  chosen on train-split validation tasks;
- ``bundle`` (robust with ``adapt: false``, adaptive otherwise): an exported ONNX bundle run
  through the robot's code path (the torch-free ``OnlineAdapter`` on a ``SimRobot``).

- ``latent_oracle`` (oracle): a latent_id run's bundle told each task's true latent.

**Adding an arm type**: write
a frozen keyword-only subclass of :class:`ArmSpec` with the options (``setting(...)`` fields, a
``validate(family)`` for checks that need files), a class with ``score(family, engine, tasks,
seed) -> ArmResult`` (stage ``fixed`` for a reference, the adaptive stages otherwise), and
register ``ARM_TYPES["latent_oracle"] = ArmType(spec=..., kinds=("oracle",), build=..., doc=...)``
here or from a module the launch file's config imports. Nothing else in the scoreboard changes.
"""

from __future__ import annotations

from adapt_robot.scoreboard.arms.base import (
    KINDS,
    Arm,
    ArmSpec,
    ArmType,
    Kind,
    ScoreSettings,
)
from adapt_robot.scoreboard.arms.bundle import BundleArm, BundleSpec
from adapt_robot.scoreboard.arms.experts import (
    ExpertArm,
    ExpertSpec,
    FixedExpertArm,
    FixedExpertSpec,
)
from adapt_robot.scoreboard.arms.latent_oracle import LatentOracleArm, LatentOracleSpec

ARM_TYPES: dict[str, ArmType] = {
    "expert": ArmType(
        spec=ExpertSpec,
        kinds=("oracle",),
        build=ExpertArm,
        doc="scripted expert told the true task",
    ),
    "fixed_expert": ArmType(
        spec=FixedExpertSpec,
        kinds=("robust",),
        build=FixedExpertArm,
        doc="scripted expert told the visible parameters and one hidden setting (chosen on "
        "train tasks)",
    ),
    "bundle": ArmType(
        spec=BundleSpec,
        kinds=("robust", "adaptive"),
        build=BundleArm,
        doc="exported ONNX bundle through the on-device adapter on a simulated robot",
    ),
    "latent_oracle": ArmType(
        spec=LatentOracleSpec,
        kinds=("oracle",),
        build=LatentOracleArm,
        doc="a latent_id run's bundle told the true latent mu(hidden) of each task",
    ),
}
"""Arm type name -> :class:`ArmType`; add an entry to plug in a new arm."""

__all__ = [
    "ARM_TYPES",
    "KINDS",
    "Arm",
    "ArmSpec",
    "ArmType",
    "BundleArm",
    "BundleSpec",
    "ExpertArm",
    "ExpertSpec",
    "FixedExpertArm",
    "FixedExpertSpec",
    "Kind",
    "ScoreSettings",
]
