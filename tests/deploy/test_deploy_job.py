"""``adapt-robot deploy``: the control loop on a simulated robot, adapting per held-out object."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from adapt_robot.cli import main
from adapt_robot.config import ConfigError
from adapt_robot.deploy.scoring import AFTER, BEFORE, EXPERIENCE, TRANSITION, ScoredController
from adapt_robot.jobs.deploy import DeployConfig, deploy_mode, held_out_tasks, run_deploy
from adapt_robot.runtime import Bundle
from adapt_robot.runtime.adaptation import AdaptResult
from adapt_robot.runtime.safety import REASONS

ROOT = Path(__file__).resolve().parents[2]
FAST = {"rate_hz": 1000.0, "progress": False}
"""1 kHz: the simulation runs as fast as the loop ticks."""


def test_point_run_scores_before_on_meta_and_after_on_adapted(
    point_bundle: Path, tmp_path: Path
) -> None:
    k = Bundle.load(point_bundle).manifest.inner_loop.episodes
    cfg = DeployConfig(
        bundle=point_bundle, robot="sim:numpy", objects=3, post_episodes=2, out_dir=tmp_path, **FAST
    )
    report = run_deploy(cfg)
    assert (report.family, report.engine, report.episodes, report.post_episodes) == (
        "point",
        "numpy",
        k,
        2,
    )
    assert len(report.objects) == 3
    horizon = report.horizon
    for obj in report.objects:
        before, after = obj.phase(BEFORE), obj.phase(AFTER)
        assert len(before) == k and len(after) == 2
        assert [e.phase for e in obj.episodes][:k] == [BEFORE] * k
        assert all(e.params_version == 0 for e in before), "exploration must use the meta-params"
        if obj.adapted:
            assert all(e.params_version == 1 for e in after), "post episodes need the new params"
            assert np.isfinite(obj.adapt_ms) and obj.adapt_ms > 0
        else:
            assert obj.adapt_reason in REASONS
            assert all(e.params_version == 0 for e in after)
        assert all(e.ticks == horizon for e in obj.episodes)  # point never terminates early
        assert obj.loop.episodes == len(obj.episodes) and obj.loop.errors == 0
        assert obj.loop.ticks == horizon * len(obj.episodes)
    assert any(o.adapted for o in report.objects)
    assert report.adapt_outcomes.get("accepted", 0) == sum(o.adapted for o in report.objects)
    assert report.safety["rollbacks"] == sum(not o.adapted for o in report.objects)
    before_iv, after_iv = report.success_before, report.success_after
    assert after_iv is not None
    assert (before_iv.n, after_iv.n) == (3 * k, 3 * 2)
    assert 0 <= before_iv.low <= before_iv.mean <= before_iv.high <= 1
    assert 0 <= after_iv.low <= after_iv.mean <= after_iv.high <= 1
    assert report.loop.ticks == sum(o.loop.ticks for o in report.objects)
    assert report.loop.act_us[0] <= report.loop.act_us[1] <= report.loop.act_us[2]
    data = json.loads((tmp_path / "deploy.json").read_text())
    assert data["summary"]["success_before"]["n"] == 3 * k
    assert [len(o["after"]["returns"]) for o in data["objects"]] == [2, 2, 2]
    assert data["objects"][0]["task"] == report.objects[0].task
    assert "success before (meta-params)" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "deploy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grasp_in_pybullet_writes_a_before_after_gif(grasp_bundle: Path, tmp_path: Path) -> None:
    gif = tmp_path / "ba.gif"
    cfg = DeployConfig(bundle=grasp_bundle, objects=1, post_episodes=1, gif=gif, **FAST)
    report = run_deploy(cfg)
    assert (report.engine, report.trained_engine) == ("pybullet", "mujoco")
    assert report.gif == str(gif)
    frames = imageio.mimread(gif, memtest=False)
    assert len(frames) > 1 and frames[0].shape[1] == 320
    assert len(report.objects[0].phase(AFTER)) == 1


class FakeAdapter:
    """The adapter calls ScoredController makes, with an adaptation the test finishes."""

    def __init__(self) -> None:
        self.version = 0
        self.future: cf.Future[AdaptResult] = cf.Future()
        self.submitted = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros(2, dtype=np.float32)

    def observe(
        self,
        reward: float | None,
        done: bool,
        next_obs: np.ndarray | None = None,
        success: bool | None = None,
    ) -> None:
        pass

    def adapt_async(self) -> cf.Future[AdaptResult]:
        self.submitted += 1
        return self.future

    def stats(self) -> dict[str, float | int]:
        return {"params_version": self.version}


def _result(reason: str) -> AdaptResult:
    return AdaptResult(
        accepted=reason == "accepted",
        reason=reason,
        steps=1,
        rows=6,
        episodes=2,
        dropped_rows=0,
        loss_before=1.0,
        loss_after=0.5,
        grad_norm=1.0,
        update_norm=0.1,
        duration_ms=1.5,
    )


def _scored(
    adapter: FakeAdapter,
    *,
    success: bool,
    episodes: int,
    reward: float,
    ticks: int,
    sequential: bool = False,
) -> tuple[ScoredController, list[int], Callable[[], None]]:
    """A controller with 2 post episodes, the stops it made, and one-episode driver."""
    stops: list[int] = []
    ctrl = ScoredController(
        adapter,  # type: ignore[arg-type]
        lambda: success,
        episodes=episodes,
        post_episodes=2,
        max_ticks=100,
        sequential=sequential,
    )
    ctrl.attach(lambda: stops.append(1))

    def episode() -> None:
        for t in range(ticks):
            ctrl.act(np.zeros(2, dtype=np.float32))
            ctrl.observe(reward, t == ticks - 1)

    return ctrl, stops, episode


@pytest.mark.parametrize("reason", ["accepted", "loss_increase"])
def test_post_episodes_start_only_once_the_adaptation_is_in(reason: str) -> None:
    adapter = FakeAdapter()
    ctrl, stops, episode = _scored(adapter, success=True, episodes=2, reward=1.0, ticks=3)

    episode(), episode()
    assert adapter.submitted == 1, "the adaptation starts at the end of the K-th episode"
    episode(), episode()  # the worker is still busy: the loop goes on, these are not scored
    if reason == "accepted":
        adapter.version = 1
    adapter.future.set_result(_result(reason))
    episode()
    assert not stops
    episode()
    assert stops == [1], "the loop is stopped after the post episodes"
    phases = [(r.phase, r.params_version) for r in ctrl.records]
    v = 1 if reason == "accepted" else 0
    assert phases == [
        (BEFORE, 0),
        (BEFORE, 0),
        (TRANSITION, 0),
        (TRANSITION, 0),
        (AFTER, v),
        (AFTER, v),
    ]
    assert all(r.ret == 3.0 and r.success and r.ticks == 3 for r in ctrl.records)
    outcome = ctrl.outcome()
    assert outcome.reason == reason and outcome.wall_ms > 0
    assert ctrl.act_ns().shape == (18,)


class SequentialFakeAdapter(FakeAdapter):
    """A new adaptation per submission; the test finishes each."""

    def __init__(self) -> None:
        super().__init__()
        self.futures: list[cf.Future[AdaptResult]] = []

    def adapt_async(self) -> cf.Future[AdaptResult]:
        self.submitted += 1
        self.futures.append(cf.Future())
        return self.futures[-1]


def test_sequential_schedule_adapts_after_every_exploration_episode() -> None:
    adapter = SequentialFakeAdapter()
    ctrl, stops, episode = _scored(
        adapter, success=False, episodes=3, reward=0.5, ticks=2, sequential=True
    )

    def finish(reason: str) -> None:
        adapter.version += reason == "accepted"
        adapter.futures[-1].set_result(_result(reason))

    episode()  # meta-parameters
    assert adapter.submitted == 1, "the first adaptation follows the first episode"
    episode()  # the worker is still busy: a transition episode, no new adaptation
    assert adapter.submitted == 1
    finish("accepted")
    episode()  # acts with adaptation 1, then adaptation 2 starts
    assert adapter.submitted == 2
    finish("loss_increase")  # rolled back: the parameters of adaptation 1 stay
    episode()
    assert adapter.submitted == 3
    finish("accepted")
    episode(), episode()
    assert adapter.submitted == 3, "no adaptation after the K-th"
    assert stops == [1]
    assert [(r.phase, r.params_version) for r in ctrl.records] == [
        (BEFORE, 0),
        (TRANSITION, 0),
        (EXPERIENCE, 1),
        (EXPERIENCE, 1),
        (AFTER, 2),
        (AFTER, 2),
    ]
    assert ctrl.adaptations_started == 3
    assert ctrl.outcome().reason == "accepted", "the outcome is the last adaptation's"


def test_deploy_mode_matches_the_scoreboard_schedules() -> None:
    seq = deploy_mode(DeployConfig(bundle="b", sequential=True, keep_on_success=True), 2, 3)
    assert (seq.episodes, seq.steps, seq.once, seq.history, seq.keep_on_success) == (
        1,
        3,
        False,
        2,
        True,
    )
    batch = deploy_mode(DeployConfig(bundle="b"), 2, 3)
    assert (batch.episodes, batch.steps, batch.once, batch.history) == (2, 3, True, None)


def test_point_run_with_the_sequential_schedule(point_bundle: Path, tmp_path: Path) -> None:
    cfg = DeployConfig(
        bundle=point_bundle,
        robot="sim:numpy",
        objects=2,
        episodes=2,
        post_episodes=1,
        sequential=True,
        out_dir=tmp_path,
        **FAST,
    )
    report = run_deploy(cfg)
    assert report.sequential
    table = (tmp_path / "table.md").read_text()
    assert "sequential: 1 episode with the meta-parameters" in table
    assert json.loads((tmp_path / "deploy.json").read_text())["sequential"] is True
    assert (tmp_path / "deploy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for obj in report.objects:
        assert obj.adaptations == 2
        assert obj.episodes[0].phase == BEFORE
        assert len(obj.phase(BEFORE)) == 1 and len(obj.phase(AFTER)) == 1
        assert len(obj.phase(EXPERIENCE)) + len(obj.phase(TRANSITION)) >= 1
        assert obj.to_dict()["adapt"]["count"] == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"robot": "pybullet"}, "robot"),
        ({"robot": "sim:"}, "robot"),
        ({"rate_hz": 0}, "rate_hz"),
        ({"rate_hz": 5000}, "rate_hz"),
        ({"objects": 0}, "objects"),
        ({"episodes": 0}, "episodes"),
        ({"post_episodes": 0}, "post_episodes"),
        ({"steps": 0}, "steps"),
        ({"split": "val"}, "split"),
        ({"seed": -1}, "seed"),
        ({"providers": ()}, "providers"),
        ({"gif": Path("out.mp4")}, "gif"),
    ],
)
def test_bad_config_errors_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: expected"):
        DeployConfig(bundle="b", **fields)  # type: ignore[arg-type]


def test_bundle_and_engine_are_checked_before_any_work(point_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^robot: 'sim:nonsense': family 'point' runs in"):
        run_deploy(DeployConfig(bundle=point_bundle, robot="sim:nonsense", out_dir=tmp_path))
    with pytest.raises(ConfigError, match="use sim:numpy"):
        run_deploy(DeployConfig(bundle=point_bundle))  # default sim:pybullet
    with pytest.raises(ConfigError, match=r"^bundle: .*not a bundle directory"):
        run_deploy(DeployConfig(bundle=tmp_path / "missing", robot="sim:numpy"))
    with pytest.raises(ValueError, match=r"^providers: unknown execution provider"):
        run_deploy(DeployConfig(bundle=point_bundle, robot="sim:numpy", providers=("warp",)))
    assert not list(tmp_path.iterdir())


def test_objects_are_the_tasks_eval_scores() -> None:
    from adapt_robot.jobs import deploy
    from adapt_robot.meta import evaluation
    from adapt_robot.sim.registry import get_family

    assert deploy.TASK_STREAM == evaluation._TASK_STREAM
    family = get_family("grasp")
    tasks = held_out_tasks(family, 4, "test", seed=3)
    assert tasks == held_out_tasks(family, 4, "test", seed=3)
    assert all(family.in_split(t) == "test" for t in tasks)


def test_cli_deploy(
    point_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SystemExit):
        main(["deploy", "--help"])
    helptext = capsys.readouterr().out
    for flag in ("--robot", "--task-split", "--rate", "--objects", "--gif", "--out", "--providers"):
        assert flag in helptext
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")  # main() sets them; keep this process's environment
    out = tmp_path / "report"
    args = ["deploy", str(point_bundle), "--robot", "sim:numpy", "--rate", "1000"]
    args += ["--objects", "2", "--post-episodes", "1", "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "| success before (meta-params) |" in captured.out
    assert f"deploy.json, table.md and deploy.png in {out}/" in captured.out
    assert "object 2/2: before" in captured.err
    assert {p.name for p in out.iterdir()} == {"deploy.json", "table.md", "deploy.png"}
    for bad, flag in (
        (["--robot", "sim:nonsense"], "--robot (robot)"),
        (["--robot", "sim:numpy", "--rate", "0"], "--rate (rate_hz)"),
        (["--robot", "sim:numpy", "--objects", "0"], "--objects (objects)"),
    ):
        assert main(["deploy", str(point_bundle), *bad]) == 2
        err = capsys.readouterr().err
        assert f"adapt-robot deploy: error: {flag}: " in err, err


NO_TORCH = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.modules["torch"] = None  # any `import torch` now raises ImportError

    from adapt_robot.jobs.deploy import DeployConfig, run_deploy
    from adapt_robot.jobs.deploy_output import render_table

    out = Path(sys.argv[2])
    cfg = DeployConfig(
        bundle=sys.argv[1], robot="sim:numpy", objects=1, post_episodes=1, rate_hz=1000.0,
        gif=out / "ba.gif", out_dir=out, progress=False,
    )
    report = run_deploy(cfg)
    assert report.objects[0].phase("after"), render_table(report)
    leaked = sorted(n for n in sys.modules if n.startswith("torch") and sys.modules[n] is not None)
    assert not leaked, leaked
    print("deploy-ok", sorted(p.name for p in out.iterdir()))
    """
)


def test_deploy_runs_without_torch(point_bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(point_bundle), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deploy-ok ['ba.gif', 'deploy.json', 'deploy.png', 'table.md']" in proc.stdout


def test_a_posterior_bundle_deploys_with_the_encoder_as_its_adaptation(
    pearl_bundle: Path, tmp_path: Path
) -> None:
    """PEARL: exploration with z from the prior, then the posterior mean, in the real loop."""
    cfg = DeployConfig(
        bundle=pearl_bundle, robot="sim:numpy", objects=2, post_episodes=1, out_dir=tmp_path, **FAST
    )
    report = run_deploy(cfg)
    assert (
        report.steps == 1
        and report.episodes == Bundle.load(pearl_bundle).manifest.inner_loop.episodes
    )
    for obj in report.objects:
        assert obj.adapted and obj.adapt_reason == "accepted"
        assert all(e.params_version == 0 for e in obj.phase(BEFORE))
        assert all(e.params_version == 1 for e in obj.phase(AFTER))
        assert np.isfinite(obj.adapt_ms) and obj.adapt_ms > 0
        assert np.isnan(obj.loss_before) and np.isfinite(obj.update_norm)
        assert obj.batch_rows == report.episodes * (report.horizon - 1)  # transitions
    with pytest.raises(ConfigError, match=r"^steps: .*posterior.*got 2"):
        run_deploy(DeployConfig(bundle=pearl_bundle, robot="sim:numpy", steps=2, **FAST))
