"""The manifest reader the runtime reuses: round trip, hashes, missing fields, versions."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from adapt_robot.runtime import bundle_format as bf
from tests.export.conftest import relock

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_round_trip(smoke_bundle: Path, tmp_path: Path) -> None:
    manifest = bf.load_manifest(smoke_bundle / bf.MANIFEST)
    bf.write_manifest(manifest, tmp_path / bf.MANIFEST)
    again = bf.load_manifest(tmp_path / bf.MANIFEST)
    assert again == manifest
    assert dataclasses.asdict(again) == yaml.safe_load((smoke_bundle / bf.MANIFEST).read_text())


def test_load_bundle_gives_params_in_training_order(smoke_bundle: Path) -> None:
    manifest, params = bf.load_bundle(smoke_bundle)
    names = [p.name for p in manifest.parameters]
    assert names == ["l0.w", "l0.b", "l1.w", "l1.b", "l2.w", "l2.b", "log_std"]
    assert list(params)[: len(names)] == names
    assert list(params)[len(names) :] == [bf.LR_PREFIX + n for n in manifest.adapted_names()]
    assert manifest.graphs["policy"].inputs == ["obs", *names]
    assert all(v.dtype == np.float32 for v in params.values())


@pytest.mark.parametrize(
    "name", ["policy.onnx", "adapt_step.onnx", "params.npz", "policy_fp16.onnx"]
)
def test_changed_byte_is_detected(bundle_copy: Path, name: str) -> None:
    path = bundle_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(bf.BundleError, match=rf"{name}: sha256 .* files\.{name}"):
        bf.load_bundle(bundle_copy)


def test_missing_file_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "adapt_step.onnx").unlink()
    with pytest.raises(bf.BundleError, match=r"adapt_step\.onnx: listed in manifest\.yaml"):
        bf.load_bundle(bundle_copy)


def _edit(bundle: Path, edit: object) -> None:
    path = bundle / bf.MANIFEST
    data = yaml.safe_load(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    relock(bundle, data)


@pytest.mark.parametrize(
    ("remove", "field"),
    [
        (("family",), "family"),
        (("inner_loop", "capacity"), "inner_loop.capacity"),
        (("normalizer", "mean"), "normalizer.mean"),
        (("graphs", "adapt_step", "outputs"), "graphs.adapt_step.outputs"),
    ],
)
def test_missing_field_names_file_and_field(
    bundle_copy: Path, remove: tuple[str, ...], field: str
) -> None:
    def drop(data: dict) -> None:
        for key in remove[:-1]:
            data = data[key]
        del data[remove[-1]]

    _edit(bundle_copy, drop)
    with pytest.raises(bf.BundleError, match=rf"manifest\.yaml: {field}: required key is missing"):
        bf.load_bundle(bundle_copy)


def test_missing_parameter_field_is_indexed(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda d: d["parameters"][2].pop("shape"))
    with pytest.raises(bf.BundleError, match=r"parameters\[2\]\.shape: required key is missing"):
        bf.load_bundle(bundle_copy)


@pytest.mark.parametrize("version", [bf.FORMAT_VERSION + 1, 1, 0, "2", True])
def test_other_format_version_is_refused_saying_how_to_re_export(
    bundle_copy: Path, version: object
) -> None:
    _edit(bundle_copy, lambda d: d.update(format_version=version))
    with pytest.raises(
        bf.BundleError, match=r"manifest\.yaml: format_version: bundle has version"
    ) as e:
        bf.load_bundle(bundle_copy)
    assert "adapt-robot export RUN_DIR -o BUNDLE" in str(e.value)


def test_shape_mismatch_names_array(bundle_copy: Path) -> None:
    def wrong(d: dict) -> None:
        d["parameters"][0]["shape"] = [3, 3]

    _edit(bundle_copy, wrong)
    with pytest.raises(bf.BundleError, match=r"params\.npz: l0\.w: shape \[32, 2\].*\[3, 3\]"):
        bf.load_bundle(bundle_copy)


def test_unknown_field_is_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda d: d["inner_loop"].update(surprise=1))
    with pytest.raises(bf.BundleError, match=r"inner_loop\.surprise: unknown key"):
        bf.load_bundle(bundle_copy)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level packages ``path`` imports, and the ``adapt_robot`` modules among them."""
    tree = ast.parse(path.read_text())
    roots, ours = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
            if node.module.startswith("adapt_robot"):
                ours.add(node.module)
    return roots, ours


STDLIB = {"__future__", "dataclasses", "hashlib", "collections", "math", "pathlib", "re", "typing"}


def test_reader_imports_numpy_and_yaml_only() -> None:
    runtime = ROOT / "adapt_robot" / "runtime"
    roots, ours = _imports(runtime / "bundle_format.py")
    assert roots <= {*STDLIB, "json", "numpy", "yaml", "adapt_robot"}
    # The launch-file validator, the shared limits, the acceptance settings, the bounded file
    # reader and the project's error types: torch-free.
    assert ours == {
        "adapt_robot.config",
        "adapt_robot.errors",
        "adapt_robot.limits",
        "adapt_robot.runtime.bundle_files",
        "adapt_robot.runtime.safety",
    }
    roots, ours = _imports(runtime / "bundle_files.py")
    files_stdlib = {"io", "json", "os", "stat", "zipfile", "zlib"}
    assert roots <= {*STDLIB, *files_stdlib, "numpy", "yaml", "adapt_robot"}
    assert ours == {"adapt_robot.config", "adapt_robot.errors"}


def test_reader_loads_a_bundle_without_torch_or_onnx(smoke_bundle: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "from adapt_robot.runtime.bundle_format import load_bundle\n"
        f"m, p = load_bundle({str(smoke_bundle)!r}); print(m.family, len(p))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["point", "14"]
