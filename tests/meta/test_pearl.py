"""PEARL: the context posterior by hand, the encoder's invariances, the replay and the learner."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.config import ConfigError
from adapt_robot.meta.algorithms.pearl import PEARL, TaskReplay, actor_objective
from adapt_robot.meta.context_encoder import (
    ContextEncoder,
    gaussian_kl_to_prior,
    product_of_gaussians,
)
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.train_config import load_train_config
from adapt_robot.meta.trainer import build_learner
from adapt_robot.runtime.buffer import ContextBatch, pack_context

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "launch" / "smoke_pearl.yaml")


def test_posterior_of_two_gaussian_factors_by_hand() -> None:
    """Prior N(0, 1) times N(1, 0.5) times N(-2, 2): precision 1 + 2 + 0.5 = 3.5, mean
    (0 + 1 * 2 + (-2) * 0.5) / 3.5 = 1 / 3.5; a padded third row (NaN) counts for nothing."""
    mu = torch.tensor([[1.0, 0.0], [-2.0, 0.0], [float("nan"), float("nan")]])
    var = torch.tensor([[0.5, 1.0], [2.0, 1.0], [float("nan"), float("nan")]])
    mean, post_var = product_of_gaussians(mu, var, torch.tensor([1.0, 1.0, 0.0]))
    assert mean[0].item() == pytest.approx(1 / 3.5)
    assert post_var[0].item() == pytest.approx(1 / 3.5)
    assert mean[1].item() == pytest.approx(0.0)  # two factors N(0, 1) and the prior
    assert post_var[1].item() == pytest.approx(1 / 3)
    empty_mean, empty_var = product_of_gaussians(mu, var, torch.zeros(3))
    assert empty_mean.tolist() == [0.0, 0.0] and empty_var.tolist() == [1.0, 1.0]


def test_kl_to_prior_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g, dtype=torch.float64)
    var = torch.rand(5, 3, generator=g, dtype=torch.float64) + 0.1
    q = torch.distributions.Normal(mean, var.sqrt())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(var))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl_to_prior(mean, var), expected)


def _encoder(z_dim: int = 3) -> tuple[ContextEncoder, dict[str, torch.Tensor]]:
    cfg = PolicyConfig(hidden=(8,), adapt="context", context_dim=z_dim)
    policy = GaussianMLPPolicy(5, 2, cfg)
    rng = np.random.default_rng(0)
    policy.normalizer.update(rng.normal(size=(64, 5)))
    enc = ContextEncoder(policy, (16,))
    params = enc.init_params(torch.Generator().manual_seed(1))
    return enc, {k: v.double() for k, v in params.items()}


def _context(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, 5, generator=g, dtype=torch.float64),
        torch.randn(n, 2, generator=g, dtype=torch.float64),
        torch.randn(n, generator=g, dtype=torch.float64),
        torch.randn(n, 5, generator=g, dtype=torch.float64),
    )


def test_encoder_posterior_is_order_and_padding_invariant_and_the_prior_when_empty() -> None:
    enc, params = _encoder()
    obs, act, rew, nxt = _context(7, 2)
    mask = torch.ones(7, dtype=torch.float64)
    mean, var = enc.posterior(params, obs, act, rew, nxt, mask)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(3))
    m2, v2 = enc.posterior(params, obs[perm], act[perm], rew[perm], nxt[perm], mask)
    torch.testing.assert_close((m2, v2), (mean, var))
    pad = torch.full((4, 5), float("nan"), dtype=torch.float64)
    padded = enc.posterior(
        params,
        torch.cat([obs, pad]),
        torch.cat([act, torch.zeros(4, 2, dtype=torch.float64)]),
        torch.cat([rew, torch.full((4,), float("inf"), dtype=torch.float64)]),
        torch.cat([nxt, pad]),
        torch.cat([mask, torch.zeros(4, dtype=torch.float64)]),
    )
    torch.testing.assert_close(padded, (mean, var))
    assert bool((var < 1).all())  # seven transitions sharpen the prior
    empty = enc.posterior(params, obs, act, rew, nxt, torch.zeros(7, dtype=torch.float64))
    torch.testing.assert_close(empty, (torch.zeros(3).double(), torch.ones(3).double()))


def test_posterior_gradient_in_the_encoder_matches_finite_differences() -> None:
    enc, params = _encoder()
    obs, act, rew, nxt = _context(6, 4)
    mask = torch.tensor([1, 1, 1, 1, 0, 1], dtype=torch.float64)
    names = list(params)

    def f(*values: torch.Tensor) -> torch.Tensor:
        mean, var = enc.posterior(dict(zip(names, values, strict=True)), obs, act, rew, nxt, mask)
        return torch.cat([mean, var.log()])

    inputs = tuple(v.clone().requires_grad_(True) for v in params.values())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_pack_context_pairs_steps_of_one_episode_with_their_reward_and_keeps_the_latest() -> None:
    obs = np.arange(2 * 4 * 1, dtype=np.float32).reshape(2, 4, 1)  # episode e, step t: 4e + t
    act = obs + 100
    rew = obs[..., 0].astype(np.float64) + 0.5
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float64)
    out = ContextBatch.zeros(8, 1, 1)
    assert pack_context(obs, act, rew, mask, out) == 3  # (0->1), (1->2), (4->5)
    assert out.obs[:3, 0].tolist() == [0, 1, 4]
    assert out.next_obs[:3, 0].tolist() == [1, 2, 5]
    assert out.act[:3, 0].tolist() == [100, 101, 104]
    assert out.rew[:3].tolist() == [0.5, 1.5, 4.5]
    assert out.mask.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    small = ContextBatch.zeros(2, 1, 1)
    assert pack_context(obs, act, rew, mask, small) == 2
    assert small.obs[:, 0].tolist() == [1, 4]  # the latest two


def test_task_replay_overwrites_the_oldest_and_samples_only_recent_rows() -> None:
    replay = TaskReplay(tasks=2, size=5, obs_dim=1, act_dim=1)

    def rows(start: int, n: int) -> dict[str, np.ndarray]:
        v = np.arange(start, start + n, dtype=np.float32)
        return {
            "obs": v[:, None],
            "act": v[:, None],
            "rew": v,
            "next_obs": v[:, None] + 1,
            "term": np.zeros(n, np.float32),
            "label": v[:, None],
        }

    replay.add(0, **rows(0, 4))
    replay.add(0, **rows(4, 4))  # 8 added into 5 rows: 3..7 remain
    replay.add(1, **rows(50, 2))
    assert sorted(replay.obs[0, :, 0].tolist()) == [3, 4, 5, 6, 7]
    rng = np.random.default_rng(0)
    got = replay.sample(np.array([0, 1]), 200, rng)
    assert set(got["rew"][0].tolist()) == {3, 4, 5, 6, 7}
    assert set(got["rew"][1].tolist()) == {50, 51}
    recent = replay.sample(np.array([0]), 200, rng, recent=2)
    assert set(recent["rew"][0].tolist()) == {6, 7}


def test_pearl_refuses_a_policy_without_a_latent_input(tmp_path: Path) -> None:
    cfg = load_train_config(SMOKE, [f"out_dir={tmp_path}", "policy.adapt=all"])
    with pytest.raises(
        (ValueError, ConfigError), match=r"policy\.adapt: pearl conditions on a latent"
    ):
        build_learner(cfg)


def test_an_update_trains_actor_critics_and_encoder_but_never_the_prior_mean(
    tmp_path: Path,
) -> None:
    learner = build_learner(load_train_config(SMOKE, [f"out_dir={tmp_path}"]))
    assert isinstance(learner, PEARL)
    before = {k: v.detach().clone() for k, v in learner.params.items()}
    critics = {k: v.detach().clone() for k, v in learner.critics.items()}
    metrics = learner.iteration(np.random.default_rng(0))
    assert all(math.isfinite(v) for v in metrics.values())
    changed = {k for k, v in learner.params.items() if not torch.equal(v, before[k])}
    assert "context" not in changed and torch.equal(learner.params["context"], torch.zeros(2))
    assert any(k.startswith("enc.") for k in changed) and "l0.w" in changed
    assert any(not torch.equal(v, critics[k]) for k, v in learner.critics.items())
    for k, v in learner.targets.items():  # polyak: between the old and the new critic
        assert not torch.equal(v, critics[k]) and not torch.equal(v, learner.critics[k])
    assert learner.replay.count.sum() == metrics["env_steps"]
    learner.close()


def test_q_normalised_actor_objective_is_blind_to_the_scale_of_the_returns() -> None:
    """TD3+BC's lambda = 1 / mean|Q|: Q = (-2, -6) gives mean(-Q) / 4 = -1, and returns 100
    times larger give the same loss and the same gradient in the actor's Q; raw, 100 times it."""
    grads = []
    for scale in (1.0, 100.0):
        q = torch.tensor([-2.0, -6.0]) * scale
        q.requires_grad_(True)
        loss = actor_objective(-q, q, normalize=True)
        loss.backward()
        assert loss.item() == pytest.approx(1.0)  # mean(2, 6) * scale / (4 * scale)
        assert q.grad is not None
        grads.append(q.grad * scale)  # d loss / d (q / scale)
    torch.testing.assert_close(grads[0], grads[1])
    torch.testing.assert_close(grads[0], torch.tensor([-0.125, -0.125]))
    raw = torch.tensor([-200.0, -600.0])
    assert actor_objective(-raw, raw, normalize=False).item() == pytest.approx(400.0)
