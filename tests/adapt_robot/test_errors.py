"""Project errors (adapt_robot.errors): one line from the CLI; anything else keeps its traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from adapt_robot import cli
from adapt_robot.config import ConfigError
from adapt_robot.errors import AdaptRobotError, InputNotFound, OutputExists, UsageError
from adapt_robot.runtime.bundle_format import BundleError

ROOT = Path(__file__).resolve().parents[2]


def test_project_errors_keep_the_builtin_type_they_had() -> None:
    assert issubclass(ConfigError, AdaptRobotError) and issubclass(ConfigError, ValueError)
    assert issubclass(BundleError, AdaptRobotError) and issubclass(BundleError, ValueError)
    assert issubclass(InputNotFound, FileNotFoundError) and issubclass(OutputExists, OSError)
    with pytest.raises(ValueError, match="bad flag"):
        raise UsageError("bad flag")


def test_training_export_and_checkpoint_errors_are_project_errors() -> None:
    from adapt_robot.errors import CheckpointError
    from adapt_robot.export.bundle import ExportError
    from adapt_robot.meta.algorithms.base import TrainingDiverged

    assert issubclass(TrainingDiverged, AdaptRobotError)
    assert issubclass(TrainingDiverged, FloatingPointError)
    assert issubclass(ExportError, AdaptRobotError) and issubclass(ExportError, ValueError)
    assert issubclass(CheckpointError, AdaptRobotError) and issubclass(CheckpointError, ValueError)


def test_a_project_error_is_one_line_and_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: argparse.Namespace) -> None:
        raise InputNotFound("runs/nope: no such run directory; pass the out_dir of a run")

    monkeypatch.delenv("ADAPT_ROBOT_DEBUG", raising=False)
    monkeypatch.setitem(cli.COMMANDS, "spec", fail)
    assert cli.main(["spec", "point"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "adapt-robot spec: error: runs/nope: no such run directory; pass the out_dir of a run\n"
    )


def test_debug_variable_re_raises_a_project_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: argparse.Namespace) -> None:
        raise UsageError("wrong")

    monkeypatch.setenv("ADAPT_ROBOT_DEBUG", "1")
    monkeypatch.setitem(cli.COMMANDS, "spec", fail)
    with pytest.raises(UsageError, match="wrong"):
        cli.main(["spec", "point"])


@pytest.mark.parametrize("bug", [ValueError("deep"), TypeError("deep"), OSError("deep")])
def test_any_other_exception_is_not_swallowed(
    bug: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(args: argparse.Namespace) -> None:
        raise bug

    monkeypatch.delenv("ADAPT_ROBOT_DEBUG", raising=False)
    monkeypatch.setitem(cli.COMMANDS, "spec", fail)
    with pytest.raises(type(bug), match="deep"):
        cli.main(["spec", "point"])


def test_a_bug_prints_its_traceback_from_the_command_line() -> None:
    # A plain ValueError from inside a job (here: the family registry made to fail) reaches the
    # user with the traceback naming where it came from.
    code = (
        "import sys, adapt_robot.sim.registry as r\n"
        "def boom(name): raise ValueError('a bug deep inside')\n"
        "r.get_family = boom\n"
        "from adapt_robot.cli import main\n"
        "sys.exit(main(['spec', 'point']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ValueError: a bug deep inside" in proc.stderr and "in boom" in proc.stderr


def test_every_subcommand_has_a_handler() -> None:
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)
