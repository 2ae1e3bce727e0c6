"""Optional bundle signatures: an HMAC-SHA256 of ``bundle.lock`` under a key the operator holds.

The lock and the per-file hashes catch every damaged or edited file, but someone who can write
the bundle can also rewrite the hashes. A signature closes that: export with a key
(``adapt-robot export RUN -o BUNDLE --sign-key KEYFILE``) writes ``bundle.sig``, the
HMAC-SHA256 (RFC 2104) of the exact bytes of ``bundle.lock``; a robot that loads with the same
key (``Bundle.load(path, key=...)``, ``adapt-robot deploy --verify-key KEYFILE``) refuses a
bundle whose signature is missing or does not match. Since the lock holds the sha256 of the
manifest and of every file, the signature covers all of them.

HMAC is symmetric: whoever holds the key can sign, so keep it where the exporter and the robots
are, and nowhere else. Without a key nothing is verified (and ``bundle.sig`` is not needed).
Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from adapt_robot.errors import BundleError
from adapt_robot.runtime.bundle_files import LOCK, read_member

SIG = "bundle.sig"
"""The signature file, beside ``bundle.lock`` (not listed in it: it signs it)."""
ALGORITHM = "hmac-sha256"
MIN_KEY_BYTES = 16
"""Shortest key accepted (128 bits)."""


def read_key(path: str | Path) -> bytes:
    """The signing key in file ``path`` (its raw bytes, at least :data:`MIN_KEY_BYTES`)."""
    p = Path(path)
    try:
        key = p.read_bytes()
    except OSError as err:
        raise BundleError(f"{p}: cannot read the signing key ({err.strerror})") from err
    if len(key) < MIN_KEY_BYTES:
        raise BundleError(
            f"{p}: a signing key of {len(key)} bytes; use at least {MIN_KEY_BYTES} random bytes "
            "(e.g. head -c 32 /dev/urandom > KEYFILE)"
        )
    return key


def _mac(key: bytes, lock: bytes) -> str:
    return hmac.new(key, lock, hashlib.sha256).hexdigest()


def sign(bundle_dir: str | Path, key: bytes) -> Path:
    """Write ``bundle.sig`` for the bundle's current ``bundle.lock``; returns its path."""
    root = Path(bundle_dir).resolve()
    lock = read_member(root, LOCK, "the bundle")
    body = {"algorithm": ALGORITHM, "mac": _mac(key, lock)}
    path = root / SIG
    path.write_text(json.dumps(body) + "\n")
    return path


def verify(bundle_dir: str | Path, key: bytes) -> None:
    """Raise :class:`BundleError` unless ``bundle.sig`` is ``key``'s HMAC of ``bundle.lock``."""
    given = Path(bundle_dir)
    root = given.resolve()
    if not (root / SIG).exists():
        raise BundleError(
            f"{given / SIG}: missing; this robot loads signed bundles only (a key was given): "
            "export the bundle with --sign-key"
        )
    raw = read_member(root, SIG, "the bundle")
    try:
        body = json.loads(raw)
        algorithm, mac = body["algorithm"], body["mac"]
    except (ValueError, TypeError, KeyError) as err:
        raise BundleError(
            f"{given / SIG}: not a signature file (expected JSON with algorithm and mac)"
        ) from err
    if algorithm != ALGORITHM or not isinstance(mac, str):
        raise BundleError(f"{given / SIG}: algorithm {algorithm!r}, expected {ALGORITHM!r}")
    lock = read_member(root, LOCK, "the bundle")
    if not hmac.compare_digest(mac, _mac(key, lock)):
        raise BundleError(
            f"{given / SIG}: the signature does not match {LOCK}: the bundle was signed with "
            "another key, or changed after it was signed; do not run it"
        )
