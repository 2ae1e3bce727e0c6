"""Warm start by cloning the scripted experts: demonstrations, the fit, and the trainer's use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from adapt_robot.jobs.train import run_train
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.trainer import load_checkpoint
from adapt_robot.meta.warm_start import WarmStartConfig, clone, demonstrate
from adapt_robot.sim.registry import get_family
from tests.meta.test_trainer import SMOKE, TINY

DOOR = get_family("door")


def test_demonstrations_are_live_expert_steps_within_bounds() -> None:
    cfg = WarmStartConfig(tasks=3, episodes_per_task=2, action_noise=0.0, envs=4)
    d = demonstrate(DOOR, "mujoco", cfg, np.random.default_rng(0))
    assert d.obs.shape == (d.env_steps, DOOR.obs_spec.dim)
    assert d.act.shape == (d.env_steps, DOOR.action_spec.dim)
    assert d.success.shape == (6,)
    # Noise-free experts on their own doors open them (the solvability check of the family).
    assert d.success.all()
    assert (d.act >= DOOR.action_spec.low).all() and (d.act <= DOOR.action_spec.high).all()
    again = demonstrate(DOOR, "mujoco", cfg, np.random.default_rng(0))
    np.testing.assert_array_equal(d.obs, again.obs)


def test_noise_moves_only_the_first_noise_dims_and_keeps_labels_clean() -> None:
    base = WarmStartConfig(tasks=2, episodes_per_task=1, action_noise=0.0, envs=2)
    noisy = WarmStartConfig(tasks=2, episodes_per_task=1, action_noise=0.3, envs=2)
    a = demonstrate(DOOR, "mujoco", base, np.random.default_rng(0))
    b = demonstrate(DOOR, "mujoco", noisy, np.random.default_rng(0))
    assert not np.array_equal(a.obs, b.obs)  # the executed actions differed
    # The labels are what the expert asked for: still within bounds, never the noisy action.
    assert (np.abs(b.act) <= 1.0).all()


def test_cloning_fits_the_expert_actions() -> None:
    cfg = WarmStartConfig(
        tasks=4, episodes_per_task=1, action_noise=0.0, epochs=30, envs=4, batch_size=64
    )
    d = demonstrate(DOOR, "mujoco", cfg, np.random.default_rng(1))
    policy = GaussianMLPPolicy(DOOR.obs_spec.dim, DOOR.action_spec.dim, PolicyConfig())
    params = {
        k: v.requires_grad_(True)
        for k, v in policy.init_params(torch.Generator().manual_seed(0)).items()
    }
    log_std = params["log_std"].detach().clone()
    losses = clone(policy, params, d, cfg, torch.Generator().manual_seed(0))
    assert losses[-1] < 0.25 * losses[0]
    assert torch.equal(params["log_std"].detach(), log_std)
    # The normaliser saw the demonstrations.
    assert policy.normalizer.count >= d.obs.shape[0]


def test_trainer_warm_starts_once_counts_its_steps_and_checkpoints_it(tmp_path: Path) -> None:
    over = [
        *TINY,
        "family=door",
        f"out_dir={tmp_path}",
        "warm_start.tasks=2",
        "warm_start.episodes_per_task=1",
        "warm_start.epochs=2",
        "budget.iterations=1",
    ]
    run = run_train(SMOKE, over, resume=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["iteration"] == 0 and rows[0]["warm_start"]["demo_rows"] > 0
    warm_steps = rows[0]["total_env_steps"]
    assert rows[1]["total_env_steps"] == warm_steps + rows[1]["env_steps"]
    # Resuming with a larger budget continues from iteration 1; no second warm start.
    run_train(SMOKE, [*over[:-1], "budget.iterations=2"], resume=True)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 2


def test_normalizer_keeps_the_demonstration_statistics_unless_asked(tmp_path: Path) -> None:
    over = [
        *TINY,
        "family=door",
        "warm_start.tasks=2",
        "warm_start.episodes_per_task=1",
        "warm_start.epochs=1",
        "budget.iterations=2",
    ]
    norms = {}
    for freeze in ("true", "false"):
        run = run_train(
            SMOKE,
            [*over, f"out_dir={tmp_path / freeze}", f"warm_start.freeze_normalizer={freeze}"],
            resume=False,
        )
        norms[freeze] = load_checkpoint(run / "checkpoint.pt")["learner"]["normalizer"]
    frozen, live = norms["true"], norms["false"]
    assert frozen["frozen"] and not live["frozen"]
    # Same demonstrations (same seed); only the unfrozen run folded in live rollouts.
    demo_rows = 1 * 2 * 120  # episodes x tasks x horizon (door episodes run to the limit)
    assert frozen["count"] <= demo_rows < live["count"]
    assert frozen["mean"] != live["mean"]
