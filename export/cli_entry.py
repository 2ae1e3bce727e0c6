"""Entry point for ``adapt-robot export`` (its benchmark: :mod:`adapt_robot.bench.export_bench`)."""

from __future__ import annotations

import sys
from pathlib import Path

from adapt_robot.export.bundle import export_bundle


def export_main(
    run_dir: str, out: str, capacity: int | None, fp16: bool, sign_key: str | None = None
) -> Path:
    """Export ``run_dir`` to the bundle directory ``out``; prints a one-line summary to stderr.

    ``sign_key``: a key file; the bundle then carries ``bundle.sig``.
    """
    from adapt_robot.runtime.bundle_format import load_manifest
    from adapt_robot.runtime.signing import read_key

    key = None if sign_key is None else read_key(sign_key)
    path = export_bundle(run_dir, out, capacity=capacity, fp16=fp16, sign_key=key)
    manifest = load_manifest(path / "manifest.yaml")
    worst = ", ".join(f"{k} {v:.2g}" for k, v in manifest.parity.items())
    print(
        f"[export] {path}: family {manifest.family}, {len(manifest.files)} files, "
        f"capacity N={manifest.inner_loop.capacity}; parity (max rel. error) {worst}"
        + ("; signed (bundle.sig)" if key is not None else ""),
        file=sys.stderr,
        flush=True,
    )
    return path
