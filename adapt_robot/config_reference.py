"""``adapt-robot config JOB``: every launch-file key of a job, with its type, default and doc.

Generated from the job's frozen config dataclass (:func:`adapt_robot.config.setting` holds each
field's doc and bounds), so the reference cannot drift from what the loader accepts. A section
whose dataclass is chosen by a key (``algo.name`` of ``train``, ``arms[i].type`` of
``scoreboard``) is listed once per choice.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from adapt_robot.reporting.tables import markdown_table


@dataclass(frozen=True)
class KeyDoc:
    """One launch-file key."""

    key: str
    """Dotted key path (``algo.inner_lr``)."""
    type: str
    default: str
    """The default as YAML would spell it (``required`` where there is none)."""
    doc: str
    """The field's doc, with its bounds."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is tuple:
        inner = args[0] if args else Any
        return f"list of {_type_name(inner)}"
    if isinstance(tp, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            tp.__name__, tp.__name__
        )
    return str(tp)


def _value(f: dataclasses.Field[Any]) -> Any:
    """The field's default (``dataclasses.MISSING`` where it has none)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _default(f: dataclasses.Field[Any]) -> str:
    value = _value(f)
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _bounds(meta: Mapping[str, Any]) -> str:
    names = {"gt": ">", "ge": ">=", "le": "<=", "lt": "<"}
    parts = [f"{sign} {meta[k]:g}" for k, sign in names.items() if meta.get(k) is not None]
    return f" ({', '.join(parts)})" if parts else ""


def keys(
    cls: type,
    prefix: str = "",
    variants: Mapping[str, Mapping[str, type]] | None = None,
) -> list[KeyDoc]:
    """Every key of dataclass ``cls`` (nested sections flattened; ``variants`` per choice).

    ``variants`` maps a key path whose section is chosen by a key (``algo``) to the dataclass
    of each choice; those sections are listed as ``algo (name: maml).inner_lr``.
    """
    variants = variants or {}
    hints = get_type_hints(cls)
    out: list[KeyDoc] = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if path in variants:
            for choice, sub in variants[path].items():
                out += keys(sub, f"{path} ({choice}).")
            continue
        default = _value(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            out += keys(type(default), f"{path}.", variants)
            continue
        doc = str(f.metadata.get("doc", "")) + _bounds(f.metadata)
        out.append(KeyDoc(path, _type_name(hints[f.name]), _default(f), doc))
    return out


def _train() -> list[KeyDoc]:
    from adapt_robot.meta.algorithms import ALGORITHMS
    from adapt_robot.meta.train_config import TrainConfig

    algos = {f"name: {name}": pair[0] for name, pair in ALGORITHMS.items()}
    return keys(TrainConfig, variants={"algo": algos})


def _scoreboard() -> list[KeyDoc]:
    from adapt_robot.scoreboard.arms import ARM_TYPES
    from adapt_robot.scoreboard.config import ScoreboardConfig

    arms = {f"type: {name}": t.spec for name, t in ARM_TYPES.items()}
    return keys(ScoreboardConfig, variants={"arms": arms})


def _demo() -> list[KeyDoc]:
    from adapt_robot.jobs.demo import DemoConfig

    return keys(DemoConfig)


def _experts() -> list[KeyDoc]:
    from adapt_robot.jobs.experts import ExpertsConfig

    return keys(ExpertsConfig)


JOBS: dict[str, Callable[[], list[KeyDoc]]] = {
    "train": _train,
    "scoreboard": _scoreboard,
    "demo": _demo,
    "experts": _experts,
}
"""Jobs with a launch file -> their keys."""


def reference(job: str) -> str:
    """The Markdown table of ``job``'s launch-file keys."""
    if job not in JOBS:
        raise ValueError(f"config: unknown job {job!r}; expected one of {sorted(JOBS)}")
    rows = [
        [f"`{k.key}`", k.type, f"`{k.default}`", k.doc.replace("|", "\\|")] for k in JOBS[job]()
    ]
    head = (
        f"Launch-file keys of `adapt-robot {job}` (override any with `--set KEY=VALUE`; a "
        "section chosen by a key is listed once per choice):\n\n"
    )
    return head + markdown_table(["key", "type", "default", "what it does"], rows)
