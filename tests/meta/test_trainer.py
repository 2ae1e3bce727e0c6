from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.config import ConfigError
from adapt_robot.jobs.train import run_train
from adapt_robot.meta.algorithms import MAML, TrainingDiverged
from adapt_robot.meta.train_config import load_train_config
from adapt_robot.meta.trainer import build_learner, load_checkpoint, load_run

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "launch" / "smoke.yaml")
TINY = [
    "policy.hidden=[16, 16]",
    "sampler.tasks_per_iter=4",
    "sampler.episodes_per_task=4",
    "eval.tasks=4",
    "eval.episodes_per_task=4",
    "eval.every=3",
    "checkpoint_every=2",
]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def strip_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "env_steps_per_s")} for r in rows]


def test_smoke_run_adaptation_beats_pre_adaptation_and_untrained(tmp_path: Path) -> None:
    run = run_train(
        SMOKE, [f"out_dir={tmp_path}", "budget.iterations=40", "eval.every=40"], resume=False
    )
    cfg, learner, _ = load_run(run)
    fresh = build_learner(cfg)
    family = learner.sampler.family
    tasks = family.sample_tasks(np.random.default_rng(123), 10, "test")
    gains, fresh_gains, pres = [], [], []
    for s in range(3):
        ev = learner.evaluate(tasks, np.random.default_rng([s, 1]), 10)
        ev0 = fresh.evaluate(tasks, np.random.default_rng([s, 1]), 10)
        gains.append(ev["post_return"] - ev["pre_return"])
        fresh_gains.append(ev0["post_return"] - ev0["pre_return"])
        pres.append(ev["pre_return"])
    noise = float(np.std(pres)) + float(np.std(gains))
    # Held-out goals: one inner step after meta-training gains far more than seed noise, and
    # far more than the same step from an untrained policy.
    assert min(gains) > 1.0 and min(gains) > 5 * noise, (gains, pres)
    assert min(gains) > max(fresh_gains) + 1.0, (gains, fresh_gains)
    rows = metrics(run)
    assert [r["iteration"] for r in rows] == list(range(1, 41))
    assert "eval" in rows[-1] and rows[-1]["total_env_steps"] == 40 * 2 * 10 * 10 * 20
    assert (run / "config.yaml").is_file()


def test_same_seed_same_result_and_different_seed_differs(tmp_path: Path) -> None:
    runs = [
        run_train(
            SMOKE,
            [*TINY, f"out_dir={tmp_path / name}", f"seed={seed}", "budget.iterations=3"],
            resume=False,
        )
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    ]
    a, b, c = (strip_timing(metrics(r)) for r in runs)
    assert a == b
    assert a != c


def test_wall_clock_budget_stops_with_a_checkpoint_and_a_learning_curve(tmp_path: Path) -> None:
    # One iteration takes longer than 0.0001 minutes (6 ms): the run stops after it, checkpointed
    # and evaluated, although 50 iterations were allowed.
    overrides = [*TINY, f"out_dir={tmp_path}", "budget.iterations=50", "budget.minutes=0.0001"]
    run_train(SMOKE, overrides, resume=False)
    rows = metrics(tmp_path)
    assert [r["iteration"] for r in rows] == [1]
    assert "eval" in rows[0]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 1
    png = tmp_path / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    run_train(SMOKE, [*TINY, f"out_dir={tmp_path}", "budget.iterations=1"], resume=False)
    with pytest.raises(FileExistsError, match="resume"):
        run_train(SMOKE, [*TINY, f"out_dir={tmp_path}", "budget.iterations=1"], resume=False)


@pytest.mark.parametrize(
    "algo",
    [
        [],
        ["algo={name: rl2, trial_episodes: 2, dagger_iterations: 10}"],
        [
            "algo={name: pearl, train_tasks: 6, replay_size: 64, grad_steps: 2, meta_batch: 3, "
            "batch_size: 8, context_size: 10, encoder_hidden: [8], critic_hidden: [8], "
            "bc_coef: 0.5, expert_beta: 0.5, beta_iterations: 10}",
            "policy.adapt=context",
        ],
    ],
    ids=["maml", "rl2", "pearl"],
)
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path: Path, algo: list[str]) -> None:
    """Killed mid-run and resumed: the same curve and parameters as a run never killed (RL²:
    across its switch from DAgger to PPO, with its value function and schedule restored;
    PEARL: with its critics, targets, temperature, optimisers and per-task replay)."""
    overrides = [*TINY, "budget.iterations=30", *algo]
    killed = tmp_path / "killed"
    code = (
        "import sys\n"
        "from adapt_robot.jobs.train import run_train\n"
        "run_train(sys.argv[1], sys.argv[2:], False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, SMOKE, *overrides, f"out_dir={killed}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = killed / "checkpoint.pt"
    deadline = time.monotonic() + 60
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert ckpt.exists(), "the trainer wrote no checkpoint"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    at_kill = load_checkpoint(ckpt)["iteration"]
    assert at_kill < 30
    run_train(SMOKE, [*overrides, f"out_dir={killed}"], resume=True)
    full = run_train(SMOKE, [*overrides, f"out_dir={tmp_path / 'full'}"], resume=False)
    resumed_rows = strip_timing(metrics(killed))
    assert [r["iteration"] for r in resumed_rows] == list(range(1, 31))
    assert resumed_rows == strip_timing(metrics(full))
    _, learner, ckpt_data = load_run(killed)
    assert ckpt_data["iteration"] == 30
    _, learner_full, _ = load_run(full)
    for k, v in learner.params.items():
        torch.testing.assert_close(v, learner_full.params[k], rtol=0, atol=0)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = MAML.meta_loss
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        loss, kl = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 2 * 3:  # iterations 1-2 (3 outer steps each) are fine
            loss = loss * float("nan")
        return loss, kl

    monkeypatch.setattr(MAML, "meta_loss", poisoned)
    with pytest.raises(
        TrainingDiverged,
        match=r"iteration 3: maml outer loss is not finite"
        r".*last good checkpoint .*checkpoint.pt is intact",
    ):
        run_train(SMOKE, [*TINY, f"out_dir={tmp_path}", "budget.iterations=5"], resume=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["iteration"] == 2
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["learner"]["params"].values())
    assert [r["iteration"] for r in metrics(tmp_path)] == [1, 2]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "algo.name=sgd",
            r"algo\.name: expected one of \['latent_id', 'law_id', 'maml', 'pearl', "
            r"'ppo_dr', 'reptile', 'rl2'\], got 'sgd'",
        ),
        ("algo.inner_lrr=0.1", r"algo\.inner_lrr: unknown key"),
        ("algo.outer_lr=0", r"algo\.outer_lr: expected a value > 0, got 0"),
        ("algo.inner_lr=-1", r"algo\.inner_lr: expected a value > 1e-06"),
        ("algo.inner_lr=5e-7", r"algo\.inner_lr: expected a value > 1e-06, got 5e-07"),
        ("algo.inner_steps=4", r"algo\.inner_steps: expected a value <= 3"),
        ("budget.env_steps=0", r"budget\.env_steps: expected a value > 0, got 0"),
        ("budget.iterations=0", r"budget\.iterations: expected a value > 0"),
        ("family=nope", r"family: unknown task family 'nope'"),
        ("sampler.engine=mujoco", r"sampler\.engine: family 'point' supports \['numpy'\]"),
        ("policy.hidden=fast", r"policy\.hidden: expected a list"),
        ("sampler.gamma=1.5", r"sampler\.gamma: expected a value <= 1"),
        ("algo=3", r"algo: expected a mapping"),
    ],
)
def test_bad_config_rejected_with_key_path_before_any_work(
    tmp_path: Path, override: str, message: str
) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        run_train(SMOKE, [f"out_dir={out}", override], resume=False)
    assert not out.exists()


def test_reptile_fields_validated_against_reptile_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"algo\.outer_steps: unknown key"):
        load_train_config(SMOKE, ["algo.name=reptile"])  # smoke.yaml sets maml's outer_steps
    cfg = load_train_config(
        SMOKE,
        ["algo={name: reptile, inner_lr: 0.1, train_steps: 2}", f"out_dir={tmp_path}"],
    )
    assert cfg.algo.name == "reptile"


@pytest.mark.parametrize(
    "algo",
    [
        "{name: reptile, train_steps: 2}",
        "{name: ppo_dr, epochs: 2}",
        "{name: maml, meta_sgd: true, outer_lr: 0.01}",
        "{name: maml, first_order: true, inner_steps: 2}",
        "{name: maml, lvc: true}",
        "{name: rl2, trial_episodes: 2, dagger_iterations: 1, bc_coef: 0.5}",
    ],
)
def test_every_algorithm_runs_and_checkpoints(tmp_path: Path, algo: str) -> None:
    run = run_train(
        SMOKE, [*TINY, f"out_dir={tmp_path}", f"algo={algo}", "budget.iterations=3"], resume=False
    )
    rows = metrics(run)
    assert len(rows) == 3 and all(np.isfinite(r["pre_return"]) for r in rows)
    ev = rows[-1]["eval"]
    assert set(ev) == {"pre_return", "post_return", "pre_success", "post_success"}
    _, learner, _ = load_run(run)
    assert all(bool((v > 0).all()) for v in learner.lrs().values())
    if "meta_sgd" in algo:
        lrs = torch.cat([v.flatten() for v in learner.lrs().values()])
        assert lrs.numel() == sum(p.numel() for p in learner.params.values())
        assert float((lrs - 0.1).abs().max()) > 1e-4  # the rates were meta-learned


@pytest.mark.parametrize("mode", ["head", "context"])
def test_adapted_subsets_train(tmp_path: Path, mode: str) -> None:
    run = run_train(
        SMOKE,
        [*TINY, f"out_dir={tmp_path}", f"policy.adapt={mode}", "budget.iterations=2"],
        resume=False,
    )
    _, learner, _ = load_run(run)
    expected = ["context"] if mode == "context" else ["l2.w", "l2.b", "log_std"]
    assert list(learner.lrs()) == expected
    assert ("context" in learner.params) == (mode == "context")
