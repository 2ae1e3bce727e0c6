"""Frozen task-parameter dataclasses with range and type checks declared on the fields."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

RANGE = "range"
CHOICES = "choices"


def param(
    *,
    doc: str,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] | None = None,
    hidden: bool,
) -> Any:
    """Declare a task parameter: its allowed range or choices, whether it is hidden, its meaning.

    ``low``/``high`` bound the physically meaningful values (the union of both splits); the
    splits themselves are drawn by each family's ``sample_tasks``.
    """
    meta: dict[str, Any] = {"doc": doc, "hidden": hidden}
    if low is not None or high is not None:
        meta[RANGE] = (low, high)
    if choices is not None:
        meta[CHOICES] = choices
    return dataclasses.field(metadata=meta)


@dataclass(frozen=True, kw_only=True)
class TaskParams:
    """Base class: validates every declared field on construction."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            where = f"{type(self).__name__}.{f.name}"
            if CHOICES in f.metadata:
                if value not in f.metadata[CHOICES]:
                    raise ValueError(
                        f"{where}: expected one of {list(f.metadata[CHOICES])}, got {value!r}"
                    )
                continue
            if RANGE in f.metadata:
                _check_number(where, value, *f.metadata[RANGE])

    @classmethod
    def hidden_names(cls) -> tuple[str, ...]:
        """Names of parameters a policy cannot observe (what adaptation must discover)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("hidden"))

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (for JSON logs and manifests)."""
        return dataclasses.asdict(self)


def _check_number(where: str, value: Any, low: float | None, high: float | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where}: expected a value in [{low}, {high}], got {value!r}")
