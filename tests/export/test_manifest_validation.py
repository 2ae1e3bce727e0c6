"""The manifest goes through the launch files' validator: wrong types and ranges are refused at
load, naming the file, the field, what was expected and what to do."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapt_robot.runtime import bundle_format as bf
from adapt_robot.runtime.safety import AcceptanceConfig
from tests.export.conftest import relock


def _set(*keys: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def _del(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return edit


CASES = [
    (
        _set("inner_loop", "capacity", value="96"),
        r"inner_loop\.capacity: expected an integer, got str '96'",
    ),
    (
        _set("inner_loop", "capacity", value=0),
        r"inner_loop\.capacity: expected a value >= 1, got 0",
    ),
    (_set("inner_loop", "steps", value=4), r"inner_loop\.steps: expected a value <= 3, got 4"),
    (_set("inner_loop", "steps", value=0), r"inner_loop\.steps: expected a value >= 1, got 0"),
    (_set("inner_loop", "episodes", value=0), r"inner_loop\.episodes: expected a value >= 1"),
    (_set("inner_loop", "gamma", value=1.5), r"inner_loop\.gamma: expected a value <= 1, got 1\.5"),
    (_set("inner_loop", "gamma", value=-0.1), r"inner_loop\.gamma: expected a value >= 0"),
    (
        _set("inner_loop", "lr_mode", value="adam"),
        r"inner_loop\.lr_mode: expected one of \['scalar', 'per_parameter'\], got 'adam'",
    ),
    (
        _set("inner_loop", "baseline", value="mlp"),
        r"inner_loop\.baseline: expected one of \['linear', 'none'\]",
    ),
    (
        _set("inner_loop", "normalize_adv", value="yes"),
        r"inner_loop\.normalize_adv: expected true or false",
    ),
    (_set("inner_loop", "lr_summary", value={"l0.w": 0.1}), r"inner_loop\.lr_summary: unknown key"),
    (
        _set("action", "low", 0, value=-math.inf),
        r"action\.low\[0\]: expected a finite number, got -inf",
    ),
    (
        _set("action", "low", 0, value=1.0),
        r"action\.low\[0\]: expected finite bounds with low < high, got \[1\.0, 1\.0\]",
    ),
    (_set("action", "high", value=[1.0]), r"action\.high: expected dim = 2 entries, got 1"),
    (
        _set("observation", "names", value=["x"]),
        r"observation\.names: expected dim = 2 entries, got 1",
    ),
    (
        _set("observation", "low", 0, value=math.nan),
        r"observation\.low\[0\]: expected a finite number, got nan",
    ),
    (
        _set("normalizer", "var", 1, value=-1.0),
        r"normalizer\.var\[1\]: expected a value >= 0, got -1\.0",
    ),
    (
        lambda d: d["normalizer"].update(mean=[0.0], var=[1.0]),
        r"normalizer\.mean: expected observation\.dim = 2 entries, got 1",
    ),
    (
        _set("policy", "activation", value="gelu"),
        r"policy\.activation: expected one of \['tanh', 'relu'\]",
    ),
    (
        _set("parameters", 0, "dtype", value="float64"),
        r"parameters\[0\]\.dtype: expected one of \['float32'\]",
    ),
    (
        _set("parameters", 0, "shape", 0, value=0),
        r"parameters\[0\]\.shape\[0\]: expected a dimension >= 1",
    ),
    (
        _set("graphs", "policy", "file", value="../policy.onnx"),
        r"graphs\.policy\.file: expected a file name inside the bundle directory",
    ),
    (
        _set("acceptance", "max_update_norm", value=-1.0),
        r"acceptance\.max_update_norm: expected a value > 0, got -1\.0",
    ),
    (
        _set("acceptance", "reject_loss_increase", value=1),
        r"acceptance\.reject_loss_increase: expected true or false",
    ),
    (_del("acceptance"), r"acceptance: required key is missing"),
    (_set("files", "params.npz", value="abc"), r"files\.params\.npz: expected a hex sha256"),
    (_set("training", value=[]), r"training: expected a mapping, got list"),
]


@pytest.mark.parametrize(
    ("edit", "message"), CASES, ids=[c[1].split(":")[0].replace("\\", "") for c in CASES]
)
def test_bad_manifest_field_names_file_field_and_the_fix(
    bundle_copy: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = bundle_copy / bf.MANIFEST
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    relock(bundle_copy, data)
    with pytest.raises(bf.BundleError, match=rf"{path}: {message}") as info:
        bf.load_bundle(bundle_copy)
    assert "adapt-robot export RUN_DIR -o BUNDLE" in str(info.value)


def test_unbounded_limits_are_written_as_yaml_inf_and_read_back(bundle_copy: Path) -> None:
    path = bundle_copy / bf.MANIFEST
    data = yaml.safe_load(path.read_text())
    data["acceptance"]["max_update_norm"] = math.inf
    data["acceptance"]["max_abs_reward"] = math.inf
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert ".inf" in path.read_text()
    acc = bf.load_manifest(path).acceptance
    assert acc.max_update_norm == math.inf and acc.max_abs_reward == math.inf


def test_export_writes_the_acceptance_rule_and_no_second_copy_of_the_rates(
    smoke_bundle: Path,
) -> None:
    data = yaml.safe_load((smoke_bundle / bf.MANIFEST).read_text())
    assert data["format_version"] == bf.FORMAT_VERSION == 4
    assert (smoke_bundle / "bundle.lock").is_file()
    assert data["acceptance"] == {
        "max_update_norm": 10.0,
        "reject_loss_increase": True,
        "loss_tolerance": 1e-3,
        "max_abs_reward": 1e6,
    }
    assert bf.load_manifest(smoke_bundle / bf.MANIFEST).acceptance == AcceptanceConfig()
    assert "lr_summary" not in data["inner_loop"]
