"""Entry point for ``adapt-robot export`` (its benchmark: :mod:`adapt_robot.bench.export_bench`)."""

from __future__ import annotations

import sys
from pathlib import Path

from adapt_robot.export.bundle import export_bundle


def export_main(run_dir: str, out: str, capacity: int | None, fp16: bool) -> Path:
    """Export ``run_dir`` to the bundle directory ``out``; prints a one-line summary to stderr."""
    from adapt_robot.runtime.bundle_format import load_manifest

    path = export_bundle(run_dir, out, capacity=capacity, fp16=fp16)
    manifest = load_manifest(path / "manifest.yaml")
    worst = ", ".join(f"{k} {v:.2g}" for k, v in manifest.parity.items())
    print(
        f"[export] {path}: family {manifest.family}, {len(manifest.files)} files, "
        f"capacity N={manifest.inner_loop.capacity}; parity (max rel. error) {worst}",
        file=sys.stderr,
        flush=True,
    )
    return path
