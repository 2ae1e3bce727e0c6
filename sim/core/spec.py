"""Named, bounded vector spaces: the observation and action layouts shared by every engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Field:
    """One named slice of a vector (a scalar when ``size == 1``)."""

    name: str
    """Name of the entry, used in docs, manifests and error messages."""
    size: int = 1
    """Number of consecutive entries."""
    low: float = -np.inf
    """Lower bound of every entry in this field."""
    high: float = np.inf
    """Upper bound of every entry in this field."""
    unit: str = ""
    """Physical unit (``m``, ``m/s``, ``N``, ``rad``, ``1`` for dimensionless)."""
    doc: str = ""
    """What the entry measures, and where a robot gets it from."""


@dataclass(frozen=True)
class VectorSpec:
    """An ordered layout of fields; indices are documented index by index from it."""

    fields: tuple[Field, ...]

    @property
    def dim(self) -> int:
        """Total number of entries."""
        return sum(f.size for f in self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        """One name per entry (``obj_pos[0]`` for multi-entry fields)."""
        out: list[str] = []
        for f in self.fields:
            out.extend([f.name] if f.size == 1 else [f"{f.name}[{i}]" for i in range(f.size)])
        return tuple(out)

    @property
    def low(self) -> np.ndarray:
        """Lower bounds, one per entry (float32)."""
        return np.concatenate([np.full(f.size, f.low) for f in self.fields]).astype(np.float32)

    @property
    def high(self) -> np.ndarray:
        """Upper bounds, one per entry (float32)."""
        return np.concatenate([np.full(f.size, f.high) for f in self.fields]).astype(np.float32)

    def slice(self, name: str) -> slice:
        """Index range of a field by name."""
        start = 0
        for f in self.fields:
            if f.name == name:
                return slice(start, start + f.size)
            start += f.size
        raise KeyError(f"no field {name!r}; fields are {[f.name for f in self.fields]}")

    def index(self, name: str) -> int:
        """Index of a scalar field."""
        s = self.slice(name)
        if s.stop - s.start != 1:
            raise KeyError(f"field {name!r} has {s.stop - s.start} entries; use slice()")
        return int(s.start)

    def table(self) -> str:
        """Markdown table of the layout, index by index."""
        rows = ["| index | name | unit | range | meaning |", "|---|---|---|---|---|"]
        start = 0
        for f in self.fields:
            idx = str(start) if f.size == 1 else f"{start}-{start + f.size - 1}"
            rows.append(f"| {idx} | `{f.name}` | {f.unit} | [{f.low:g}, {f.high:g}] | {f.doc} |")
            start += f.size
        return "\n".join(rows)


def check_action(action: np.ndarray, dim: int, batch: int | None = None) -> np.ndarray:
    """Validate an action (or a batch) and return it as float64, clipped to [-1, 1].

    Raises ValueError naming the problem for a wrong shape or a non-finite entry, so that a NaN
    never reaches the physics.
    """
    a = np.asarray(action, dtype=np.float64)
    expected = (dim,) if batch is None else (batch, dim)
    if a.shape != expected:
        raise ValueError(f"action: expected shape {expected}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0].tolist()
        raise ValueError(
            f"action: non-finite value {a[tuple(bad)]} at index {bad}; "
            "actions must be finite (clip or replace NaN in the policy before stepping)"
        )
    return np.clip(a, -1.0, 1.0)
