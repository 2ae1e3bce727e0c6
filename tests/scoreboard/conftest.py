"""Scoreboard fixtures: a point bundle whose batch holds 3 episodes, and launch-file writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

SMOKE_LAUNCH = ROOT / "launch" / "scoreboard_smoke.yaml"
POINT_HORIZON = 20
"""``point``'s max_steps: after_3 needs a batch of 3 x 20 rows."""


@pytest.fixture(scope="session")
def point_bundle_3ep(point_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke point run exported with capacity for 3 episodes (after_3)."""
    from adapt_robot.export import export_bundle

    out = tmp_path_factory.mktemp("sb_point_bundle") / "b"
    return export_bundle(point_run, out, capacity=3 * POINT_HORIZON)


def smoke_data(bundle: Path | str) -> dict[str, Any]:
    """launch/scoreboard_smoke.yaml as a mapping, its bundle arm pointing at ``bundle``."""
    data = yaml.safe_load(SMOKE_LAUNCH.read_text())
    for arm in data["arms"]:
        if arm["type"] == "bundle":
            arm["bundle"] = str(bundle)
    return data


def write_launch(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as a launch file at ``path``."""
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
