"""Headroom tool on the point family: hand-checkable facts about fixed-hidden experts."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from adapt_robot.sim.core.params import TaskParams, param
from adapt_robot.sim.experts import headroom as hr
from adapt_robot.sim.families.point import PointFamily, PointParams


@dataclass(frozen=True, kw_only=True)
class RingParams(PointParams):
    """A point task with a visible reach limit: a goal beyond ``max_r`` is invalid."""

    max_r: float = param(doc="largest goal radius (m)", low=0.0, high=1.5, hidden=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if math.hypot(self.goal_x, self.goal_y) > self.max_r:
            raise ValueError(f"goal beyond max_r={self.max_r}")


@dataclass(frozen=True, kw_only=True)
class ChoiceParams(TaskParams):
    """Hidden choice and hidden number, for averaging."""

    side: str = param(doc="side", choices=("left", "right"), hidden=True)
    k: float = param(doc="gain", low=0.0, high=10.0, hidden=True)
    size: float = param(doc="visible size", low=0.0, high=1.0, hidden=False)


def _goal(x: float, y: float) -> PointParams:
    return PointParams(goal_x=x, goal_y=y)


def test_hidden_fields_by_name_and_family() -> None:
    assert hr.hidden_fields("point") == ("goal_x", "goal_y")
    assert hr.hidden_fields(PointFamily()) == ("goal_x", "goal_y")
    assert hr.hidden_fields("grasp") == ("mass", "friction", "com_x", "com_z", "break_force")


def test_with_hidden_replaces_only_hidden_and_rejects_invalid() -> None:
    task = RingParams(goal_x=0.1, goal_y=0.2, max_r=0.5)
    moved = hr.with_hidden(task, {"goal_x": 0.3})
    assert moved == RingParams(goal_x=0.3, goal_y=0.2, max_r=0.5)
    assert hr.with_hidden(task, {"goal_x": 0.6}) is None  # beyond max_r: a cross-field rule
    assert hr.with_hidden(task, {"goal_x": 5.0}) is None  # outside the declared range
    assert hr.with_hidden(task, {"goal_y": "up"}) is None  # wrong type
    with pytest.raises(KeyError, match=r"\['max_r'\] are not hidden fields of RingParams"):
        hr.with_hidden(task, {"max_r": 1.0})


def test_average_setting_means_numbers_and_takes_the_commonest_choice() -> None:
    tasks = [
        ChoiceParams(side="right", k=1.0, size=0.1),
        ChoiceParams(side="left", k=2.0, size=0.2),
        ChoiceParams(side="left", k=6.0, size=0.3),
    ]
    assert hr.average_setting(tasks) == {"side": "left", "k": 3.0}
    tie = [ChoiceParams(side="right", k=1.0, size=0.1), ChoiceParams(side="left", k=1.0, size=0.1)]
    assert hr.average_setting(tie)["side"] == "right"
    with pytest.raises(ValueError, match="at least one task"):
        hr.average_setting([])


def test_candidates_are_train_tasks_then_their_mean() -> None:
    cands = hr.fixed_hidden_candidates("point", 4, seed=3)
    tasks = PointFamily().sample_tasks(np.random.default_rng(3), 4, "train")
    assert len(cands) == 5
    assert cands[:4] == [{"goal_x": t.goal_x, "goal_y": t.goal_y} for t in tasks]
    assert cands[4]["goal_x"] == pytest.approx(np.mean([t.goal_x for t in tasks]))
    assert cands[4]["goal_y"] == pytest.approx(np.mean([t.goal_y for t in tasks]))
    assert all(math.hypot(c["goal_x"], c["goal_y"]) <= 0.5 for c in cands)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        hr.fixed_hidden_candidates("point", 0, seed=0)


def test_fixed_expert_succeeds_where_it_ends_and_fails_invalid_tasks() -> None:
    # Heading for (0.5, 0) from the origin at 0.1 m/step passes within 5 cm of (0.2, 0) but
    # ends at (0.5, 0): point's success_rule is "final", so only a goal there counts.
    tasks = [
        RingParams(goal_x=0.2, goal_y=0.0, max_r=0.3),  # (0.5, 0) invalid here: a failure
        RingParams(goal_x=0.5, goal_y=0.0, max_r=1.0),  # where it ends: a success
        RingParams(goal_x=0.2, goal_y=0.0, max_r=1.0),  # passed on the way: a failure
        RingParams(goal_x=0.0, goal_y=0.3, max_r=1.0),  # elsewhere: a failure
    ]
    assert PointFamily.success_rule == "final"
    ok = hr.fixed_hidden_success(PointFamily(), "numpy", tasks, {"goal_x": 0.5, "goal_y": 0.0})
    np.testing.assert_array_equal(ok, [False, True, False, False])
    never = hr.fixed_hidden_success(PointFamily(), "numpy", tasks, {"goal_x": 1.4})
    np.testing.assert_array_equal(never, [False, False, False, False])


def test_best_fixed_is_chosen_on_validation_with_ties_to_the_first() -> None:
    val = [_goal(-0.3, 0.0), _goal(-0.3, 0.01), _goal(-0.31, 0.0), _goal(0.3, 0.0)]
    east, west = {"goal_x": 0.3, "goal_y": 0.0}, {"goal_x": -0.3, "goal_y": 0.0}
    chosen, rate = hr.best_fixed_hidden(
        "point", "numpy", candidates=[east, west], val_tasks=val, seed=0
    )
    assert chosen == west and rate == pytest.approx(0.75)
    west2 = {"goal_x": -0.3, "goal_y": 0.001}
    chosen, rate = hr.best_fixed_hidden(
        "point", "numpy", candidates=[{"goal_x": 2.0}, west, west2], val_tasks=val, seed=0
    )
    assert chosen == west and rate == pytest.approx(0.75)
    with pytest.raises(ValueError, match="candidates: expected at least one"):
        hr.best_fixed_hidden("point", "numpy", candidates=[], val_tasks=val, seed=0)


def test_headroom_report_on_point() -> None:
    report = hr.headroom("point", "numpy", "train", 24, seed=1, n_candidates=6, n_val=12)
    assert report.oracle == 1.0
    assert len(report.candidate_val) == 7
    assert report.chosen_val == max(report.candidate_val)
    tasks = PointFamily().sample_tasks(np.random.default_rng(1), 24, "train")
    again = hr.fixed_hidden_success("point", "numpy", tasks, report.chosen, seed=1)
    assert report.best_fixed == pytest.approx(float(np.mean(again)))
    assert report.headroom == pytest.approx(100 * (report.oracle - report.best_fixed))
    assert report.headroom > 50  # one fixed goal reaches few of the goals in a 0.5 m disc
    assert report.invalid == 0
    with pytest.raises(ValueError, match="splits: expected"):
        hr.headroom("point", "numpy", "val", 4)  # type: ignore[arg-type]


def test_cli_prints_both_splits(capsys: pytest.CaptureFixture[str]) -> None:
    hr.main(["point", "--engine", "numpy", "--tasks", "8", "--candidates", "3"])
    out = capsys.readouterr().out
    assert "| point | numpy | train | 8 | 100.0% |" in out
    assert "| point | numpy | test | 8 | 100.0% |" in out
    assert "chosen hidden setting goal_x=" in out
