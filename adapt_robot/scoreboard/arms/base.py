"""The arm interface: a launch-file spec per arm type, and the object that scores it.

An arm type is one :class:`ArmType` in :data:`adapt_robot.scoreboard.arms.ARM_TYPES`: the frozen
spec dataclass that validates the arm's options in the launch file (a subclass of
:class:`ArmSpec`), the kinds it may be declared as, and ``build(spec, settings) -> Arm``. An
:class:`Arm` scores the scoreboard's tasks in one engine and returns an
:class:`~adapt_robot.scoreboard.results.ArmResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from adapt_robot.config import setting

if TYPE_CHECKING:
    from adapt_robot.scoreboard.results import ArmResult
    from adapt_robot.sim.core.family import TaskFamily
    from adapt_robot.sim.core.params import TaskParams

Kind = Literal["oracle", "robust", "adaptive"]
"""What an arm is to the scoreboard: a reference (oracle, robust) or what is measured."""
KINDS: tuple[Kind, ...] = ("oracle", "robust", "adaptive")
"""Every kind, in report order."""


@dataclass(frozen=True, kw_only=True)
class ArmSpec:
    """The keys every arm has; an arm type adds its options in a subclass."""

    name: str = setting(doc="Name of the arm in the report (unique in the launch file).")
    kind: Kind = setting(doc="oracle, robust or adaptive.")  # noqa: RUF009
    type: str = setting(doc="Arm type: a key of adapt_robot.scoreboard.arms.ARM_TYPES.")

    def validate(self, family: str) -> None:
        """Check the options against the family before any work.

        Raise :class:`adapt_robot.config.ConfigError` with a message that starts with the
        option's key (the caller prefixes ``arms[i].``).
        """


@dataclass(frozen=True, kw_only=True)
class ScoreSettings:
    """What every arm takes from the scoreboard's launch file."""

    split: Literal["train", "test"]
    """Split the scored tasks come from."""
    post_episodes: int
    """Episodes scored per task per stage."""


class Arm(Protocol):
    """Scores one arm: the same tasks, seed and episode budget for every arm."""

    @property
    def spec(self) -> ArmSpec:
        """The arm's launch-file spec."""
        ...

    def score(
        self,
        family: TaskFamily[Any],
        engine: str,
        tasks: Sequence[TaskParams],
        seed: int,
    ) -> ArmResult:
        """Score ``tasks`` (in this order) in ``engine`` with ``seed``."""
        ...


@dataclass(frozen=True, kw_only=True)
class ArmType:
    """One pluggable arm type of :data:`adapt_robot.scoreboard.arms.ARM_TYPES`."""

    spec: type[ArmSpec]
    """Frozen dataclass validating the arm's launch-file mapping."""
    kinds: tuple[Kind, ...]
    """Kinds an arm of this type may be declared as."""
    build: Callable[[Any, ScoreSettings], Arm]
    """``build(spec, settings)``: the arm that scores (``spec`` is an instance of ``spec``)."""
    doc: str
    """One line for error messages and ``--help`` texts."""
