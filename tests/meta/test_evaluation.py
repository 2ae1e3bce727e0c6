"""The held-out evaluation protocol: meta.evaluation and jobs.evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from adapt_robot.config import ConfigError
from adapt_robot.jobs.evaluate import make_protocol, open_run, run_eval
from adapt_robot.meta.evaluation import EvalProtocol, evaluate_learner
from adapt_robot.meta.inner import adapt
from adapt_robot.meta.policy import detach
from adapt_robot.runtime.safety import NONFINITE_UPDATE, REASONS, UPDATE_NORM, AcceptanceConfig

SMALL: dict[str, Any] = {
    "tasks": 6,
    "exploration_episodes": 4,
    "max_inner_steps": 2,
    "post_episodes": 2,
}


def test_report_fields_and_curve_agree_with_per_task_arrays(point_maml_run: Path) -> None:
    learner, source = open_run(point_maml_run, None)
    report = evaluate_learner(learner, EvalProtocol(**SMALL), source=source)
    family, horizon = learner.sampler.family, 20
    assert (report.algo, report.family, report.engine) == ("maml", "point", "numpy")
    assert report.returns.shape == report.successes.shape == (3, 6)
    assert report.episodes == (4, 2, 2) and report.rolled_back == (0, 0, 0)
    assert report.capacity == 4 * horizon
    assert report.inner_lr["l0.w"] == pytest.approx(0.1, rel=1e-5)
    assert report.source["iteration"] == 4 and report.source["trained_inner_steps"] == 1
    assert report.env_steps == 6 * (4 + 2 + 2) * horizon
    assert [family.in_split(family.params_type(**t)) for t in report.tasks] == ["test"] * 6
    assert np.all((report.successes >= 0) & (report.successes <= np.array([[4], [2], [2]])))
    curve = report.curve()
    assert [s.inner_steps for s in curve] == [0, 1, 2]
    assert curve[0].success_gain is None and curve[2].return_gain is not None
    for n, s in enumerate(curve):
        assert s.ret.mean == pytest.approx(report.returns[n].mean())
        assert s.success.mean == report.successes[n].sum() / (report.episodes[n] * 6)
        assert s.success.n == report.episodes[n] * 6 and s.ret.n == 6
    gain = report.returns[2] - report.returns[0]
    assert curve[2].return_gain.mean == pytest.approx(gain.mean())
    json.dumps(report.to_json(), allow_nan=False)  # strict JSON


def test_inner_steps_are_the_learners_own_step_on_the_exploration_batch(
    point_maml_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    learner, _ = open_run(point_maml_run, None)
    calls: list[tuple[dict[str, torch.Tensor], object]] = []
    original = learner.sampler.sample

    def recording(params, tasks, rng, episodes=None, *, per_task=False):  # type: ignore[no-untyped-def]
        out = original(params, tasks, rng, episodes, per_task=per_task)
        calls.append((detach(params), out))
        return out

    monkeypatch.setattr(learner.sampler, "sample", recording)
    evaluate_learner(learner, EvalProtocol(**SMALL))
    assert len(calls) == 3
    explore = calls[0][1]
    for task in (0, 5):
        batch = explore.task_batch(task)  # type: ignore[attr-defined]
        for n in (1, 2):
            start, lrs = detach(learner.params), learner.lrs()
            want = adapt(learner.policy, start, lrs, batch, n, create_graph=False)
            got = calls[n][0]
            for name, v in want.items():
                torch.testing.assert_close(got[name][task], v, rtol=1e-5, atol=1e-6)
    # Adapting changed the parameters (the steps are not no-ops).
    assert not torch.equal(calls[1][0]["l0.w"][0], learner.params["l0.w"].detach())


def test_same_seed_same_report_other_seed_other_tasks(point_maml_run: Path) -> None:
    learner, _ = open_run(point_maml_run, None)
    a = evaluate_learner(learner, EvalProtocol(**SMALL, seed=3))
    b = evaluate_learner(learner, EvalProtocol(**SMALL, seed=3))
    c = evaluate_learner(learner, EvalProtocol(**SMALL, seed=4))
    assert a.tasks == b.tasks and a.tasks != c.tasks
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.successes, b.successes)
    assert [s.to_dict() for s in a.curve()] == [s.to_dict() for s in b.curve()]


def test_diverging_steps_are_rejected_by_the_robots_rule_and_counted_by_reason(
    point_maml_run: Path,
) -> None:
    # Infinite learning rates make every step diverge: all rejected, nothing raised.
    learner, _ = open_run(point_maml_run, None)
    learner.lrs = lambda: {k: torch.tensor(math.inf) for k in learner.raw_lrs}  # type: ignore[method-assign]
    report = evaluate_learner(learner, EvalProtocol(**SMALL))
    assert report.rolled_back == (0, 6, 6)
    assert report.rollback_reasons[0] == dict.fromkeys(REASONS, 0)
    assert report.rollback_reasons[1][NONFINITE_UPDATE] == 6
    assert report.curve()[2].to_dict()["rollback_reasons"][NONFINITE_UPDATE] == 6
    # Huge but finite rates: the update-norm bound, with the rule's settings recorded.
    learner.lrs = lambda: {k: torch.tensor(1e4) for k in learner.raw_lrs}  # type: ignore[method-assign]
    report = evaluate_learner(learner, EvalProtocol(**SMALL), acceptance=AcceptanceConfig())
    assert report.rollback_reasons[1][UPDATE_NORM] == 6 == report.rolled_back[1]
    assert report.to_json()["acceptance"]["max_update_norm"] == 10.0


def test_ppo_dr_baseline_is_fine_tuned_with_its_inner_lr(point_ppo_dr_run: Path) -> None:
    learner, source = open_run(point_ppo_dr_run, None)
    report = evaluate_learner(learner, EvalProtocol(**SMALL), source=source)
    assert report.algo == "ppo_dr"
    assert list(report.inner_lr.values()) == pytest.approx([0.2] * len(report.inner_lr), rel=1e-5)
    assert len(report.curve()) == 3 and report.rolled_back == (0, 0, 0)
    # Fine-tuning changes the policy, so the post-adaptation episodes differ from pre.
    assert not np.allclose(report.returns[1], report.returns[0])


def test_engine_override_rejected_for_a_family_without_it(point_maml_run: Path) -> None:
    with pytest.raises(ValueError, match=r"--backend pybullet: family 'point' runs only in"):
        open_run(point_maml_run, "pybullet")
    learner, _ = open_run(point_maml_run, None)
    with pytest.raises(ValueError, match="protocol asks for 'pybullet'"):
        evaluate_learner(learner, EvalProtocol(**SMALL, engine="pybullet"))


def test_run_eval_writes_json_png_and_table(point_maml_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    reports, table = run_eval([point_maml_run], EvalProtocol(**SMALL), out)
    data = json.loads((out / "report.json").read_text())
    assert data["algo"] == "maml" and len(data["curve"]) == 3
    assert data["curve"][1]["success"]["method"] == "wilson"
    assert data["curve"][1]["return"]["method"] == "t"
    assert data["per_task"]["returns"] == reports[0].returns.tolist()
    assert (out / "adaptation_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| run | algo | engine | success pre | post@1 | post@2 |" in table
    assert (out / "table.md").read_text().startswith("Held-out evaluation: 6 test tasks")


def test_several_runs_one_table_one_plot(
    point_maml_run: Path, point_ppo_dr_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    protocol = EvalProtocol(**{**SMALL, "max_inner_steps": 1}, seed=7)
    reports, table = run_eval([point_maml_run, point_ppo_dr_run], protocol, out)
    assert [r.algo for r in reports] == ["maml", "ppo_dr"]
    assert reports[0].tasks == reports[1].tasks  # the same held-out tasks for both
    assert "| maml | maml | numpy |" in table and "| ppo_dr | ppo_dr | numpy |" in table
    both = json.loads((out / "reports.json").read_text())
    assert [r["label"] for r in both] == ["maml", "ppo_dr"]
    assert (out / "adaptation_curve.png").stat().st_size > 1000
    assert (point_ppo_dr_run / "eval" / "report.json").exists()


# --- bad input ------------------------------------------------------------------------------


def test_missing_run_dir_and_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        run_eval([tmp_path / "nope"], EvalProtocol(**SMALL))
    with pytest.raises(FileNotFoundError, match=r"no checkpoint\.pt in this directory"):
        run_eval([tmp_path], EvalProtocol(**SMALL))


def test_bad_protocol_values_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"eval\.tasks: expected an integer >= 1, got 0"):
        EvalProtocol(tasks=0)
    steps = r"eval\.max_inner_steps: expected an integer in \[1, 3\], got 4"
    with pytest.raises(ConfigError, match=steps):
        EvalProtocol(max_inner_steps=4)
    with pytest.raises(ConfigError, match="--tasks: expected an integer >= 1, got 0"):
        make_protocol(tasks=0)
    with pytest.raises(ConfigError, match="--episodes: expected an integer >= 1, got -1"):
        make_protocol(exploration_episodes=-1)


def test_no_work_is_done_when_a_later_run_is_bad(point_maml_run: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        run_eval([point_maml_run, tmp_path / "nope"], EvalProtocol(**SMALL), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_pybullet_twin_evaluates_a_mujoco_trained_grasp_run(tmp_path: Path) -> None:
    grasp = str(Path(__file__).resolve().parents[2] / "launch" / "grasp_maml.yaml")
    from adapt_robot.jobs.train import run_train

    run = run_train(
        grasp,
        [
            f"out_dir={tmp_path / 'grasp'}",
            "budget.iterations=1",
            "sampler.tasks_per_iter=2",
            "sampler.episodes_per_task=2",
            "eval.tasks=2",
            "eval.episodes_per_task=1",
            "policy.hidden=[16, 16]",
        ],
        resume=False,
    )
    protocol = EvalProtocol(
        tasks=2, exploration_episodes=2, max_inner_steps=1, post_episodes=1, engine="pybullet"
    )
    reports, _ = run_eval([run], protocol)
    assert reports[0].engine == "pybullet" and reports[0].source["trained_engine"] == "mujoco"
    assert (run / "eval-pybullet" / "report.json").exists()


def test_latent_runs_are_evaluated_with_their_identification_step(latent_run: Path) -> None:
    """eval adapts a latent run's z on all its exploration transitions (the identification
    batch, not advantages) and judges it with the robot's rule."""
    learner, _ = open_run(latent_run, None)
    assert learner.inner_loss_fn().kind == "identification"
    report = evaluate_learner(learner, EvalProtocol(**SMALL))
    assert report.capacity == SMALL["exploration_episodes"] * learner.sampler.family.max_steps
    assert report.successes.shape == (SMALL["max_inner_steps"] + 1, SMALL["tasks"])
    assert all(r[NONFINITE_UPDATE] == 0 for r in report.rollback_reasons)
