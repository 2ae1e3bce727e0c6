"""Settings and fixtures shared by every test directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


# Smoke-trained runs and their bundles (runtime, deploy and bench tests): trained once per session.
@pytest.fixture(scope="session")
def point_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_tiny(tmp_path_factory.mktemp("rt_point") / "run")


@pytest.fixture(scope="session")
def point_bundle(point_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(point_run, tmp_path_factory.mktemp("rt_point_bundle") / "b")


@pytest.fixture(scope="session")
def grasp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_tiny(tmp_path_factory.mktemp("rt_grasp") / "run", "family=grasp")


@pytest.fixture(scope="session")
def grasp_bundle(grasp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(grasp_run, tmp_path_factory.mktemp("rt_grasp_bundle") / "b")


def _train_tiny(out: Path, *overrides: str) -> Path:
    from tests.runtime.conftest import train_tiny

    return train_tiny(out, *overrides)


def _export(run: Path, out: Path) -> Path:
    from tests.runtime.conftest import export

    return export(run, out)
