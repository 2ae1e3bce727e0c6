"""The one Markdown-table formatter (adapt_robot.reporting.tables)."""

from __future__ import annotations

import pytest

from adapt_robot.reporting.tables import markdown_table


def test_header_rule_and_rows_written_by_hand() -> None:
    table = markdown_table(["family", "success"], [["point", "100%"], ["grasp", 0.5]])
    assert table == ("| family | success |\n|---|---|\n| point | 100% |\n| grasp | 0.5 |")


def test_alignment_rule_cells() -> None:
    table = markdown_table(
        ["a", "b", "c", "d"], [[1, 2, 3, 4]], align=["left", "right", "center", ""]
    )
    assert table.splitlines()[1] == "|:---|---:|:---:|---|"


def test_none_is_a_dash_and_pipes_are_escaped() -> None:
    table = markdown_table(["x", "y"], [[None, "a|b"]])
    assert table.splitlines()[2] == "| — | a\\|b |"


def test_no_rows_gives_header_and_rule_only() -> None:
    assert markdown_table(["only"], []) == "| only |\n|---|"


def test_a_row_of_the_wrong_width_is_named() -> None:
    with pytest.raises(ValueError, match=r"row 1 has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [[1, 2], [3]])


def test_bad_align_and_empty_headers_are_refused() -> None:
    with pytest.raises(ValueError, match="align has 1 entries for 2 columns"):
        markdown_table(["a", "b"], [], align=["left"])
    with pytest.raises(ValueError, match="'middle' is not one of"):
        markdown_table(["a"], [], align=["middle"])
    with pytest.raises(ValueError, match="headers is empty"):
        markdown_table([], [])


def test_a_line_break_in_a_cell_is_refused_with_its_place() -> None:
    with pytest.raises(ValueError, match=r"row 0, column 'b' holds a line break"):
        markdown_table(["a", "b"], [["ok", "two\nlines"]])
