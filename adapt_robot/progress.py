"""Progress bars that stay quiet when output is not a terminal (CI logs get one line per item)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "it") -> Iterator[T]:
    """Iterate with a tqdm bar on a terminal, or a plain log line per item otherwise."""
    seq = list(items)
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(seq, desc=desc, unit=unit)
        return
    for i, item in enumerate(seq):
        print(f"[{desc}] {i + 1}/{len(seq)} {unit}: {item}", file=sys.stderr, flush=True)
        yield item
