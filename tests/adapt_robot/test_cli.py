from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapt_robot.cli import main


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("experts", "render", "spec", "bench"):
        assert cmd in out


def test_spec_documents_every_observation_index(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "point"]) == 0
    out = capsys.readouterr().out
    assert "| 0-1 | `pos` |" in out and "`goal_x`" in out


def test_render_writes_gif(tmp_path: Path) -> None:
    out = tmp_path / "point.gif"
    assert main(["render", "point", "-o", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_experts_on_point_writes_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = Path(__file__).resolve().parents[2] / "launch" / "experts.yaml"
    code = main(
        [
            "experts",
            str(launch),
            "--set",
            f"out_dir={tmp_path}",
            "--set",
            "families=[point]",
            "--set",
            "tasks_per_split=5",
        ]
    )
    assert code == 0
    assert "| point | numpy | 100% | 100% |" in capsys.readouterr().out
    assert (tmp_path / "results.json").exists() and (tmp_path / "point_numpy.gif").exists()
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["out_dir"] == str(tmp_path) and saved["families"] == ["point"]


def test_bad_launch_value_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = Path(__file__).resolve().parents[2] / "launch" / "experts.yaml"
    assert main(["experts", str(launch), "--set", "tasks_per_split=zero"]) == 2
    err = capsys.readouterr().err
    assert "tasks_per_split: expected an integer, got str 'zero'" in err


def test_unknown_family_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "drawer"]) == 2
    assert "unknown task family 'drawer'" in capsys.readouterr().err
