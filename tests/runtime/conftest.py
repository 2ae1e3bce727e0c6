"""Helpers of the runtime tests: damaged copies of the smoke bundles (``tests/conftest.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from adapt_robot.runtime import sha256_file
from adapt_robot.runtime.bundle_files import write_lock
from adapt_robot.runtime.bundle_format import FORMAT_VERSION


@pytest.fixture
def point_bundle_copy(point_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the point bundle, free to damage."""
    return Path(shutil.copytree(point_bundle, tmp_path / "bundle"))


def read_manifest(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((bundle / "manifest.yaml").read_text())
    return data


def write_manifest(bundle: Path, data: dict[str, Any], *, rehash: bool = True) -> None:
    """Write ``data`` as the manifest; with ``rehash`` the file hashes are recomputed first.

    ``bundle.lock`` is written again too (as a bad export would), so the damage under test is
    what the reader meets, not the lock's refusal of an edited manifest.
    """
    if rehash:
        data["files"] = {name: sha256_file(bundle / name) for name in data["files"]}
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    relock(bundle, list(data["files"]))


def relock(bundle: Path, files: list[str]) -> None:
    """Write ``bundle.lock`` over the manifest and ``files`` as they are now."""
    write_lock(bundle.resolve(), ["manifest.yaml", *files], FORMAT_VERSION)


def rehash(bundle: Path) -> None:
    """Make the manifest's sha256 entries match the files again (after a deliberate edit)."""
    write_manifest(bundle, read_manifest(bundle))


def edit_params(bundle: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> None:
    """Rewrite params.npz through ``edit`` (in place on the dict) and rehash."""
    path = bundle / "params.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    rehash(bundle)
