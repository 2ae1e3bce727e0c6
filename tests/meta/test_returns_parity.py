"""The robot's returns/GAE/baseline (numpy runtime) equal the training path's advantages.

The trainer's :class:`Rollouts` carry ``adv``; the robot recomputes advantages from its own
rewards, masks and observations with :mod:`adapt_robot.runtime.advantages`, configured from
the bundle's ``inner_loop`` settings. Here both are compared on sampled batches, per task, and
against an independent loop-by-loop implementation written from the definitions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.samplers.local import Rollouts, Sampler
from adapt_robot.runtime.advantages import AdvantageSettings
from adapt_robot.sim.families.point import PointFamily

CONFIGS = [
    SamplerConfig(),  # the launch-file defaults: gamma 0.99, lambda 1, linear, normalised
    SamplerConfig(gamma=0.9, gae_lambda=0.95, normalize_adv=False),
    SamplerConfig(gamma=0.97, gae_lambda=0.5, baseline="none"),
    SamplerConfig(gamma=1.0, gae_lambda=1.0, baseline_reg=1e-2),
]


def sample(cfg: SamplerConfig, seed: int = 0) -> tuple[Sampler, Rollouts]:
    family = PointFamily()
    policy = GaussianMLPPolicy(2, 2, PolicyConfig(hidden=(16,)))
    params = policy.init_params(torch.Generator().manual_seed(seed))
    sampler = Sampler(family, policy, dataclasses.replace(cfg, episodes_per_task=3))
    tasks = family.sample_tasks(np.random.default_rng(seed), 4, "train")
    return sampler, sampler.sample(params, tasks, np.random.default_rng(seed + 1))


def reference(obs: np.ndarray, rew: np.ndarray, mask: np.ndarray, cfg: SamplerConfig) -> np.ndarray:
    """One task's advantages, step by step from the definitions (prefix masks)."""
    e_count = rew.shape[0]
    lengths = mask.sum(axis=1).astype(int)
    live = [(e, t) for e in range(e_count) for t in range(lengths[e])]
    ret = np.zeros_like(rew)
    for e in range(e_count):
        g = 0.0
        for t in reversed(range(lengths[e])):
            g = rew[e, t] + cfg.gamma * g
            ret[e, t] = g
    values = np.zeros_like(rew)
    if cfg.baseline == "linear":
        rows = []
        for e, t in live:
            o = np.clip(obs[e, t].astype(np.float64), -10, 10)
            s = t / 100.0
            rows.append(np.concatenate([o, o**2, [s, s**2, s**3, 1.0]]))
        f = np.array(rows)
        y = np.array([ret[e, t] for e, t in live])
        w = np.linalg.solve(f.T @ f + cfg.baseline_reg * np.eye(f.shape[1]), f.T @ y)
        for (e, t), v in zip(live, f @ w, strict=True):
            values[e, t] = v
    adv = np.zeros_like(rew)
    for e in range(e_count):
        a = 0.0
        for t in reversed(range(lengths[e])):
            nxt = values[e, t + 1] if t + 1 < lengths[e] else 0.0
            a = rew[e, t] + cfg.gamma * nxt - values[e, t] + cfg.gamma * cfg.gae_lambda * a
            adv[e, t] = a
    if cfg.normalize_adv:
        x = np.array([adv[e, t] for e, t in live])
        for e, t in live:
            adv[e, t] = (adv[e, t] - x.mean()) / (x.std() + 1e-8)
    return adv


@pytest.mark.parametrize("cfg", CONFIGS, ids=["defaults", "gae_raw", "no_baseline", "ridge"])
def test_runtime_recomputation_equals_the_rollouts_advantages(cfg: SamplerConfig) -> None:
    sampler, roll = sample(cfg)
    robot = AdvantageSettings.from_inner_loop(sampler.cfg)
    assert roll.n_tasks == 4 and roll.episodes_per_task == 3
    for i in range(roll.n_tasks):
        s = roll.task_slice(i)
        on_robot = robot.compute(roll.obs[s], roll.rew[s], roll.mask[s])
        np.testing.assert_array_equal(on_robot, roll.adv[s])
        np.testing.assert_allclose(
            reference(roll.obs[s], roll.rew[s], roll.mask[s], sampler.cfg),
            roll.adv[s],
            rtol=1e-7,
            atol=1e-9,
        )
        # The inner step sees exactly these numbers (in the policy's dtype).
        np.testing.assert_array_equal(
            roll.task_batch(i).adv.numpy(), roll.adv[s].reshape(-1).astype(np.float32)
        )


def test_baseline_is_fit_per_task_not_across_tasks() -> None:
    sampler, roll = sample(CONFIGS[1])
    whole = AdvantageSettings.from_inner_loop(sampler.cfg).compute(roll.obs, roll.rew, roll.mask)
    # One fit over all tasks gives other numbers: the per-task fit is what both sides share.
    assert not np.allclose(whole, roll.adv, atol=1e-6)


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=["defaults", "gae_raw"])
def test_padded_episodes_agree_and_stay_zero_on_padding(cfg: SamplerConfig) -> None:
    sampler, roll = sample(cfg, seed=3)
    rng = np.random.default_rng(9)
    lengths = rng.integers(3, roll.rew.shape[1] + 1, size=roll.rew.shape[0])
    mask = (np.arange(roll.rew.shape[1])[None, :] < lengths[:, None]).astype(np.float64)
    rew, obs = roll.rew * mask, roll.obs * mask[..., None]
    adv = sampler.advantages(obs, rew, mask, roll.n_tasks, roll.episodes_per_task)
    robot = AdvantageSettings.from_inner_loop(sampler.cfg)
    for i in range(roll.n_tasks):
        s = roll.task_slice(i)
        np.testing.assert_array_equal(robot.compute(obs[s], rew[s], mask[s]), adv[s])
        np.testing.assert_allclose(
            reference(obs[s], rew[s], mask[s], sampler.cfg), adv[s], rtol=1e-7, atol=1e-9
        )
    assert np.all(adv[mask == 0] == 0.0) and np.any(mask == 0)
