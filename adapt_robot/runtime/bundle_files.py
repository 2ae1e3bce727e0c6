"""Bounded, confined reading of a bundle's files (standard library, numpy and PyYAML only).

The primitives :mod:`adapt_robot.runtime.bundle_format` reads a bundle with, none of which
knows the manifest's schema:

- :func:`read_member`: a file named by the bundle, read whole into memory, refused unless it is
  a regular file inside the bundle directory (a symbolic link is resolved and must stay
  inside) and no larger than its kind's limit (:data:`SIZE_LIMITS`). What is checked and used
  afterwards are these bytes: a file replaced after its hash was checked is never read.
- :func:`parse_strict_yaml`: UTF-8 YAML with no anchors or aliases, nested at most
  :data:`MAX_DEPTH` deep, through the launch files' loader (the C loader where PyYAML has it;
  duplicate keys refused).
- :func:`npz_arrays`: ``params.npz`` whose zip directory and ``.npy`` headers are checked
  against the expected keys, shapes and dtypes before any array is decompressed.
- :func:`read_lock` / :func:`write_lock`: ``bundle.lock``, the index export writes last: the
  sha256 of ``manifest.yaml`` and of every file it lists, and one digest over them all.

Every refusal is a :class:`~adapt_robot.errors.BundleError` naming the file and what was
expected, and saying what to do (:data:`REEXPORT`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from adapt_robot.config import parse_yaml
from adapt_robot.errors import BundleError

REEXPORT = "re-export the bundle with this adapt-robot: adapt-robot export RUN_DIR -o BUNDLE"
"""What to do about a bundle this reader refuses for its version, its fields or its files."""
LOCK = "bundle.lock"
"""The bundle's index: sha256 of the manifest and of every file it lists (written last)."""
KiB, MiB = 1 << 10, 1 << 20
SIZE_LIMITS = {
    ".lock": 64 * KiB,
    ".sig": 4 * KiB,
    ".yaml": 256 * KiB,
    ".onnx": 256 * MiB,
    ".npz": 256 * MiB,
}
"""Largest file of each kind (by suffix) a bundle may hold, in bytes; any other file: 256 MiB.
A real manifest is a few KiB; the limits bound the time and memory of a load."""
OTHER_LIMIT = 256 * MiB
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists a manifest may have (the real one: about 6)."""
MAX_PARAM_BYTES = 256 * MiB
"""Largest total size of the arrays of ``params.npz`` once decompressed."""
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
"""A file name a bundle may list: no directory part, no leading dot."""
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
"""A sha256 digest as export writes it: 64 lowercase hex digits."""
_LOCK_KEYS = ("format_version", "files", "sha256")


def size_limit(name: str) -> int:
    """The size limit of bundle file ``name`` (see :data:`SIZE_LIMITS`)."""
    return SIZE_LIMITS.get(Path(name).suffix, OTHER_LIMIT)


def _open_confined(root: Path, name: str) -> int:
    """A read-only descriptor of regular file ``root/name``; it must resolve inside ``root``."""
    path = root / name
    if not PLAIN_NAME.match(name) or name in (".", ".."):
        raise BundleError(f"{path}: not a plain file name inside the bundle; {REEXPORT}")
    real = path.resolve()
    if real.parent != root:
        raise BundleError(
            f"{path}: a symbolic link to {real}, outside the bundle directory {root}; a bundle's "
            f"files must be inside it: copy the file in or {REEXPORT}"
        )
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(real, flags)  # no FIFO can block us (O_NONBLOCK); a new symlink fails
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BundleError(
                f"{path}: not a regular file (mode {stat.filemode(mode)}); a bundle holds plain "
                f"files only: {REEXPORT}"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_member(root: Path, name: str, listed_in: str) -> bytes:
    """The bytes of bundle file ``name`` (``root`` resolved), confined and size-limited.

    ``listed_in`` names what lists the file, for the message when it is missing.
    """
    path = root / name
    limit = size_limit(name)
    try:
        fd = _open_confined(root, name)
    except FileNotFoundError:
        raise BundleError(f"{path}: listed in {listed_in} but missing; {REEXPORT}") from None
    except OSError as err:
        raise BundleError(f"{path}: cannot be opened ({err.strerror}); {REEXPORT}") from err
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(size + 1) if size <= limit else b""  # read(n) allocates n bytes
    if size > limit or len(data) > limit:
        raise BundleError(
            f"{path}: {max(size, len(data))} bytes, above the {limit}-byte limit for "
            f"'{Path(name).suffix or name}' files (docs/bundle_format.md); this is not a file "
            f"export writes: {REEXPORT}"
        )
    return data


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------- YAML
def _scan_events(text: str, source: str) -> None:
    """Refuse anchors, aliases and nesting beyond :data:`MAX_DEPTH` (one pass over events)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor is not None:
            line = event.start_mark.line + 1 if event.start_mark is not None else "?"
            raise BundleError(
                f"{source}: line {line}: YAML anchor or alias ({anchor!r}) refused: export writes "
                f"none, and aliases can multiply the work of reading a file; {REEXPORT}"
            )
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                raise BundleError(
                    f"{source}: line {line}: nested deeper than {MAX_DEPTH} mappings or lists; "
                    f"export writes about 6: {REEXPORT}"
                )
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def parse_strict_yaml(data: bytes, source: str) -> Any:
    """Parse ``data`` as a UTF-8 YAML document: no anchors or aliases, bounded nesting.

    Parsed with the launch files' loader (:func:`adapt_robot.config.parse_yaml`: PyYAML's
    safe loader, its C version where installed, duplicate keys refused).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BundleError(
            f"{source}: not UTF-8 text (byte {err.start}: {err.reason}); export writes UTF-8 "
            f"YAML (a binary or UTF-16 file is not a manifest): {REEXPORT}"
        ) from None
    try:
        _scan_events(text, source)
        return parse_yaml(text)
    except yaml.YAMLError as err:
        first = " ".join(str(err).split())
        raise BundleError(f"{source}: not valid YAML ({first}); {REEXPORT}") from None


# ---------------------------------------------------------------------------------- params.npz
def _header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` stream ``fh`` (reads the header only)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(fh)
    raise ValueError(f"unsupported .npy format version {version}")


def npz_arrays(
    blob: bytes, source: str, expected: Mapping[str, tuple[Sequence[int], str]]
) -> dict[str, np.ndarray]:
    """The arrays of ``.npz`` bytes ``blob``, each exactly as ``expected`` (key -> shape, dtype).

    The zip directory and every ``.npy`` header are checked first (keys, shapes, dtypes, C
    order, sizes), so nothing is decompressed beyond what the manifest declares. A damaged
    archive (truncated, bad CRC, a header that lies) is a :class:`BundleError` naming ``source``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            infos = zf.infolist()
            keys = [i.filename[:-4] if i.filename.endswith(".npy") else i.filename for i in infos]
            if len(set(keys)) != len(keys):
                dup = sorted(k for k in keys if keys.count(k) > 1)[0]
                raise BundleError(f"{source}: {dup}: stored twice; {REEXPORT}")
            for key in expected:
                if key not in keys:
                    raise BundleError(
                        f"{source}: {key}: missing array (manifest parameters lists it); {REEXPORT}"
                    )
            for key in keys:
                if key not in expected:
                    raise BundleError(
                        f"{source}: {key}: array not in the manifest's parameters; {REEXPORT}"
                    )
            for key, info in zip(keys, infos, strict=True):
                _check_member(zf, info, source, key, expected[key])
            out = {}
            for key, info in zip(keys, infos, strict=True):
                with zf.open(info) as fh:
                    out[key] = np.lib.format.read_array(fh, allow_pickle=False)
    except BundleError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as err:
        raise _damaged(source, err) from err
    except (zlib.error, NotImplementedError, RuntimeError, KeyError, TypeError) as err:
        raise _damaged(source, err) from err
    return {k: out[k] for k in expected}


def _check_member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    source: str,
    key: str,
    want: tuple[Sequence[int], str],
) -> None:
    shape, dtype = list(want[0]), want[1]
    with zf.open(info) as fh:
        got_shape, fortran, got_dtype = _header(fh)
        header_bytes = fh.tell()
    if list(got_shape) != shape or str(got_dtype) != dtype:
        raise BundleError(
            f"{source}: {key}: shape {list(got_shape)} dtype {got_dtype}, manifest says "
            f"{shape} {dtype}; {REEXPORT}"
        )
    if fortran:
        raise BundleError(f"{source}: {key}: stored in Fortran order; {REEXPORT}")
    size = header_bytes + int(np.prod(shape, dtype=np.int64)) * got_dtype.itemsize
    if info.file_size != size:
        raise BundleError(
            f"{source}: {key}: {info.file_size} bytes once decompressed, its header and shape "
            f"make {size}; the archive is damaged: {REEXPORT}"
        )


def _damaged(source: str, err: BaseException) -> BundleError:
    first = str(err).splitlines()[0] if str(err) else ""
    return BundleError(
        f"{source}: cannot be read as a numpy .npz archive ({type(err).__name__}: {first}); "
        f"the file is damaged: {REEXPORT}"
    )


# ---------------------------------------------------------------------------------- bundle.lock
def lock_digest(format_version: int, files: Mapping[str, str]) -> str:
    """The one sha256 over a bundle: its format version and every ``name: sha256`` entry.

    The hashed text is ``adapt-robot bundle <version>`` then one ``<sha256>  <name>`` line per
    file, sorted by name (the lines are those of ``sha256sum``).
    """
    lines = [f"adapt-robot bundle {format_version}\n"]
    lines += [f"{files[name]}  {name}\n" for name in sorted(files)]
    return sha256_bytes("".join(lines).encode())


def write_lock(root: Path, names: Sequence[str], format_version: int) -> None:
    """Write ``bundle.lock`` for files ``names`` of ``root`` (export calls it last)."""
    files = {name: sha256_bytes(read_member(root, name, "the bundle")) for name in names}
    body = {
        "format_version": format_version,
        "files": dict(sorted(files.items())),
        "sha256": lock_digest(format_version, files),
    }
    (root / LOCK).write_text(json.dumps(body, indent=2) + "\n")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_format_version(version: Any, expected: int, source: str) -> None:
    """Refuse a bundle file of another format version (``source`` names the file)."""
    if version != expected or isinstance(version, bool):
        raise BundleError(
            f"{source}: format_version: bundle has version {version!r}, this adapt-robot reads "
            f"version {expected}; {REEXPORT} (or load it with the adapt-robot that wrote it)"
        )


def read_lock(root: Path, format_version: int, required: str) -> dict[str, str]:
    """``bundle.lock``'s ``name -> sha256`` entries, checked against its own digest.

    ``required`` is a file the lock must list (``manifest.yaml``). A missing lock means a bundle
    written before format 3 (or an export that did not finish).
    """
    path = root / LOCK
    if not path.exists() and not path.is_symlink():
        raise BundleError(
            f"{path}: missing; a bundle of format {format_version} carries {LOCK}, which export "
            f"writes last: this bundle was written by an older adapt-robot (format 2 or "
            f"before), or its export did not finish; {REEXPORT}"
        )
    raw = read_member(root, LOCK, "the bundle")
    try:
        body = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise BundleError(f"{path}: not the JSON index export writes ({err}); {REEXPORT}") from None
    if not isinstance(body, dict) or sorted(body) != sorted(_LOCK_KEYS):
        got = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise BundleError(f"{path}: expected the keys {sorted(_LOCK_KEYS)}, got {got}; {REEXPORT}")
    check_format_version(body["format_version"], format_version, str(path))
    files = body["files"]
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and PLAIN_NAME.match(k) and isinstance(v, str) and SHA256_HEX.match(v)
        for k, v in files.items()
    ):
        raise BundleError(
            f"{path}: files: expected a mapping of plain file names to hex sha256 digests; "
            f"{REEXPORT}"
        )
    if required not in files or LOCK in files:
        raise BundleError(f"{path}: files: expected {required} listed (and not {LOCK}); {REEXPORT}")
    digest = lock_digest(format_version, files)
    if body["sha256"] != digest:
        raise BundleError(
            f"{path}: sha256 {body['sha256']!r} is not the digest of its entries ({digest}): the "
            f"lock was edited after export; {REEXPORT}"
        )
    return dict(files)
