"""YAML launch files parsed into frozen dataclasses, with errors that name the key path.

Every job has one frozen, keyword-only dataclass config. Fields may declare bounds and choices
with :func:`setting`; ``--set key.path=value`` overrides are applied to the raw mapping before
validation, so an override is checked exactly like the file. Unknown keys are errors.

:func:`build` is the one validator of the project's structured files: launch files and the
bundle manifest (``adapt_robot.runtime.bundle_format``) both go through it. It imports only
the standard library and PyYAML, so the on-device runtime can use it. Besides field types and
:func:`setting` / :func:`bounds` bounds, a dataclass may check relations between its fields
in ``__post_init__`` by raising :class:`FieldError`; :func:`build` prefixes the key path.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from adapt_robot.errors import AdaptRobotError

T = TypeVar("T")


class ConfigError(AdaptRobotError, ValueError):
    """A launch file or override is invalid; the message names the key path and the reason."""


class FieldError(ConfigError):
    """A field of a constructed dataclass is invalid (raised by its ``__post_init__``).

    :func:`build` turns it into a :class:`ConfigError` whose message starts with the full key
    path (``action.low``), so a relation between fields is reported like any bad value.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        """The field (relative to the dataclass raising it; may itself be dotted)."""
        self.reason = reason
        """What is wrong and what was expected."""


def _bounds(
    gt: float | None, ge: float | None, le: float | None, lt: float | None, allow_inf: bool
) -> dict[str, Any]:
    return {"gt": gt, "ge": ge, "le": le, "lt": lt, "allow_inf": allow_inf}


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    allow_inf: bool = False,
) -> Any:
    """A config field with documentation and numeric bounds checked on load.

    ``allow_inf`` admits ``.inf`` / ``-.inf`` for a float field (never NaN); numbers are
    otherwise required to be finite.
    """
    meta = {"doc": doc, **_bounds(gt, ge, le, lt, allow_inf)}
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or a dataclass for container defaults")
    return dataclasses.field(default=default, metadata=meta)


def bounds(
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    allow_inf: bool = False,
) -> dict[str, Any]:
    """Field metadata declaring bounds, for dataclasses documented by attribute docstrings.

    ``field(metadata=bounds(ge=1))`` is checked by :func:`build` and :func:`check_fields`
    exactly like :func:`setting`'s bounds (the bundle manifest's dataclasses use it).
    """
    return _bounds(gt, ge, le, lt, allow_inf)


def check_fields(obj: Any) -> None:
    """Check the declared bounds of every field of a constructed dataclass ``obj``.

    For ``__post_init__`` of configs that are also built directly in code: the values are
    held to the same bounds as a file. Raises :class:`FieldError` naming the field.
    """
    for f in dataclasses.fields(obj):
        reason = _bound_error(f, getattr(obj, f.name))
        if reason is not None:
            raise FieldError(f.name, reason)


try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: the pure-Python loader, slower
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _Loader(_SafeLoader):
    """PyYAML's safe loader (the C one where installed), YAML 1.2 floats, no duplicate keys.

    ``1e-9`` is a number, not the string '1e-9'; a key given twice in one mapping is an error
    (PyYAML keeps the last silently).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """As PyYAML's, but a key given twice in one mapping is a ``ConstructorError``."""
        self.flatten_mapping(node)
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                seen = key in first
            except TypeError:  # unhashable: PyYAML's own error follows
                continue
            if seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice (first on line {first[key] + 1})",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with :class:`_Loader` (safe, YAML 1.2 floats, no duplicate keys)."""
    return yaml.load(text, Loader=_Loader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such launch file")
    try:
        data = parse_yaml(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``data``."""
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        try:
            value = parse_yaml(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML: {err}") from err
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def build(cls: type[T], data: Any, where: str = "") -> T:
    """Validate ``data`` against dataclass ``cls`` and construct it (recursively)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or '<root>'}: expected a mapping, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        path = _join(where, str(unknown[0]))
        raise ConfigError(f"{path}: unknown key; expected one of {sorted(fields)}")
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: required key is missing")
            continue
        value = _convert(hints[name], data[name], path, bool(f.metadata.get("allow_inf")))
        reason = _bound_error(f, value)
        if reason is not None:
            raise ConfigError(f"{path}: {reason}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except FieldError as err:
        raise ConfigError(f"{_join(where, err.field)}: {err.reason}") from None


def load(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load a launch file into ``cls`` with overrides applied."""
    data = apply_overrides(load_yaml(path), overrides)
    try:
        return build(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples as lists), for writing beside results."""
    raw = dataclasses.asdict(config)
    return typing.cast(dict[str, Any], _lists(raw))


def _lists(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _lists(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_lists(v) for v in x]
    return x


def dump(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _convert(tp: Any, value: Any, path: str, allow_inf: bool = False) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(typing.cast(type, tp), value, path)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        (item,) = get_args(tp)
        return [_convert(item, v, f"{path}[{i}]", allow_inf) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_show(value)}")
        key_tp, value_tp = get_args(tp)
        out = {}
        for k, v in value.items():
            where = _join(path, str(k))
            if key_tp is str and not isinstance(k, str):
                raise ConfigError(f"{where}: expected a string key, got {_show(k)}")
            out[k] = _convert(value_tp, v, where, allow_inf)
        return out
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{path}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path, allow_inf)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {'; '.join(errors)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                _convert(args[0], v, f"{path}[{i}]", allow_inf) for i, v in enumerate(value)
            )
        if len(args) != len(value):
            raise ConfigError(f"{path}: expected a list of {len(args)} items, got {len(value)}")
        return tuple(
            _convert(a, v, f"{path}[{i}]", allow_inf)
            for i, (a, v) in enumerate(zip(args, value, strict=False))
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {_show(value)}")
        if math.isnan(value) or (not allow_inf and not math.isfinite(value)):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_show(value)}")
        return value
    raise ConfigError(f"{path}: unsupported config type {tp!r}")


def _bound_error(f: dataclasses.Field[Any], value: Any) -> str | None:
    """What breaks ``f``'s declared bounds in ``value`` (None: within them)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    meta = f.metadata
    gt, ge, le, lt = meta.get("gt"), meta.get("ge"), meta.get("le"), meta.get("lt")
    if gt is not None and not value > gt:
        return f"expected a value > {gt}, got {value!r}"
    if ge is not None and not value >= ge:
        return f"expected a value >= {ge}, got {value!r}"
    if le is not None and not value <= le:
        return f"expected a value <= {le}, got {value!r}"
    if lt is not None and not value < lt:
        return f"expected a value < {lt}, got {value!r}"
    return None
