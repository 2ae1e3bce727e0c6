"""The scoreboard launch config refuses bad arms, naming the key path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from adapt_robot.config import ConfigError
from adapt_robot.scoreboard.arms import ARM_TYPES
from adapt_robot.scoreboard.arms.bundle import BundleSpec
from adapt_robot.scoreboard.config import build_scoreboard_config, load_scoreboard_config
from tests.scoreboard.conftest import smoke_data, write_launch

REFS: list[dict[str, Any]] = [
    {"name": "oracle", "kind": "oracle", "type": "expert"},
    {"name": "robust", "kind": "robust", "type": "fixed_expert", "candidates": 2},
]


def _data(*arms: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"family": "point", "engines": ["numpy"], "arms": [*copy.deepcopy(REFS), *arms], **top}


def test_reference_arms_alone_validate() -> None:
    cfg = build_scoreboard_config(_data(tasks=3))
    assert [a.name for a in cfg.arms] == ["oracle", "robust"]
    assert cfg.settings().post_episodes == 3
    assert cfg.arms[1].candidates == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ({"name": "x", "kind": "oracle", "type": "magic"}, r"arms\[2\]\.type: expected one of"),
        ({"name": "x", "kind": "robust", "type": "expert"}, r"arms\[2\]\.kind: a expert arm"),
        (
            {"name": "x", "kind": "oracle", "type": "expert", "batchh": 2},
            r"arms\[2\]\.batchh: unknown",
        ),
        (
            {"name": "x", "kind": "oracle", "type": "expert", "batch": 0},
            r"arms\[2\]\.batch: expected",
        ),
        ({"name": "x", "kind": "best", "type": "expert"}, r"arms\[2\]\.kind: expected one of"),
        ({"name": "oracle", "kind": "oracle", "type": "expert"}, r"arms\[2\]\.name: 'oracle' is"),
        ({"kind": "oracle", "type": "expert"}, r"arms\[2\]\.name: required key is missing"),
        (
            {"name": "b", "kind": "adaptive", "type": "bundle", "bundle": "/nonexistent/b"},
            r"arms\[2\]\.bundle: /nonexistent/b: not a bundle directory",
        ),
        ("expert", r"arms\[2\]: expected a mapping"),
    ],
)
def test_bad_arms_are_refused_with_their_key_path(arm: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_scoreboard_config(_data(arm))


def test_the_references_are_required() -> None:
    data = _data()
    data["arms"] = data["arms"][:1]
    with pytest.raises(ConfigError, match="arms: no robust arm"):
        build_scoreboard_config(data)
    with pytest.raises(ConfigError, match="arms: expected a list"):
        build_scoreboard_config({"family": "point", "engines": ["numpy"]})


def test_an_engine_the_family_lacks_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"engines\[0\]: family 'point' runs in \['numpy'\]"):
        build_scoreboard_config(_data(engines=["mujoco"]))


def test_launch_file_errors_name_the_file(tmp_path: Path) -> None:
    path = write_launch(tmp_path / "sb.yaml", _data())
    with pytest.raises(ConfigError, match=r"sb\.yaml: tasks: expected a value >= 1"):
        load_scoreboard_config(path, ["tasks=0"])


def test_bundle_kind_must_match_adapt(point_bundle_3ep: Path) -> None:
    arm = {"name": "b", "kind": "adaptive", "type": "bundle", "bundle": str(point_bundle_3ep)}
    build_scoreboard_config(_data(arm))
    with pytest.raises(ConfigError, match=r"arms\[2\]\.kind: a bundle arm with adapt: false"):
        build_scoreboard_config(_data({**arm, "adapt": False}))
    with pytest.raises(ConfigError, match=r"arms\[2\]\.stages: expected distinct names"):
        build_scoreboard_config(_data({**arm, "stages": ["before", "after_9"]}))


def test_a_batch_too_small_for_after_3_is_refused(point_bundle: Path) -> None:
    # The session's point bundle holds 2 episodes of 20 steps (capacity 40).
    arm = {"name": "b", "kind": "adaptive", "type": "bundle", "bundle": str(point_bundle)}
    with pytest.raises(ConfigError, match=r"arms\[2\]\.stages: after_3 adapts on 3 episode") as err:
        build_scoreboard_config(_data(arm))
    assert "capacity 40" in str(err.value) and "--capacity 60" in str(err.value)
    build_scoreboard_config(_data({**arm, "stages": ["before", "after_1", "after_2"]}))


@pytest.mark.slow  # trains and exports a grasp bundle
def test_a_bundle_of_another_family_is_refused(grasp_bundle: Path) -> None:
    arm = {"name": "b", "kind": "robust", "type": "bundle", "bundle": str(grasp_bundle)}
    with pytest.raises(ConfigError, match=r"arms\[2\]\.bundle: .* holds a 'grasp' policy"):
        build_scoreboard_config(_data({**arm, "adapt": False}))


def test_smoke_launch_file_validates(point_bundle_3ep: Path, tmp_path: Path) -> None:
    path = write_launch(tmp_path / "smoke.yaml", smoke_data(point_bundle_3ep))
    cfg = load_scoreboard_config(path)
    assert {a.kind for a in cfg.arms} == {"oracle", "robust", "adaptive"}
    assert all(a.type in ARM_TYPES for a in cfg.arms)
    assert isinstance(cfg.arms[2], BundleSpec)


def test_only_scores_the_named_arms_and_skips_validating_the_rest() -> None:
    missing = {"name": "b", "kind": "adaptive", "type": "bundle", "bundle": "/nonexistent/b"}
    cfg = build_scoreboard_config(_data(missing, only=["robust", "oracle"]))
    assert [a.name for a in cfg.arms] == ["oracle", "robust"]  # the file's order


@pytest.mark.parametrize(
    ("only", "message"),
    [
        (["oracle", "nope"], r"only: no arm named \[.nope.\] in arms \(names: \[.oracle."),
        (["oracle"], r"arms: no robust arm"),
    ],
)
def test_only_refuses_unknown_names_and_a_board_without_references(
    only: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_scoreboard_config(_data(only=only))


@pytest.mark.parametrize(
    "path", sorted(Path(__file__).resolve().parents[2].glob("launch/scoreboard_*.yaml")), ids=str
)
def test_committed_scoreboards_validate_without_their_bundles(path: Path) -> None:
    """Every committed board: its reference arms validate, and every bundle arm's options are
    known keys of the right types (its bundle is trained by the commands in the file)."""
    import yaml

    from adapt_robot.config import build

    arms = yaml.safe_load(path.read_text())["arms"]
    refs = [a["name"] for a in arms if a["type"] != "bundle"]
    cfg = load_scoreboard_config(path, [f"only=[{', '.join(refs)}]"])
    assert [a.name for a in cfg.arms] == refs
    for i, arm in enumerate(a for a in arms if a["type"] == "bundle"):
        assert isinstance(build(BundleSpec, dict(arm), f"arms[{i}]"), BundleSpec)
