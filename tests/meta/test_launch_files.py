"""Every training launch file in launch/ validates (experts, demo and scoreboard_* have their own
configs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapt_robot.meta.train_config import load_train_config

LAUNCH = Path(__file__).resolve().parents[2] / "launch"
TRAIN_FILES = sorted(
    p
    for p in LAUNCH.glob("*.yaml")
    if p.name not in ("demo.yaml", "experts.yaml") and not p.name.startswith("scoreboard_")
)


def test_the_issue_asks_for_these_launch_files() -> None:
    names = {p.name for p in TRAIN_FILES}
    for family in ("grasp", "door", "point"):
        for learner in ("maml", "rl2", "pearl"):
            assert f"{family}_{learner}.yaml" in names
    for family in ("grasp", "door"):
        assert f"{family}_ppo_dr.yaml" in names
    assert "smoke.yaml" in names


@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: p.name)
def test_launch_file_validates_and_names_its_family(path: Path) -> None:
    cfg = load_train_config(path)
    assert cfg.family in path.name or path.name.startswith("smoke")
    assert cfg.out_dir.startswith("runs/")


@pytest.mark.parametrize("family", ["grasp", "door"])
def test_baseline_gets_the_same_budget_and_warm_start_as_maml(family: str) -> None:
    maml = load_train_config(LAUNCH / f"{family}_maml.yaml")
    ppo = load_train_config(LAUNCH / f"{family}_ppo_dr.yaml")
    assert maml.budget.env_steps == ppo.budget.env_steps
    assert maml.warm_start == ppo.warm_start
    assert maml.sampler.engine == ppo.sampler.engine
