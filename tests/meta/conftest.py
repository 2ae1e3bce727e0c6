"""Smoke-trained point runs shared by the evaluation tests (seconds each, once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapt_robot.jobs.train import run_train

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "launch" / "smoke.yaml")


def train_smoke(out: Path, *overrides: str) -> Path:
    """Train launch/smoke.yaml (with overrides) into ``out``."""
    return run_train(SMOKE, [f"out_dir={out}", *overrides], resume=False)


@pytest.fixture(scope="session")
def point_maml_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MAML on point, 4 smoke iterations."""
    return train_smoke(tmp_path_factory.mktemp("eval_maml") / "maml")


@pytest.fixture(scope="session")
def point_ppo_dr_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PPO-DR baseline on point (fine-tuned at evaluation with inner_lr 0.2)."""
    return train_smoke(
        tmp_path_factory.mktemp("eval_ppo") / "ppo_dr",
        "algo={name: ppo_dr, inner_lr: 0.2, inner_steps: 1}",
    )
