"""The example scripts run on a real bundle (a tiny law_id bundle of the test session)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_first_attempt_trace_counts_every_object(
    law_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "first_attempt_trace", ROOT / "examples" / "first_attempt_trace.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = module.main([str(law_bundle), "--objects", "2", "--show", "1"])
    assert sum(counts["before"].values()) == 2 and sum(counts["first_attempt"].values()) == 2
    out = capsys.readouterr().out
    assert "theta(z0)" in out and "object 1:" in out and "t=5" in out
