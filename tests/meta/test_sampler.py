from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.runtime import discounted_returns, gae, linear_baseline, normalize_advantages
from adapt_robot.sim.families.point import PointFamily


def make(**kw):
    family = PointFamily()
    pol = GaussianMLPPolicy(2, 2, PolicyConfig(hidden=(16,)))
    params = pol.init_params(torch.Generator().manual_seed(0))
    cfg = SamplerConfig(tasks_per_iter=3, episodes_per_task=4, **kw)
    return family, pol, params, Sampler(family, pol, cfg)


def test_shapes_masks_and_task_grouping() -> None:
    family, _, params, sampler = make()
    tasks = family.sample_tasks(np.random.default_rng(0), 3, "train")
    r = sampler.sample(params, tasks, np.random.default_rng(1))
    assert r.obs.shape == (12, 20, 2) and r.act.shape == (12, 20, 2)
    assert r.rew.shape == r.mask.shape == r.adv.shape == (12, 20)
    assert r.success.shape == (12,) and r.env_steps == 12 * 20
    b = r.task_batch(1)
    assert b.obs.shape == (4 * 20, 2) and b.adv.shape == (80,)
    np.testing.assert_array_equal(b.obs.numpy(), r.obs[4:8].reshape(-1, 2))
    # Rewards are those of each episode's own task: minus the distance to its goal.
    goal = np.array([tasks[2].goal_x, tasks[2].goal_y])
    nxt = np.concatenate([r.obs[8:12, 1:], np.zeros((4, 1, 2))], axis=1)[:, :-1]
    np.testing.assert_allclose(r.rew[8:12, :-1], -np.linalg.norm(nxt - goal, axis=-1), atol=1e-5)


def test_same_seed_same_rollouts() -> None:
    family, _, params, sampler = make()
    tasks = family.sample_tasks(np.random.default_rng(0), 3, "train")
    a = sampler.sample(params, tasks, np.random.default_rng(5))
    b = sampler.sample(params, tasks, np.random.default_rng(5))
    c = sampler.sample(params, tasks, np.random.default_rng(6))
    np.testing.assert_array_equal(a.act, b.act)
    np.testing.assert_array_equal(a.adv, b.adv)
    assert not np.array_equal(a.act, c.act)


def test_per_task_params_list_and_stacked_agree_and_are_used() -> None:
    family, _, params, sampler = make()
    tasks = family.sample_tasks(np.random.default_rng(0), 3, "train")
    per = [{k: v.clone() for k, v in params.items()} for _ in range(3)]
    per[1]["l1.b"] = torch.tensor([5.0, -5.0])  # task 1 heads right/down at full speed
    per[1]["log_std"] = torch.full((2,), -8.0)
    a = sampler.sample(per, tasks, np.random.default_rng(2))
    stacked = {k: torch.stack([p[k] for p in per]) for k in params}
    b = sampler.sample(stacked, tasks, np.random.default_rng(2), per_task=True)
    np.testing.assert_array_equal(a.act, b.act)
    np.testing.assert_allclose(a.act[4:8], np.tile([1.0, -1.0], (4, 20, 1)), atol=1e-2)
    assert np.abs(a.act[0:4].mean()) < 0.5


def test_advantages_are_the_runtime_computation() -> None:
    family, _, params, sampler = make(gamma=0.9, gae_lambda=0.95)
    tasks = family.sample_tasks(np.random.default_rng(0), 3, "train")
    r = sampler.sample(params, tasks, np.random.default_rng(3))
    s = r.task_slice(2)
    ret = discounted_returns(r.rew[s], r.mask[s], 0.9)
    v = linear_baseline(r.obs[s], ret, r.mask[s], 1e-5)
    expected = normalize_advantages(gae(r.rew[s], v, r.mask[s], 0.9, 0.95), r.mask[s])
    np.testing.assert_allclose(r.adv[s], expected)


def test_wrong_number_of_params_rejected() -> None:
    family, _, params, sampler = make()
    tasks = family.sample_tasks(np.random.default_rng(0), 3, "train")
    with pytest.raises(ValueError, match=r"params: expected one set per task \(3\), got 2"):
        sampler.sample([params, params], tasks, np.random.default_rng(0))
