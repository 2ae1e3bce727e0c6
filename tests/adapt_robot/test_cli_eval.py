"""``adapt-robot eval``: the subcommand's output, files and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adapt_robot.cli import main
from adapt_robot.jobs.train import run_train

SMOKE = str(Path(__file__).resolve().parents[2] / "launch" / "smoke.yaml")
FAST = ["--tasks", "3", "--episodes", "2", "--steps", "2", "--post-episodes", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli_eval") / "run"
    return run_train(SMOKE, [f"out_dir={out}", "budget.iterations=2"], resume=False)


def test_help_lists_eval(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"\n\s+eval\s+held-out evaluation", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    for flag in ("--backend", "--tasks", "--episodes", "--steps", "--out"):
        assert flag in out


def test_eval_prints_table_and_writes_report(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run), *FAST]) == 0
    captured = capsys.readouterr()
    assert "| run | algo | engine | success pre | post@1 | post@2 | gain (points) |" in captured.out
    assert "| run | maml | numpy |" in captured.out
    assert "[eval run] 4/3" not in captured.err and "[eval run] 3/3 stage" in captured.err
    report = json.loads((run / "eval" / "report.json").read_text())
    assert report["protocol"]["tasks"] == 3 and report["protocol"]["exploration_episodes"] == 2
    assert [c["inner_steps"] for c in report["curve"]] == [0, 1, 2]
    assert (run / "eval" / "adaptation_curve.png").exists()


def test_eval_out_dir_and_two_runs_compared(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(run), str(run), *FAST, "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    # Same names: labelled by full path; one row per run in the success and the return table.
    assert out.count(f"| {run} | maml | numpy |") == 4
    assert (tmp_path / "cmp" / "reports.json").exists()
    assert (tmp_path / "cmp" / "adaptation_curve.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "pybullet"], "--backend pybullet: family 'point' runs only in ['numpy']"),
        (["--tasks", "0"], "--tasks: expected an integer >= 1, got 0"),
        (["--steps", "4"], "--steps: expected an integer in [1, 3], got 4"),
    ],
)
def test_bad_flags_are_one_clear_error(
    run: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adapt-robot eval: error: ") and message in err
    assert "Traceback" not in err


def test_missing_run_dir_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert "nope: no such run directory" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    assert "no checkpoint.pt in this directory" in capsys.readouterr().err
