"""bundle.lock, strict and bounded reading, confined paths, params.npz checked before inflating."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from adapt_robot.runtime import Bundle, BundleError, OnlineAdapter
from adapt_robot.runtime.bundle_files import LOCK, MAX_DEPTH, lock_digest, size_limit
from adapt_robot.runtime.bundle_format import FORMAT_VERSION
from tests.runtime.conftest import read_manifest, rehash, relock, write_manifest

REEXPORT = "adapt-robot export RUN_DIR -o BUNDLE"


def refused(bundle: Path, *fragments: str) -> str:
    """Bundle.load raises a BundleError holding every fragment and the advice; returns it."""
    with pytest.raises(BundleError) as info:
        Bundle.load(bundle)
    message = str(info.value)
    for fragment in (*fragments, REEXPORT):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def write_raw_manifest(bundle: Path, text: str | bytes) -> None:
    """Replace manifest.yaml by ``text`` and lock it as it is (a bad export's manifest)."""
    path = bundle / "manifest.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    listed = json.loads((bundle / LOCK).read_text())["files"]
    relock(bundle, sorted(set(listed) - {"manifest.yaml"}))


# ------------------------------------------------------------------------------ bundle.lock
def test_export_writes_the_lock_over_the_manifest_and_every_file(point_bundle: Path) -> None:
    lock = json.loads((point_bundle / LOCK).read_text())
    assert sorted(lock) == ["files", "format_version", "sha256"]
    listed = read_manifest(point_bundle)["files"]
    assert set(lock["files"]) == {"manifest.yaml", *listed}
    assert all(lock["files"][k] == v for k, v in listed.items())


def test_a_manifest_edited_after_export_is_refused(point_bundle_copy: Path) -> None:
    path = point_bundle_copy / "manifest.yaml"
    text = path.read_text()
    path.write_text(text.replace("high:\n  - 1.0", "high:\n  - 6.0", 1) + "\n")
    refused(point_bundle_copy, "manifest.yaml", "does not match bundle.lock", "edited after export")


def test_a_bundle_without_a_lock_is_from_an_older_format(point_bundle_copy: Path) -> None:
    (point_bundle_copy / LOCK).unlink()
    refused(point_bundle_copy, "bundle.lock: missing", "format 2 or before")


def test_an_edited_lock_is_refused(point_bundle_copy: Path) -> None:
    path = point_bundle_copy / LOCK
    lock = json.loads(path.read_text())
    lock["files"]["params.npz"] = "0" * 64
    path.write_text(json.dumps(lock))
    refused(point_bundle_copy, "bundle.lock", "not the digest of its entries")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "not the JSON index"),
        ('{"format_version": 3, "format_version": 3}', "duplicate key"),
        ("[" * 60_000, "not the JSON index"),
        ('{"format_version": NaN, "files": {}, "sha256": ""}', "not the JSON index"),
        ('{"files": {}}', "expected the keys"),
        ('{"format_version": 2, "files": {}, "sha256": ""}', "bundle has version 2"),
        ('{"format_version": 4, "files": [], "sha256": ""}', "files: expected a mapping"),
        ('{"format_version": 4, "files": {"../x": "' + "0" * 64 + '"}, "sha256": ""}', "files"),
        ('{"format_version": 4, "files": {}, "sha256": ""}', "expected manifest.yaml listed"),
    ],
    ids=[
        "text",
        "duplicate",
        "deep",
        "nan",
        "keys",
        "version",
        "files_list",
        "escape",
        "no_manifest",
    ],
)
def test_a_malformed_lock_is_a_named_refusal(
    point_bundle_copy: Path, text: str, fragment: str
) -> None:
    (point_bundle_copy / LOCK).write_text(text)
    refused(point_bundle_copy, "bundle.lock", fragment)


def test_lock_and_manifest_must_list_the_same_files(point_bundle_copy: Path) -> None:
    relock(point_bundle_copy, ["params.npz", "policy.onnx"])  # adapt_step.onnx left out
    refused(point_bundle_copy, "files.adapt_step.onnx", "not written together")


# ------------------------------------------------------------------------------ strict YAML
def test_a_duplicate_key_is_refused_naming_it(point_bundle_copy: Path) -> None:
    text = (point_bundle_copy / "manifest.yaml").read_text()
    write_raw_manifest(point_bundle_copy, text + "family: door\n")
    refused(point_bundle_copy, "manifest.yaml", "not valid YAML", "'family' twice")


def test_anchors_and_aliases_are_refused(point_bundle_copy: Path) -> None:
    text = (point_bundle_copy / "manifest.yaml").read_text()
    text = text.replace("family: point", "family: &f point", 1) + "reward_note: *f\n"
    write_raw_manifest(point_bundle_copy, text)
    refused(point_bundle_copy, "manifest.yaml", "anchor or alias")


def test_an_alias_bomb_is_refused_quickly(point_bundle_copy: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    write_raw_manifest(point_bundle_copy, "\n".join(lines) + "\n")
    refused(point_bundle_copy, "manifest.yaml", "anchor or alias")


@pytest.mark.parametrize(
    ("depth", "fragment"),
    [(MAX_DEPTH + 1, f"nested deeper than {MAX_DEPTH}"), (50_000, "maximum nesting depth")],
)
def test_deep_nesting_is_refused_not_a_recursion_error(
    point_bundle_copy: Path, depth: int, fragment: str
) -> None:
    write_raw_manifest(point_bundle_copy, "a: " + "[" * depth + "]" * depth + "\n")
    refused(point_bundle_copy, "manifest.yaml", fragment)


def test_nesting_within_the_limit_is_read(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    data["training"]["deep"] = json.loads("[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2))
    write_manifest(point_bundle_copy, data)
    Bundle.load(point_bundle_copy)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_utf16_manifest_is_refused(point_bundle_copy: Path, encoding: str) -> None:
    text = (point_bundle_copy / "manifest.yaml").read_text()
    write_raw_manifest(point_bundle_copy, text.encode(encoding))
    refused(point_bundle_copy, "manifest.yaml", "not UTF-8 text")


def test_a_binary_manifest_is_refused(point_bundle_copy: Path) -> None:
    write_raw_manifest(point_bundle_copy, (point_bundle_copy / "params.npz").read_bytes())
    refused(point_bundle_copy, "manifest.yaml", "not UTF-8 text")


def test_control_characters_are_refused(point_bundle_copy: Path) -> None:
    write_raw_manifest(point_bundle_copy, "family: po\x00int\n")
    refused(point_bundle_copy, "manifest.yaml", "not valid YAML")


def test_an_oversized_manifest_is_refused_before_parsing(point_bundle_copy: Path) -> None:
    limit = size_limit("manifest.yaml")
    path = point_bundle_copy / "manifest.yaml"
    path.write_text(path.read_text() + "#" * limit + "\n")
    lock = json.loads((point_bundle_copy / LOCK).read_text())  # locked by hand: export's
    lock["files"]["manifest.yaml"] = hashlib.sha256(path.read_bytes()).hexdigest()  # own
    lock["sha256"] = lock_digest(FORMAT_VERSION, lock["files"])  # write_lock refuses it too
    (point_bundle_copy / LOCK).write_text(json.dumps(lock))
    refused(point_bundle_copy, "manifest.yaml", f"above the {limit}-byte limit")


@pytest.mark.parametrize(
    ("section", "value", "fragment"),
    [
        ("files", ["params.npz"], "files: expected a mapping, got list"),
        ("graphs", "policy.onnx", "graphs: expected a mapping, got str"),
        ("parameters", {"l0.w": 1}, "parameters: expected a list, got dict"),
        ("action", None, "action: expected a mapping, got NoneType"),
        ("inner_loop", [], "inner_loop: expected a mapping, got list"),
    ],
)
def test_a_wrong_typed_section_is_a_named_refusal(
    point_bundle_copy: Path, section: str, value: object, fragment: str
) -> None:
    data = read_manifest(point_bundle_copy)
    files = list(data["files"])
    data[section] = value
    (point_bundle_copy / "manifest.yaml").write_text(yaml.safe_dump(data))
    relock(point_bundle_copy, files)
    refused(point_bundle_copy, "manifest.yaml", fragment)


def test_a_top_level_list_is_refused(point_bundle_copy: Path) -> None:
    write_raw_manifest(point_bundle_copy, "- format_version: 3\n")
    refused(point_bundle_copy, "manifest.yaml", "expected a mapping at the top level")


# ------------------------------------------------------------------------------ confined paths
@pytest.mark.parametrize("name", ["../policy.onnx", "/etc/hostname", "sub/policy.onnx", ".."])
def test_file_entries_stay_inside_the_bundle(point_bundle_copy: Path, name: str) -> None:
    data = read_manifest(point_bundle_copy)
    data["graphs"]["policy"]["file"] = name
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "graphs.policy.file", "inside the bundle directory")


def test_a_symlink_out_of_the_bundle_is_refused(point_bundle_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(point_bundle_copy / "policy.onnx", outside)
    (point_bundle_copy / "policy.onnx").symlink_to(outside)
    refused(point_bundle_copy, "policy.onnx", "outside the bundle directory")


def test_a_symlink_within_the_bundle_is_harmless(point_bundle_copy: Path) -> None:
    shutil.move(point_bundle_copy / "policy.onnx", point_bundle_copy / "real_policy.onnx")
    (point_bundle_copy / "policy.onnx").symlink_to("real_policy.onnx")
    Bundle.load(point_bundle_copy)  # the same bytes, hashed: nothing to refuse


def test_a_bundle_directory_reached_through_a_symlink_loads(
    point_bundle_copy: Path, tmp_path: Path
) -> None:
    link = tmp_path / "current"
    link.symlink_to(point_bundle_copy)
    Bundle.load(link)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_blocking(point_bundle_copy: Path) -> None:
    (point_bundle_copy / "params.npz").unlink()
    os.mkfifo(point_bundle_copy / "params.npz")
    refused(point_bundle_copy, "params.npz", "not a regular file")


def test_a_missing_file_is_named(point_bundle_copy: Path) -> None:
    (point_bundle_copy / "policy.onnx").unlink()
    refused(point_bundle_copy, "policy.onnx: listed in manifest.yaml files but missing")


# ------------------------------------------------------------------------------ params.npz
def arrays_of(bundle: Path) -> dict[str, np.ndarray]:
    with np.load(bundle / "params.npz") as npz:
        return {k: npz[k] for k in npz.files}


def write_params(bundle: Path, data: bytes) -> None:
    (bundle / "params.npz").write_bytes(data)
    rehash(bundle)  # the hash made to match: only the reader's own checks are left


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.1])
def test_truncated_params_with_a_matching_hash_are_a_named_refusal(
    point_bundle_copy: Path, cut: float
) -> None:
    data = (point_bundle_copy / "params.npz").read_bytes()
    write_params(point_bundle_copy, data[: int(len(data) * cut)])
    refused(point_bundle_copy, "params.npz", "damaged")


def test_params_with_a_flipped_byte_and_matching_hash_are_refused(point_bundle_copy: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays_of(point_bundle_copy))
    data = bytearray(buf.getvalue())
    data[len(data) // 3] ^= 0xFF
    write_params(point_bundle_copy, bytes(data))
    refused(point_bundle_copy, "params.npz")


def test_an_inflating_array_is_refused_before_it_is_decompressed(point_bundle_copy: Path) -> None:
    """A member whose header matches the manifest but holds 64 MiB more: refused from its size."""
    arrays = arrays_of(point_bundle_copy)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, value)
                if key == "l0.w":
                    zeros = bytes(1 << 20)
                    for _ in range(64):
                        fh.write(zeros)
    write_params(point_bundle_copy, buf.getvalue())
    tracemalloc.start()
    try:
        refused(point_bundle_copy, "params.npz", "l0.w", "bytes once decompressed")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_a_header_claiming_a_huge_array_is_refused_from_the_header(
    point_bundle_copy: Path,
) -> None:
    arrays = arrays_of(point_bundle_copy)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w") as fh:
                if key == "l0.w":
                    header = {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)}
                    np.lib.format.write_array_header_1_0(fh, header)
                else:
                    np.lib.format.write_array(fh, value)
    write_params(point_bundle_copy, buf.getvalue())
    refused(point_bundle_copy, "params.npz", "l0.w: shape [268435456]", "manifest says")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda a: a.update(extra=np.zeros(2, "f4")), "extra: array not in the manifest"),
        (lambda a: a.pop("l1.b"), "l1.b: missing array"),
        (lambda a: a.update({"l1.b": a["l1.b"].astype("f8")}), "l1.b: shape"),
        (lambda a: a.update({"l1.b": a["l1.b"].astype(">f4")}), "dtype >f4"),
        (lambda a: a.update({"l0.w": np.asfortranarray(a["l0.w"])}), "Fortran order"),
    ],
    ids=["extra", "missing", "float64", "big_endian", "fortran"],
)
def test_params_keys_shapes_and_dtypes_are_checked(
    point_bundle_copy: Path, edit: object, fragment: str
) -> None:
    arrays = arrays_of(point_bundle_copy)
    edit(arrays)  # type: ignore[operator]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_params(point_bundle_copy, buf.getvalue())
    with pytest.raises(BundleError, match=r"params\.npz") as info:
        Bundle.load(point_bundle_copy)
    assert fragment in str(info.value)


def test_a_pickled_object_array_is_refused(point_bundle_copy: Path) -> None:
    arrays = arrays_of(point_bundle_copy)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w") as fh:
                obj = np.empty(value.shape, dtype=object) if key == "l1.b" else value
                np.lib.format.write_array(fh, obj, allow_pickle=True)
    write_params(point_bundle_copy, buf.getvalue())
    refused(point_bundle_copy, "params.npz", "l1.b")


def test_declared_parameters_beyond_the_memory_limit_are_refused(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    data["parameters"][0]["shape"] = [1 << 20, 1 << 10]
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "manifest.yaml", "parameters", "byte limit")


# ------------------------------------------------------------------------------ immutability
def test_a_loaded_bundle_keeps_the_graphs_it_verified(point_bundle_copy: Path) -> None:
    bundle = Bundle.load(point_bundle_copy)
    obs = np.array([0.3, -0.2], dtype=np.float32)
    before = OnlineAdapter(bundle, deterministic=True, auto_adapt=False).act(obs)
    for name in ("policy.onnx", "adapt_step.onnx"):  # replaced on disk after the load
        (point_bundle_copy / name).write_bytes(b"garbage")
    with OnlineAdapter(bundle, deterministic=True, auto_adapt=False) as adapter:
        np.testing.assert_array_equal(adapter.act(obs), before)
    refused(point_bundle_copy, "sha256", "changed or corrupted after export")  # a fresh load


# ------------------------------------------------------------------------------ graph metadata
@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("action", "high", [6.0, 6.0], "adapt_robot.action_high"),
        ("action", "low", [-0.5, -0.5], "adapt_robot.action_low"),
        ("action", "names", ["a", "b"], "adapt_robot.action_names"),
        ("observation", "names", ["x", "y"], "adapt_robot.obs_names"),
        ("policy", "adapt", "head", "adapt_robot.adapt"),
    ],
)
def test_graph_metadata_must_agree_with_the_manifest(
    point_bundle_copy: Path, section: str, key: str, value: object, fragment: str
) -> None:
    """Bounds widened (or anything else the graphs were built for changed) in a re-locked
    manifest: the graphs' own record says otherwise, and the bundle is refused."""
    data = read_manifest(point_bundle_copy)
    data[section][key] = value
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "policy.onnx", fragment, "belongs to another export")


def test_a_same_shaped_graph_from_another_export_is_refused_even_rehashed(
    point_run: Path, point_bundle_copy: Path, tmp_path: Path
) -> None:
    """Same run, family and spaces, another capacity: policy.onnx has the very same inputs and
    outputs, but its export id (and so the parameters it was built with) is another's."""
    from adapt_robot.export import export_bundle

    other = export_bundle(point_run, tmp_path / "other", capacity=7)
    ours = read_manifest(point_bundle_copy)["producer"]["export_id"]
    theirs = read_manifest(other)["producer"]["export_id"]
    assert ours != theirs and len(ours) == 32
    again = export_bundle(point_run, tmp_path / "again", capacity=ours_capacity(point_bundle_copy))
    assert read_manifest(again)["producer"]["export_id"] == ours  # same inputs, same id
    shutil.copy(other / "policy.onnx", point_bundle_copy / "policy.onnx")
    rehash(point_bundle_copy)
    refused(point_bundle_copy, "policy.onnx", "adapt_robot.export_id", "another export")


def test_a_manifest_normaliser_edited_and_relocked_is_refused(point_bundle_copy: Path) -> None:
    """The graphs bake the normaliser in; the device reads the manifest's (transition scales)."""
    data = read_manifest(point_bundle_copy)
    data["normalizer"]["var"] = [v * 4.0 for v in data["normalizer"]["var"]]
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "adapt_robot.normalizer_sha256", "normalizer", "another export")


def test_a_manifest_stripped_of_its_export_id_is_refused(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    del data["producer"]["export_id"]
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "adapt_robot.export_id", "no producer.export_id")


def ours_capacity(bundle: Path) -> int:
    capacity: int = read_manifest(bundle)["inner_loop"]["capacity"]
    return capacity


def test_a_graph_told_it_is_another_graph_is_refused(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    data["family"] = "door"
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "adapt_robot.family", "'point'", "'door'")


@pytest.mark.parametrize(
    "path",
    [("acceptance", "max_abs_reward"), ("acceptance", "loss_tolerance"), ("inner_loop", "loss")],
)
def test_fields_with_code_defaults_are_still_required_in_a_manifest(
    point_bundle_copy: Path, path: tuple[str, str]
) -> None:
    """Nothing on the device is re-derived from code defaults: export writes every field."""
    data = read_manifest(point_bundle_copy)
    del data[path[0]][path[1]]
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "manifest.yaml", f"{'.'.join(path)}: required key is missing")
