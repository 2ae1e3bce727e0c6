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


def test_every_manifest_field_is_documented(grasp_bundle: Path) -> None:
    import yaml

    doc = (ROOT / "docs" / "bundle_format.md").read_text()
    manifest = yaml.safe_load((grasp_bundle / "manifest.yaml").read_text())
    missing = []
    for key, value in manifest.items():
        if f"`{key}" not in doc:
            missing.append(key)
        # Sections with free-form keys (hashes, graph names, the training config) are not listed.
        if isinstance(value, dict) and key not in ("files", "graphs", "training", "parity"):
            missing += [
                f"{key}.{sub}"
                for sub in value
                if f"`{key}.{sub}`" not in doc and f"`.{sub}`" not in doc
            ]
    assert missing == [], f"manifest fields missing from docs/bundle_format.md: {missing}"
