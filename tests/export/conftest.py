"""Shared fixtures: one smoke-trained run and its bundle per session (seconds each)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapt_robot.export import export_bundle
from adapt_robot.jobs.train import run_train
from adapt_robot.runtime import bundle_format as bf
from adapt_robot.runtime.bundle_files import write_lock

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "launch" / "smoke.yaml")


def train_smoke(out: Path, *overrides: str) -> Path:
    """Train launch/smoke.yaml (with overrides) into ``out``."""
    return run_train(SMOKE, [f"out_dir={out}", *overrides], resume=False)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_smoke(tmp_path_factory.mktemp("smoke") / "run")


@pytest.fixture(scope="session")
def smoke_bundle(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(smoke_run, tmp_path_factory.mktemp("bundle") / "b", fp16=True)


@pytest.fixture
def bundle_copy(smoke_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the session bundle, free to damage."""
    return Path(shutil.copytree(smoke_bundle, tmp_path / "bundle"))


def relock(bundle: Path, data: object) -> None:
    """Write ``bundle.lock`` again over the manifest and the files ``data`` (its YAML) lists.

    What a bad export would leave: the damage under test is then what the reader meets, not
    the lock's refusal of an edited manifest.
    """
    files = data.get("files") if isinstance(data, dict) else None
    names = list(files) if isinstance(files, dict) else []
    write_lock(bundle.resolve(), [bf.MANIFEST, *names], bf.FORMAT_VERSION)
