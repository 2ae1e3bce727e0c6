"""Metric sinks: CSV and TensorBoard hold what metrics.jsonl holds, across a resume."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from adapt_robot.config import ConfigError
from adapt_robot.jobs.train import run_train
from adapt_robot.meta.train_config import load_train_config
from adapt_robot.reporting.loggers import flatten
from tests.meta.test_trainer import SMOKE


def test_flatten_keeps_numbers_joins_nested_keys_and_drops_the_rest() -> None:
    record = {
        "iteration": 3,
        "ok": True,
        "name": "maml",
        "eval": {"post_success": 0.5, "bad": float("nan"), "deep": {"x": 2}},
        "list": [1, 2],
    }
    assert flatten(record) == {
        "iteration": 3.0,
        "ok": 1.0,
        "eval/post_success": 0.5,
        "eval/deep/x": 2.0,
    }


def _jsonl(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_csv_and_tensorboard_follow_metrics_jsonl_through_a_resume(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    over = [f"out_dir={tmp_path}", "loggers=[csv,tensorboard]", "checkpoint_every=1"]
    run_train(SMOKE, [*over, "budget.iterations=2"], resume=False)
    run = run_train(SMOKE, [*over, "budget.iterations=4"], resume=True)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    lines = _jsonl(run)
    assert [int(float(r["iteration"])) for r in rows] == [1, 2, 3, 4]
    assert [r["iteration"] for r in lines] == [1, 2, 3, 4]
    for row, line in zip(rows, lines, strict=True):
        assert float(row["post_return"]) == pytest.approx(line["post_return"])
    evals = [r for r in rows if r["eval/post_success"] != ""]
    assert [int(float(r["iteration"])) for r in evals] == [2, 4]  # eval.every = 2

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("post_return")]
    assert steps == [1, 2, 3, 4]
    values = [e.value for e in acc.Scalars("post_return")]
    assert values == pytest.approx([float(line["post_return"]) for line in lines])  # type: ignore[arg-type]
    assert [e.step for e in acc.Scalars("eval/post_success")] == [2, 4]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_a_logger_whose_package_is_missing_is_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match=r"loggers\[0\]: wandb needs the wandb package.*pip"):
        load_train_config(SMOKE, ["loggers=[wandb]"])
    with pytest.raises(ConfigError, match="loggers"):
        load_train_config(SMOKE, ["loggers=[stdout]"])


def test_a_resume_replaces_the_tensorboard_steps_it_redoes(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from adapt_robot.reporting.loggers import MetricsLog

    first = MetricsLog(tmp_path, ["tensorboard"])
    for i in range(4):  # the warm start (0), then iterations 1-3; the checkpoint was at 0
        first.write({"iteration": i, "post_return": float(i)})
    first.close()
    again = MetricsLog(tmp_path, ["tensorboard"], resumed_after=0)
    for i in (1, 2):
        again.write({"iteration": i, "post_return": 10.0 + i})
    again.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("post_return")] == [
        (0, 0.0),
        (1, 11.0),
        (2, 12.0),
    ]


def test_sinks_are_checked_when_training_starts_not_when_a_run_is_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from adapt_robot.meta.train_config import build_train_config
    from adapt_robot.reporting import loggers

    run = run_train(SMOKE, [f"out_dir={tmp_path}", "loggers=[csv]", "budget.iterations=1"], False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    monkeypatch.setattr(loggers, "missing_package", lambda backend: "somepkg")
    saved["loggers"] = ["tensorboard"]
    assert build_train_config(saved).loggers == ("tensorboard",)  # export, eval: not blocked
    with pytest.raises(ConfigError, match=r"loggers\[0\]: tensorboard needs the somepkg"):
        load_train_config(SMOKE, ["loggers=[tensorboard]"])
    monkeypatch.undo()
    # A resume may change where the figures go.
    run_train(SMOKE, [f"out_dir={tmp_path}", "budget.iterations=2"], True)
    assert len(_jsonl(run)) == 2


def test_wandb_writes_an_offline_run_where_the_package_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed (it is optional)")
    from adapt_robot.reporting.loggers import MetricsLog

    monkeypatch.setenv("WANDB_SILENT", "true")
    log = MetricsLog(tmp_path, ["wandb"], {"family": "point"})
    for i in range(3):
        log.write({"iteration": i, "post_return": float(i), "eval": {"post_success": 0.5}})
    log.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
    assert len(_jsonl(tmp_path)) == 3
