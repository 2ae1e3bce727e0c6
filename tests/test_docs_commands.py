"""Every command and Python example in README.md and docs/*.md runs (see tests/docs_commands.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_commands import ROOT, RUNS, python_blocks, shell_blocks

SHELL = shell_blocks()
PYTHON = python_blocks()


def test_every_documented_command_has_a_run_and_no_run_is_stale() -> None:
    documented = {line for _, lines in SHELL for line in lines}
    assert documented - RUNS.keys() == set(), "documented commands with no entry in RUNS"
    assert RUNS.keys() - documented == set(), "RUNS entries no longer in the docs"


def _scratch(tmp_path: Path, bundle: Path | None) -> dict[str, str]:
    """A working directory that looks like the repository root for the documented commands."""
    (tmp_path / "launch").symlink_to(ROOT / "launch")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    if bundle is not None:
        shutil.copytree(bundle, tmp_path / "runs" / "demo" / "bundle")
    # A user's shell: no rendering settings from tests/conftest.py.
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize(
    "index", range(len(SHELL)), ids=[f"{p.name}-{i}" for i, (p, _) in enumerate(SHELL)]
)
def test_documented_shell_block_runs(
    index: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path, lines = SHELL[index]
    skipped = [RUNS[line].skip for line in lines if RUNS[line].skip]
    if skipped:
        pytest.skip(skipped[0])
    if any(line.startswith("cc ") for line in lines) and shutil.which("cc") is None:
        pytest.skip("no C compiler on this machine")
    bundle = (
        request.getfixturevalue("grasp_bundle")
        if any("runs/demo/bundle" in ln for ln in lines)
        else None
    )
    env = _scratch(tmp_path, bundle)
    script = "set -euo pipefail\n" + "\n".join(line + RUNS[line].extra for line in lines)
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, (
        f"{path.name} block failed:\n{script}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


@pytest.mark.parametrize(
    "index", range(len(PYTHON)), ids=[f"{p.name}-py{i}" for i, (p, _) in enumerate(PYTHON)]
)
def test_documented_python_example_runs(index: int, tmp_path: Path, grasp_bundle: Path) -> None:
    path, source = PYTHON[index]
    env = _scratch(tmp_path, grasp_bundle)
    done = subprocess.run(
        [sys.executable, "-c", source],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{path.name} example failed:\n{source}\n{done.stderr[-3000:]}"
