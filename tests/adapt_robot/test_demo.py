"""The main job end to end on a tiny budget: train -> export -> torch-free deploy -> summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapt_robot.cli import main
from adapt_robot.jobs.demo import _keep_previous

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--set",
    "train.overrides=[budget.iterations=1, eval.tasks=2, eval.episodes_per_task=2, "
    "sampler.tasks_per_iter=4, algo.grad_steps=2]",
    "--set",
    "deploy.objects=2",
    "--set",
    "deploy.episodes=2",
    "--set",
    "deploy.post_episodes=1",
]


def test_demo_runs_the_whole_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    launch = str(ROOT / "launch" / "demo.yaml")
    assert main(["demo", launch, "--set", f"out_dir={out}", *TINY]) == 0
    printed = capsys.readouterr().out
    for row in ("| train |", "| export |", "| deploy |", "| success (95% CI) |", "misses"):
        assert row in printed
    for name in (
        "config.yaml",
        "summary.md",
        "train/checkpoint.pt",
        "train/learning_curve.png",
        "bundle/manifest.yaml",
        "deploy/deploy.json",
        "deploy/deploy.png",
        "deploy/before_after.gif",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    deploy = summary["deploy"]
    # Deployed on the other engine, on held-out objects, with the figures of this run.
    assert (deploy["engine"], deploy["trained_engine"], deploy["split"]) == (
        "pybullet",
        "mujoco",
        "test",
    )
    assert len(deploy["objects"]) == 2
    # Sequential schedule: one episode per object with the meta-parameters, then K adaptations.
    assert deploy["sequential"] and deploy["summary"]["success_before"]["n"] == 2
    assert [o["adapt"]["count"] for o in deploy["objects"]] == [2, 2]
    # The oracle on the same objects and engine, as many episodes as the post episodes.
    oracle = summary["oracle"]
    assert (oracle["engine"], oracle["objects"], oracle["success"]["n"]) == ("pybullet", 2, 2)
    assert "oracle (expert told the object)" in printed
    assert summary["train"]["iterations"] == 1
    assert (out / "summary.md").read_text().strip() in printed


def test_a_rerun_moves_the_previous_run_aside(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "summary.md").write_text("earlier")
    _keep_previous(out)
    assert not out.exists()
    (aside,) = tmp_path.glob("demo.old-*")
    assert (aside / "summary.md").read_text() == "earlier"
    out.mkdir()  # an empty directory is simply reused
    _keep_previous(out)
    assert not out.exists()


def test_bad_demo_key_is_refused_before_any_work(tmp_path: Path) -> None:
    launch = str(ROOT / "launch" / "demo.yaml")
    assert (
        main(["demo", launch, "--set", f"out_dir={tmp_path / 'd'}", "--set", "deploy.rate_hz=0"])
        == 2
    )
    assert not (tmp_path / "d").exists()
