"""Markdown tables: the one formatter behind every table the jobs and benchmarks print.

A table is a header row, an alignment rule and one line per row, cells separated by `` | ``
with no padding (what a Markdown renderer needs; padded text tables drift as soon as a cell
holds a non-ASCII character). A cell is ``str(value)``; ``None`` is written as an em dash, the
reports' mark for "not measured". A ``|`` inside a cell is escaped so it cannot split the cell.
"""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "—"
"""What a ``None`` cell is written as."""

_RULES = {"left": ":---", "right": "---:", "center": ":---:", "": "---"}
"""Alignment name -> the Markdown rule cell; ``""`` leaves the alignment to the renderer."""


def _cell(value: object, where: str) -> str:
    """One cell as text, with ``|`` escaped; a line break in a cell is refused."""
    text = MISSING if value is None else str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(
            f"markdown_table: {where} holds a line break ({text!r}); a Markdown table cell is "
            "one line: join its parts with '; ' before passing it"
        )
    return text.replace("|", "\\|")


def markdown_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    align: Sequence[str] | None = None,
) -> str:
    """A Markdown table of ``rows`` under ``headers`` (no trailing newline).

    ``align`` gives one of ``"left"``, ``"right"``, ``"center"`` or ``""`` (the renderer's
    default) per column; ``None`` leaves every column to the renderer. Raises ``ValueError``
    when there are no headers, or a row or ``align`` has another number of cells than
    ``headers``, naming the row.
    """
    if not headers:
        raise ValueError("markdown_table: headers is empty; give at least one column name")
    width = len(headers)
    if align is None:
        align = [""] * width
    if len(align) != width:
        raise ValueError(
            f"markdown_table: align has {len(align)} entries for {width} columns; give one per "
            "column"
        )
    unknown = [a for a in align if a not in _RULES]
    if unknown:
        raise ValueError(
            f"markdown_table: align {unknown[0]!r} is not one of 'left', 'right', 'center', ''"
        )
    lines = [
        "| " + " | ".join(_cell(h, f"header {i}") for i, h in enumerate(headers)) + " |",
        "|" + "|".join(_RULES[a] for a in align) + "|",
    ]
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"markdown_table: row {r} has {len(row)} cells for {width} columns "
                f"({list(headers)}); give one cell per column (None for a missing value)"
            )
        cells = (_cell(v, f"row {r}, column {headers[c]!r}") for c, v in enumerate(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
