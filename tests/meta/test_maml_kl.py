"""ProMP's adaptive KL coefficient: the rule itself, and that a run uses and checkpoints it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapt_robot.jobs.train import run_train
from adapt_robot.meta.algorithms.maml import MAML, adapt_kl_coef
from adapt_robot.meta.trainer import load_run
from tests.meta.test_trainer import SMOKE, TINY


@pytest.mark.parametrize(
    ("kl", "expected"),
    [(0.001, 0.25), (0.0066, 0.25), (0.0067, 0.5), (0.01, 0.5), (0.015, 0.5), (0.0151, 1.0)],
)
def test_rule_halves_below_and_doubles_above_the_band(kl: float, expected: float) -> None:
    assert adapt_kl_coef(0.5, kl, 0.01) == pytest.approx(expected)


def test_no_target_keeps_the_coefficient() -> None:
    assert adapt_kl_coef(0.5, 100.0, None) == 0.5


def test_run_logs_the_coefficient_it_used_and_resumes_with_the_adapted_one(
    tmp_path: Path,
) -> None:
    run = run_train(
        SMOKE,
        [*TINY, f"out_dir={tmp_path}", "algo.kl_target=1e-9", "budget.iterations=2"],
        resume=False,
    )
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # Any positive KL is far above a target of 1e-9: the coefficient doubles every iteration.
    assert [r["kl_coef"] for r in rows] == [0.5, 1.0]
    _, learner, _ = load_run(run)
    assert isinstance(learner, MAML) and learner.kl_coef == 2.0
