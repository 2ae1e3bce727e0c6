from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from adapt_robot.config import (
    ConfigError,
    FieldError,
    apply_overrides,
    build,
    check_fields,
    dump,
    load,
    load_yaml,
    setting,
)


@dataclass(frozen=True, kw_only=True)
class Inner:
    lr: float = setting(0.1, doc="step size", gt=0)
    steps: int = setting(1, doc="steps", ge=1, le=3)


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = setting(doc="a name")
    algo: Literal["maml", "reptile"] = setting("maml", doc="algorithm")
    inner: Inner = setting(Inner(), doc="inner loop")
    engines: tuple[str, ...] = setting(("mujoco",), doc="engines")
    seed: int | None = setting(None, doc="seed")


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


def test_valid_file_with_overrides(tmp_path: Path) -> None:
    p = write(tmp_path, "name: a\ninner:\n  lr: 0.5\n")
    cfg = load(Outer, p, ["inner.steps=3", "engines=[mujoco, pybullet]", "seed=4"])
    assert cfg == Outer(
        name="a", inner=Inner(lr=0.5, steps=3), engines=("mujoco", "pybullet"), seed=4
    )
    with pytest.raises(FrozenInstanceError):
        cfg.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("name: a\ninner:\n  lr: fast\n", [], r"inner\.lr: expected a number, got str 'fast'"),
        ("name: a\ninner:\n  lr: -1\n", [], r"inner\.lr: expected a value > 0, got -1"),
        ("name: a\n", ["inner.steps=4"], r"inner\.steps: expected a value <= 3, got 4"),
        ("name: a\n", ["inner.steps=1.5"], r"inner\.steps: expected an integer, got float"),
        ("name: a\nalgo: promp\n", [], r"algo: expected one of \['maml', 'reptile'\]"),
        ("name: a\ninner:\n  lrr: 1\n", [], r"inner\.lrr: unknown key"),
        ("inner: {}\n", [], r"name: required key is missing"),
        ("name: a\nengines: mujoco\n", [], r"engines: expected a list"),
        ("name: a\ninner: 3\n", [], r"inner: expected a mapping"),
    ],
)
def test_bad_values_name_the_key_path(
    tmp_path: Path, text: str, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load(Outer, write(tmp_path, text), overrides)
    assert str(tmp_path / "job.yaml") in str(err.value)


def test_malformed_override() -> None:
    from adapt_robot.config import apply_overrides

    with pytest.raises(ConfigError, match=r"--set 'inner': expected key\.path=value"):
        apply_overrides({}, ["inner"])
    with pytest.raises(ConfigError, match=r"--set name\.x: name is not a mapping"):
        apply_overrides({"name": "a"}, ["name.x=1"])


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="no such launch file"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_yaml(write(tmp_path, "- a\n- b\n"))


def test_dump_round_trip(tmp_path: Path) -> None:
    cfg = Outer(name="x", engines=("a", "b"))
    dump(cfg, tmp_path / "resolved.yaml")
    assert build(Outer, load_yaml(tmp_path / "resolved.yaml")) == cfg


def test_launch_files_in_repo_are_valid() -> None:
    from adapt_robot.jobs.experts import ExpertsConfig

    root = Path(__file__).resolve().parents[2]
    assert load(ExpertsConfig, root / "launch" / "experts.yaml").tasks_per_split >= 1


def test_scientific_notation_is_a_number_in_files_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("a: 1e-9\nb: 2.5E+3\nc: 1e\n")
    data = apply_overrides(load_yaml(f), ["d=-3e2"])
    assert data == {"a": 1e-9, "b": 2500.0, "c": "1e", "d": -300.0}


@dataclass(frozen=True, kw_only=True)
class Space:
    dim: int = setting(doc="entries", ge=1)
    low: list[float] = setting(doc="lower bounds", allow_inf=True)
    high: list[float] = setting(doc="upper bounds", allow_inf=True)
    extra: dict[str, Any] | None = setting(None, doc="free-form")

    def __post_init__(self) -> None:
        for i, (lo, hi) in enumerate(zip(self.low, self.high, strict=True)):
            if not lo <= hi:
                raise FieldError(f"low[{i}]", f"expected low <= high, got {lo} > {hi}")


def test_lists_dicts_inf_and_field_relations_are_checked_with_the_key_path() -> None:
    ok = build(Space, {"dim": 2, "low": [-math.inf, 0], "high": [math.inf, 1]}, "obs")
    assert ok.low == [-math.inf, 0.0] and isinstance(ok.low[1], float)
    cases = [
        ({"dim": 2, "low": [0, "a"], "high": [1, 1]}, r"obs\.low\[1\]: expected a number"),
        ({"dim": 2, "low": [math.nan], "high": [1]}, r"obs\.low\[0\]: expected a finite number"),
        ({"dim": 0, "low": [], "high": []}, r"obs\.dim: expected a value >= 1, got 0"),
        ({"dim": 1, "low": [2.0], "high": [1.0]}, r"obs\.low\[0\]: expected low <= high"),
        ({"dim": 1, "low": 0.0, "high": [1.0]}, r"obs\.low: expected a list, got float"),
    ]
    for data, message in cases:
        with pytest.raises(ConfigError, match=message):
            build(Space, data, "obs")


@dataclass(frozen=True, kw_only=True)
class Limits:
    bound: float = setting(1.0, doc="a bound", gt=0, allow_inf=True)
    tags: dict[str, float] | None = setting(None, doc="numbers by name")

    def __post_init__(self) -> None:
        check_fields(self)


def test_check_fields_holds_code_built_configs_to_the_file_bounds() -> None:
    assert Limits(bound=math.inf).bound == math.inf
    with pytest.raises(FieldError, match=r"^bound: expected a value > 0, got -1"):
        Limits(bound=-1)
    with pytest.raises(ConfigError, match=r"lim\.tags\.a: expected a number, got str 'x'"):
        build(Limits, {"tags": {"a": "x"}}, "lim")
    with pytest.raises(ConfigError, match=r"lim\.bound: expected a finite number, got nan"):
        build(Limits, {"bound": math.nan}, "lim")


def test_a_duplicate_key_is_an_error_naming_it_and_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\nalgo:\n  inner_lr: 0.1\n  inner_lr: 0.5\n")
    with pytest.raises(
        ConfigError, match=r"(?s)not valid YAML.*'inner_lr' twice \(first on line 3"
    ):
        load_yaml(path)
    path.write_text("algo: {inner_lr: 0.1}\nother: {inner_lr: 0.5}\n")  # other mappings: fine
    assert load_yaml(path) == {"algo": {"inner_lr": 0.1}, "other": {"inner_lr": 0.5}}
