"""The task-family reference in docs/ is generated from the code and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from adapt_robot.jobs.render import family_spec

ROOT = Path(__file__).resolve().parents[1]


def test_task_family_docs_match_the_code() -> None:
    text = (ROOT / "docs" / "task_families.md").read_text()
    body = text.split("\n", 2)[2]
    expected = "\n\n".join(family_spec(n) for n in ("point", "grasp", "door")) + "\n"
    assert body == expected, "docs/task_families.md is stale: run `make docs`"
