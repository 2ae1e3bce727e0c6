"""The adaptation scoreboard: adaptive arms against an oracle and the best robust arm.

``adapt-robot scoreboard LAUNCH.yaml`` scores every arm of the launch file (pluggable types in
:data:`adapt_robot.scoreboard.arms.ARM_TYPES`) on the same held-out tasks, seed and episode
budget, and reports success with 95% intervals, the headroom ``oracle - best robust`` and the
share of it each adaptive stage closes (:mod:`adapt_robot.scoreboard.gap`).
"""

from adapt_robot.scoreboard.config import ScoreboardConfig, load_scoreboard_config
from adapt_robot.scoreboard.gap import NO_HEADROOM, GapClosed, gap_closed, paired_gap_closed
from adapt_robot.scoreboard.results import ArmResult, StageResult
from adapt_robot.scoreboard.run import run_scoreboard

__all__ = [
    "NO_HEADROOM",
    "ArmResult",
    "GapClosed",
    "ScoreboardConfig",
    "StageResult",
    "gap_closed",
    "load_scoreboard_config",
    "paired_gap_closed",
    "run_scoreboard",
]
