"""Signed bundles: a robot given a key loads only bundles signed with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapt_robot.cli import main
from adapt_robot.runtime import Bundle, BundleError
from adapt_robot.runtime.signing import SIG, read_key, sign, verify
from tests.runtime.conftest import read_manifest, write_manifest

KEY = bytes(range(32))


@pytest.fixture
def signed(point_bundle: Path, tmp_path: Path) -> Path:
    bundle = Path(shutil.copytree(point_bundle, tmp_path / "signed"))
    sign(bundle, KEY)
    return bundle


def test_a_signed_bundle_loads_with_its_key_and_without_one(signed: Path) -> None:
    assert Bundle.load(signed, key=KEY).manifest.family == "point"
    assert Bundle.load(signed).manifest.family == "point"  # no key: nothing to verify
    assert json.loads((signed / SIG).read_text())["algorithm"] == "hmac-sha256"


def test_another_key_a_missing_signature_or_a_rehashed_edit_is_refused(signed: Path) -> None:
    with pytest.raises(BundleError, match="signed with another key, or changed after"):
        Bundle.load(signed, key=bytes(32))
    # Edited and re-hashed (manifest, lock: everything a writer of the bundle can redo).
    data = read_manifest(signed)
    data["acceptance"]["max_update_norm"] = 1e9
    write_manifest(signed, data)
    Bundle.load(signed)  # the hashes agree again
    with pytest.raises(BundleError, match=r"does not match bundle\.lock"):
        Bundle.load(signed, key=KEY)
    (signed / SIG).unlink()
    with pytest.raises(BundleError, match=r"bundle\.sig: missing; this robot loads signed"):
        verify(signed, KEY)


@pytest.mark.parametrize("body", [b"not json", b'{"algorithm": "md5", "mac": "00"}', b"[]"])
def test_a_damaged_signature_file_is_refused_by_name(signed: Path, body: bytes) -> None:
    (signed / SIG).write_bytes(body)
    with pytest.raises(BundleError, match=r"bundle\.sig"):
        Bundle.load(signed, key=KEY)


def test_keys_must_be_long_enough(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"secret")
    with pytest.raises(BundleError, match="at least 16 random bytes"):
        read_key(short)
    with pytest.raises(BundleError, match="cannot read the signing key"):
        read_key(tmp_path / "missing.key")


def test_export_signs_and_deploy_verifies(point_run: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "robot.key"
    keyfile.write_bytes(KEY)
    out = tmp_path / "bundle"
    assert main(["export", str(point_run), "-o", str(out), "--sign-key", str(keyfile)]) == 0
    assert (out / SIG).is_file()
    deploy = ["deploy", str(out), "--robot", "sim:numpy", "--objects", "1", "--post-episodes", "1"]
    assert main([*deploy, "--rate", "1000", "--verify-key", str(keyfile)]) == 0
    other = tmp_path / "other.key"
    other.write_bytes(bytes(32))
    assert main([*deploy, "--rate", "1000", "--verify-key", str(other)]) != 0
