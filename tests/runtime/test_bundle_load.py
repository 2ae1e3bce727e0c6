"""Bundle.load: a good bundle loads read-only; every kind of damage is refused, naming where."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.runtime import Bundle, BundleError
from adapt_robot.runtime.bundle_format import FORMAT_VERSION
from tests.runtime.conftest import edit_params, read_manifest, rehash, write_manifest


def refused(bundle: Path, *fragments: str) -> str:
    """Bundle.load raises a BundleError whose message holds every fragment; returns it."""
    with pytest.raises(BundleError) as info:
        Bundle.load(bundle)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_good_bundle_loads_with_read_only_parameters(point_bundle: Path) -> None:
    b = Bundle.load(point_bundle)
    m = b.manifest
    assert list(b.params) == [p.name for p in m.parameters]
    assert list(b.lrs) == m.adapted_names()
    for spec in m.parameters:
        assert b.params[spec.name].shape == tuple(spec.shape)
        assert b.params[spec.name].dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        b.params["log_std"][0] = 1.0
    with pytest.raises(TypeError):
        b.params["log_std"] = np.zeros(2, dtype=np.float32)  # type: ignore[index]
    assert not b.has_reward
    assert b.graph_path("policy") == point_bundle / "policy.onnx"
    assert "family='point'" in repr(b)


def test_bundle_with_reward_graph(grasp_bundle: Path) -> None:
    b = Bundle.load(grasp_bundle)
    assert b.has_reward and b.manifest.observation_reward


def test_truncated_onnx_is_caught_by_its_hash(point_bundle_copy: Path) -> None:
    path = point_bundle_copy / "policy.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(point_bundle_copy, str(path), "sha256", "files.policy.onnx")


def test_truncated_onnx_with_matching_hash_fails_to_load_clearly(point_bundle_copy: Path) -> None:
    path = point_bundle_copy / "adapt_step.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    rehash(point_bundle_copy)  # as if the manifest had been written after the damage
    refused(point_bundle_copy, str(path), "ONNX Runtime cannot load the graph", "Re-export")


def test_altered_byte_is_caught_by_its_hash(point_bundle_copy: Path) -> None:
    path = point_bundle_copy / "adapt_step.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    refused(point_bundle_copy, str(path), "does not match manifest.yaml files.adapt_step.onnx")


def test_manifest_missing_a_key(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    del data["inner_loop"]["capacity"]
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "manifest.yaml", "inner_loop.capacity: required key is missing")


def test_shape_mismatch_in_params_npz(point_bundle_copy: Path) -> None:
    def widen(arrays: dict[str, np.ndarray]) -> None:
        arrays["l0.w"] = np.zeros((arrays["l0.w"].shape[0] + 1, arrays["l0.w"].shape[1]), "f4")

    edit_params(point_bundle_copy, widen)
    refused(point_bundle_copy, "params.npz", "l0.w", "manifest says")


def test_non_finite_parameter_is_refused(point_bundle_copy: Path) -> None:
    def poison(arrays: dict[str, np.ndarray]) -> None:
        arrays["l1.b"] = arrays["l1.b"].copy()
        arrays["l1.b"][0] = np.nan

    edit_params(point_bundle_copy, poison)
    refused(point_bundle_copy, "params.npz", "l1.b", "NaN or inf")


def test_format_version_from_the_future(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    data["format_version"] = FORMAT_VERSION + 1
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "manifest.yaml", "format_version", f"version {FORMAT_VERSION + 1}")


def test_version_1_bundle_is_refused_with_how_to_re_export_it(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    data["format_version"] = 1  # a version-1 manifest: lr_summary, no acceptance section
    data["inner_loop"]["lr_summary"] = {"l0.w": 0.1}
    del data["acceptance"]
    write_manifest(point_bundle_copy, data)
    refused(
        point_bundle_copy,
        "manifest.yaml: format_version: bundle has version 1, this adapt-robot reads version "
        f"{FORMAT_VERSION}",
        "adapt-robot export RUN_DIR -o BUNDLE",
    )


def test_acceptance_settings_of_the_manifest_are_the_adapters_default(
    point_bundle_copy: Path,
) -> None:
    from adapt_robot.runtime import OnlineAdapter, SafetyConfig

    data = read_manifest(point_bundle_copy)
    data["acceptance"].update(max_update_norm=0.5, reject_loss_increase=False, max_abs_reward=7.0)
    write_manifest(point_bundle_copy, data)
    b = Bundle.load(point_bundle_copy)
    assert b.safety == SafetyConfig(
        max_update_norm=0.5, reject_loss_increase=False, max_abs_reward=7.0
    )
    with OnlineAdapter(b, auto_adapt=False) as adapter:
        assert adapter.safety == b.safety and adapter._inner.safety == b.safety
    mine = SafetyConfig(max_update_norm=2.0, fault_action="hold")
    with OnlineAdapter(b, safety=mine, auto_adapt=False) as adapter:
        assert adapter.safety is mine  # a caller's config still wins


def test_lr_summary_is_derived_from_params_npz(point_bundle: Path) -> None:
    b = Bundle.load(point_bundle)
    assert list(b.lr_summary) == b.manifest.adapted_names()
    for name, mean in b.lr_summary.items():
        assert mean == pytest.approx(float(np.mean(b.lrs[name])))
    assert b.lr_summary["l0.w"] == pytest.approx(0.1, rel=1e-5)  # launch/smoke.yaml inner_lr


def test_graph_shape_must_match_manifest_capacity(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    capacity = data["inner_loop"]["capacity"]
    data["inner_loop"]["capacity"] = capacity - 1
    write_manifest(point_bundle_copy, data)
    message = refused(point_bundle_copy, "adapt_step.onnx", "input obs", "inner_loop.capacity")
    assert re.search(rf"\[{capacity - 1}, \d+\]", message)


def test_manifest_graph_io_names_must_follow_the_parameters(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    inputs = data["graphs"]["policy"]["inputs"]
    inputs[1], inputs[2] = inputs[2], inputs[1]
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "manifest.yaml", "graphs.policy.inputs")


def test_graph_file_that_belongs_to_another_graph(point_bundle_copy: Path) -> None:
    shutil.copyfile(point_bundle_copy / "adapt_step.onnx", point_bundle_copy / "policy.onnx")
    rehash(point_bundle_copy)
    refused(point_bundle_copy, "policy.onnx", "inputs", "does not belong to this manifest")


def test_observation_reward_bundle_needs_reward_graph(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    data["observation_reward"] = True
    write_manifest(point_bundle_copy, data)
    refused(point_bundle_copy, "manifest.yaml", "graphs.reward: missing field")


def test_not_a_directory(tmp_path: Path) -> None:
    refused(tmp_path / "nope", "not a bundle directory")
