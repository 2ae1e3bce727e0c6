"""``adapt-robot config JOB``: the launch-file reference generated from the config dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from adapt_robot.cli import main
from adapt_robot.config_reference import keys, reference
from adapt_robot.meta.algorithms import ALGORITHMS, LawConfig
from adapt_robot.meta.train_config import BudgetConfig, TrainConfig


def test_every_train_key_is_listed_with_its_default_and_bounds() -> None:
    listed = {k.key: k for k in keys(TrainConfig, variants={"algo": {"law": LawConfig}})}
    for f in dataclasses.fields(LawConfig):
        assert f"algo (law).{f.name}" in listed
    for f in dataclasses.fields(BudgetConfig):  # a nested section, flattened
        assert f"budget.{f.name}" in listed
    minutes = listed["budget.minutes"]
    assert (minutes.type, minutes.default) == ("number", "0.0")
    assert "(>= 0)" in minutes.doc and "set-up" in minutes.doc
    assert listed["algo (law).engines"].default == "[]"
    assert listed["algo (law).goal"].type == "'window' | 'expert'"


def test_train_reference_lists_each_algorithm_once() -> None:
    text = reference("train")
    for name in ALGORITHMS:
        assert f"`algo (name: {name}).name`" in text
    assert "`seed`" in text and "`eval.every`" in text


def test_scoreboard_reference_lists_each_arm_type() -> None:
    text = reference("scoreboard")
    for arm in ("expert", "fixed_expert", "bundle"):
        assert f"`arms (type: {arm}).name`" in text
    assert "`arms (type: bundle).window_min`" in text


def test_cli_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "demo"]) == 0
    out = capsys.readouterr().out
    assert "`deploy.sequential`" in out and "| key | type | default |" in out


def test_an_unknown_job_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown job 'deploy'"):
        reference("deploy")
    with pytest.raises(SystemExit):
        main(["config", "deploy"])
