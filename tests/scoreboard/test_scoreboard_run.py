"""End to end on ``point``: expert, fixed_expert and a bundle arm; md, json and png written."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.cli import main
from adapt_robot.scoreboard.arms import BundleArm, BundleSpec, ScoreSettings
from adapt_robot.scoreboard.markdown import render_markdown
from adapt_robot.scoreboard.report import REPORT_FORMAT, build_report
from adapt_robot.scoreboard.results import ADAPTIVE_STAGES, FIXED, ArmResult, stage_from_episodes
from tests.scoreboard.conftest import smoke_data, write_launch


def test_smoke_scoreboard_writes_md_json_png(
    point_bundle_3ep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = write_launch(tmp_path / "smoke.yaml", smoke_data(point_bundle_3ep))
    out = tmp_path / "board"
    sinks = ["--set", "loggers=[csv,tensorboard]"]
    assert main(["scoreboard", str(launch), "--set", "tasks=3", *sinks, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| expert | oracle | fixed |" in printed
    for name in ("scoreboard.md", "scoreboard.json", "scoreboard.png", "config.yaml"):
        assert (out / name).stat().st_size > 0
    assert (out / "scoreboard.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "scoreboard.json").read_text())
    assert report["format"] == REPORT_FORMAT and report["tasks"] == 3
    (board,) = report["engines"]
    assert board["engine"] == "numpy"
    # The point expert heads straight for the goal it is told: every episode succeeds.
    assert board["oracle"] == {"arm": "expert", "success": 1.0}
    assert board["best_robust"]["arm"] == "fixed_expert"
    expected = 100.0 * (1.0 - board["best_robust"]["success"])
    assert board["headroom_points"] == pytest.approx(expected)
    stages = [r["stage"] for r in board["rows"] if r["arm"] == "maml"]
    assert stages == list(ADAPTIVE_STAGES)
    assert [g["stage"] for g in board["gap_closed"]] == list(ADAPTIVE_STAGES)
    (maml,) = (a for a in report["results"]["numpy"] if a["arm"] == "maml")
    for k in (1, 2, 3):
        s = maml["stages"][f"after_{k}"]
        assert len(s["adapt_ms"]) == 3  # one adaptation per task
        assert s["episodes_per_task"] == 2
    first = maml["stages"]["first_attempt"]
    assert first["episodes_per_task"] == 1
    assert len(first["adapt_ms"]) == 3 * (20 // 5)  # every 5 ticks of a 20-step episode
    assert maml["stages"]["before"]["adapt_ms"] == []
    md = (out / "scoreboard.md").read_text()
    assert "gap closed [95% paired bootstrap]" in md and "headroom" in md
    # The loggers got the same figures: one CSV row per arm and stage, TensorBoard scalars.
    rows = list(csv.DictReader((out / "scoreboard.csv").open()))
    assert [(r["arm"], r["stage"]) for r in rows] == [(r["arm"], r["stage"]) for r in board["rows"]]
    assert float(rows[0]["success"]) == board["rows"][0]["success"]["mean"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    (point,) = acc.Scalars("scoreboard/numpy/expert/fixed/success")
    assert point.value == 1.0
    after = next(g for g in board["gap_closed"] if g["stage"] == "after_1")
    (gap,) = acc.Scalars("scoreboard/numpy/maml/after_1/gap_closed")
    assert gap.value == pytest.approx(after["value"])


def test_bundle_arm_is_reproducible_and_adapt_false_scores_fixed(point_bundle_3ep: Path) -> None:
    from adapt_robot.sim.registry import get_family

    family = get_family("point")
    tasks = family.sample_tasks(np.random.default_rng(5), 2, "test")
    settings = ScoreSettings(split="test", post_episodes=1)
    spec = BundleSpec(
        name="b",
        kind="adaptive",
        type="bundle",
        bundle=str(point_bundle_3ep),
        stages=("after_1", "before"),
    )
    a = BundleArm(spec, settings).score(family, "numpy", tasks, seed=4)
    b = BundleArm(spec, settings).score(family, "numpy", tasks, seed=4)
    assert list(a.stages) == ["before", "after_1"]  # report order, whatever the launch order
    for name in a.stages:
        np.testing.assert_array_equal(a.stages[name].mean_return, b.stages[name].mean_return)
        np.testing.assert_array_equal(a.stages[name].successes, b.stages[name].successes)
    robust = BundleSpec(
        name="r", kind="robust", type="bundle", bundle=str(point_bundle_3ep), adapt=False
    )
    fixed = BundleArm(robust, settings).score(family, "numpy", tasks, seed=4)
    assert list(fixed.stages) == [FIXED]
    assert fixed.stages[FIXED].adapt_ms.size == 0


def test_a_posterior_bundle_arm_adapts_by_its_encoder(pearl_bundle: Path) -> None:
    from adapt_robot.config import ConfigError
    from adapt_robot.sim.registry import get_family

    family = get_family("point")
    tasks = family.sample_tasks(np.random.default_rng(5), 2, "test")
    settings = ScoreSettings(split="test", post_episodes=1)
    base = {"kind": "adaptive", "type": "bundle", "bundle": str(pearl_bundle)}
    stages = ("before", "after_1", "after_2", "first_attempt")
    spec = BundleSpec(name="p", stages=stages, experience="sequential", **base)
    spec.validate("point")
    a = BundleArm(spec, settings).score(family, "numpy", tasks, seed=4)
    b = BundleArm(spec, settings).score(family, "numpy", tasks, seed=4)
    assert list(a.stages) == ["before", "after_1", "after_2", "first_attempt"]
    for name in a.stages:  # the prior draws come from the seeded adapter: reproducible
        np.testing.assert_array_equal(a.stages[name].mean_return, b.stages[name].mean_return)
    assert a.stages["before"].adapt_ms.size == 0
    assert a.stages["after_1"].adapt_ms.size == len(tasks)  # one posterior per task
    assert a.stages["after_2"].adapt_ms.size == 2 * len(tasks)  # sequential: after each
    assert a.stages["first_attempt"].adapt_ms.size > len(tasks)
    assert not a.stages["after_2"].rejections
    with pytest.raises(ConfigError, match=r"window_steps: .*posterior"):
        BundleSpec(name="p", stages=stages, window_steps=2, **base).validate("point")


def test_repeats_run_each_stage_again_from_the_meta_parameters(
    point_bundle_3ep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """repeats: R runs per task and stage, each reset to meta and with its own experience; the
    first run is the single-run score, and every run's scored episodes are the task's."""
    from adapt_robot.runtime.adapter import OnlineAdapter
    from adapt_robot.scoreboard.arms import bundle as bundle_arm
    from adapt_robot.sim.registry import get_family

    played: list[int] = []
    resets: list[int] = []
    real_run, real_reset = bundle_arm.run_episode, OnlineAdapter.reset_to_meta

    def counting(robot: object, adapter: object, **kw: object) -> object:
        played.append(1)
        return real_run(robot, adapter, **kw)  # type: ignore[arg-type]

    def reset(self: OnlineAdapter) -> None:
        resets.append(1)
        real_reset(self)

    monkeypatch.setattr(bundle_arm, "run_episode", counting)
    monkeypatch.setattr(OnlineAdapter, "reset_to_meta", reset)
    family = get_family("point")
    tasks = family.sample_tasks(np.random.default_rng(5), 2, "test")
    settings = ScoreSettings(split="test", post_episodes=2)
    base = {"kind": "adaptive", "type": "bundle", "bundle": str(point_bundle_3ep)}
    one = BundleArm(BundleSpec(name="a", stages=("after_2",), **base), settings)
    three = BundleArm(BundleSpec(name="a", stages=("after_2",), repeats=3, **base), settings)
    single = one.score(family, "numpy", tasks, seed=4).stages["after_2"]
    played.clear()
    resets.clear()
    result = three.score(family, "numpy", tasks, seed=4)
    stage = result.stages["after_2"]
    # 2 tasks x 3 runs x (2 experience + 2 scored episodes); one reset per run.
    assert len(played) == 24 and len(resets) == 6
    assert stage.episodes == 6 and stage.successes.shape == (2,)
    assert stage.adapt_ms.size == 6  # one batch adaptation per run
    assert "3 runs per task and stage" in result.notes[-1]
    assert single.episodes == 2
    assert np.all(stage.successes >= 0) and np.all(stage.successes <= 6)


def _arm(name: str, kind: str, stage: str, success: list[list[bool]]) -> ArmResult:
    returns = [[-1.0] * len(row) for row in success]
    return ArmResult(
        arm=name,
        kind=kind,
        type="hand",
        engine="numpy",
        stages={stage: stage_from_episodes(stage, success, returns)},
    )


def test_report_on_hand_made_results_refuses_gap_without_headroom(
    point_bundle_3ep: Path, tmp_path: Path
) -> None:
    from adapt_robot.scoreboard.config import load_scoreboard_config

    cfg = load_scoreboard_config(write_launch(tmp_path / "s.yaml", smoke_data(point_bundle_3ep)))
    both = [[True, False], [False, False]]  # 1 of 4 episodes
    results = {
        "numpy": [
            _arm("oracle", "oracle", FIXED, both),
            _arm("robust", "robust", FIXED, both),
            _arm("adaptive", "adaptive", "after_1", [[True, True], [True, False]]),
        ]
    }
    report = build_report(cfg, results)
    (board,) = report["engines"]
    assert board["headroom_points"] == 0.0 and board["tests_adaptation"] is False
    (gap,) = board["gap_closed"]
    assert gap["refused"] == "no headroom" and gap["value"] is None
    success = board["rows"][2]["success"]
    assert success["mean"] == pytest.approx(0.75) and success["n"] == 4
    md = render_markdown(report)
    assert "refused: no headroom" in md
    assert "does not test adaptation" in md
    assert not math.isnan(board["rows"][0]["mean_return"]["mean"])


def test_latent_oracle_tells_each_task_its_true_latent(
    latent_run: Path, latent_bundle: Path
) -> None:
    """The latent_oracle arm acts with mu(hidden) per task: two tasks with different goals get
    different contexts, so their deterministic first actions differ from the meta-policy's."""
    import dataclasses
    import types

    from adapt_robot.meta.trainer import load_run
    from adapt_robot.runtime import Bundle, OnlineAdapter
    from adapt_robot.scoreboard.arms.latent_oracle import LatentOracleArm, LatentOracleSpec
    from adapt_robot.sim.registry import get_family

    family = get_family("point")
    tasks = family.sample_tasks(np.random.default_rng(6), 2, "test")
    spec = LatentOracleSpec(
        name="told",
        kind="oracle",
        type="latent_oracle",
        run=str(latent_run),
        bundle=str(latent_bundle),
        deterministic=True,
    )
    spec.validate("point")
    res = LatentOracleArm(spec, ScoreSettings(split="test", post_episodes=2)).score(
        family, "numpy", tasks, seed=0
    )
    assert list(res.stages) == [FIXED] and res.stages[FIXED].successes.shape == (2,)
    _, learner, _ = load_run(latent_run)
    z = learner.true_latents(tasks).numpy()
    assert not np.allclose(z[0], z[1])
    bundle = Bundle.load(latent_bundle)
    obs = np.zeros(bundle.manifest.observation.dim, dtype=np.float32)
    told = dataclasses.replace(
        bundle, params=types.MappingProxyType({**bundle.params, "context": z[0]})
    )
    with (
        OnlineAdapter(told, deterministic=True) as a,
        OnlineAdapter(bundle, deterministic=True) as b,
    ):
        assert not np.allclose(a.act(obs), b.act(obs))


def test_latent_oracle_refuses_a_policy_gradient_bundle(
    point_run: Path, point_bundle: Path
) -> None:
    from adapt_robot.config import ConfigError
    from adapt_robot.scoreboard.arms.latent_oracle import LatentOracleSpec

    spec = LatentOracleSpec(
        name="told",
        kind="oracle",
        type="latent_oracle",
        run=str(point_run),
        bundle=str(point_bundle),
    )
    with pytest.raises(ConfigError, match="inner loss 'policy_gradient'"):
        spec.validate("point")


def test_best_adaptive_names_the_top_arm_per_stage_with_its_gap(
    point_bundle_3ep: Path, tmp_path: Path
) -> None:
    from adapt_robot.scoreboard.config import load_scoreboard_config

    cfg = load_scoreboard_config(write_launch(tmp_path / "s.yaml", smoke_data(point_bundle_3ep)))
    results = {
        "numpy": [
            _arm("oracle", "oracle", FIXED, [[True, True], [True, True]]),  # 4 of 4
            _arm("robust", "robust", FIXED, [[False, False], [True, True]]),  # 2 of 4
            _arm("a", "adaptive", "after_2", [[True, False], [True, True]]),  # 3 of 4
            _arm("b", "adaptive", "after_2", [[True, True], [True, True]]),  # 4 of 4
        ]
    }
    (board,) = build_report(cfg, results)["engines"]
    (best,) = board["best_adaptive"]
    # Gap closed by b: (1.0 - 0.5) / (1.0 - 0.5) = 1 on the pooled rates.
    assert (best["stage"], best["arm"], best["success"]) == ("after_2", "b", 1.0)
    assert best["gap_closed"] == pytest.approx(1.0)
    gaps = {g["arm"]: g for g in board["gap_closed"]}
    assert gaps["a"]["value"] == pytest.approx(0.5)
    # The figures hold only shares of the gap; how each interval was drawn sits beside them.
    assert all(set(g) == {"arm", "stage", "value", "low", "high", "refused"} for g in gaps.values())
    draws = {b["arm"]: b for b in board["gap_bootstrap"]}
    assert draws["a"]["resamples"] == cfg.report.bootstrap and draws["a"]["dropped"] >= 0


def test_a_recurrent_bundle_is_scored_on_k_episodes_of_experience_per_scored_episode(
    rl2_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RL²: each scored episode of after_k starts a new task and follows k carried episodes."""
    from adapt_robot.scoreboard.arms import bundle as bundle_arm
    from adapt_robot.sim.registry import get_family

    played: list[int] = []
    real_run = bundle_arm.run_episode

    def counting(robot: object, adapter: object, **kw: object) -> object:
        played.append(1)
        return real_run(robot, adapter, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(bundle_arm, "run_episode", counting)
    family = get_family("point")
    tasks = family.sample_tasks(np.random.default_rng(5), 2, "test")
    settings = ScoreSettings(split="test", post_episodes=2)
    counts = {}
    for stage in ADAPTIVE_STAGES:
        played.clear()
        spec = BundleSpec(
            name="rl2", kind="adaptive", type="bundle", bundle=str(rl2_bundle), stages=(stage,)
        )
        result = BundleArm(spec, settings).score(family, "numpy", tasks, seed=4)
        counts[stage] = len(played)
        assert result.stages[stage].adapt_ms.size == 0  # no gradient step ran
        assert "recurrent bundle" in result.notes[0]
    # 2 tasks x 2 scored episodes x (k + 1) episodes each.
    assert counts == {"before": 4, "after_1": 8, "after_2": 12, "after_3": 16, "first_attempt": 4}
