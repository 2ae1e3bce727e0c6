"""The transition encoder (RMA-style history -> z): its estimate, its loss, and one step onto it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt_robot.meta.identification import (
    IdentificationLoss,
    TransitionEncoder,
    model_fit,
    transition_model,
)
from adapt_robot.meta.inner import InnerBatch, inner_step, positive_rates, stack_batches
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig


def _encoder(obs_dim: int = 3, act_dim: int = 2, z_dim: int = 2) -> TransitionEncoder:
    policy = GaussianMLPPolicy(
        obs_dim, act_dim, PolicyConfig(hidden=(8,), adapt="context", context_dim=z_dim)
    )
    return TransitionEncoder(policy, (16,))


def _params(enc: TransitionEncoder, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = {k: v.double() for k, v in enc.init_params(gen).items()}
    # A head large enough that the estimate is not near 0 for every batch.
    params["id.h.l0.w"] = params["id.h.l0.w"] * 30.0
    return params


def _batch(rng: np.random.Generator, n: int, live: int, obs_dim: int = 3) -> InnerBatch:
    obs = torch.as_tensor(rng.standard_normal((n, obs_dim)))
    mask = torch.zeros(n, dtype=torch.float64)
    mask[:live] = 1.0
    return InnerBatch(
        obs=obs,
        act=torch.as_tensor(rng.uniform(-1, 1, (n, 2))),
        adv=torch.zeros(n, dtype=torch.float64),
        mask=mask,
        next_obs=obs + 0.3 * torch.as_tensor(rng.standard_normal((n, obs_dim))),
    )


def _estimate(
    enc: TransitionEncoder, params: dict[str, torch.Tensor], b: InnerBatch
) -> torch.Tensor:
    assert b.next_obs is not None
    return enc.estimate(params, b.obs, b.act, b.next_obs, b.mask)


def test_the_estimate_pools_live_rows_by_mean_and_max_by_hand() -> None:
    enc = _encoder()
    params = _params(enc, 0)
    b = _batch(np.random.default_rng(0), 7, 5)
    assert b.next_obs is not None
    h = enc.features(params, b.obs, b.act, b.next_obs)[:5]
    pooled = torch.cat([h.mean(0), h.max(0).values])
    want = torch.tanh(pooled @ params["id.h.l0.w"].T + params["id.h.l0.b"])
    assert torch.allclose(_estimate(enc, params, b), want, atol=1e-12)


def test_padding_and_row_order_do_not_change_the_estimate() -> None:
    enc = _encoder()
    params = _params(enc, 1)
    b = _batch(np.random.default_rng(1), 9, 6)
    assert b.next_obs is not None
    junk = b.next_obs.clone()
    junk[6:] = 1e3  # dead rows
    perm = torch.tensor([5, 3, 0, 1, 4, 2, 6, 7, 8])  # live rows reordered, dead rows kept
    other = InnerBatch(
        obs=b.obs[perm], act=b.act[perm], adv=b.adv, mask=b.mask, next_obs=junk[perm]
    )
    assert torch.allclose(_estimate(enc, params, b), _estimate(enc, params, other), atol=1e-12)


def test_one_step_at_rate_one_lands_on_the_estimate() -> None:
    enc = _encoder()
    params = _params(enc, 2)
    params["context"] = torch.tensor([0.4, -0.7], dtype=torch.float64)
    b = _batch(np.random.default_rng(2), 8, 8)
    rate = {"context": torch.ones(2, dtype=torch.float64)}
    loss = IdentificationLoss(enc)
    new, value, gnorm = inner_step(enc.policy, params, rate, b, create_graph=False, loss_fn=loss)
    phi = _estimate(enc, params, b)
    assert torch.allclose(new["context"], phi, atol=1e-12)
    gap = params["context"] - phi
    assert float(value) == pytest.approx(0.5 * float((gap**2).sum()), rel=1e-12)
    assert float(gnorm) == pytest.approx(float(gap.norm()), rel=1e-9)


def test_gradient_in_z_and_in_the_encoder_match_finite_differences() -> None:
    enc = _encoder()
    params = _params(enc, 3)
    b = _batch(np.random.default_rng(3), 9, 7)
    loss = IdentificationLoss(enc)

    def of_z(z: torch.Tensor) -> torch.Tensor:
        return loss({**params, "context": z}, b)

    z = torch.tensor([0.2, 0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(of_z, (z,), eps=1e-6, atol=1e-7)

    def of_head(w: torch.Tensor) -> torch.Tensor:
        return loss({**params, "id.h.l0.w": w, "context": z.detach()}, b)

    w = params["id.h.l0.w"].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(of_head, (w,), eps=1e-6, atol=1e-7)


def test_with_no_live_row_the_loss_is_zero_and_the_latent_stays() -> None:
    enc = _encoder()
    params = _params(enc, 4)
    params["context"] = torch.tensor([0.3, 0.1], dtype=torch.float64)
    b = _batch(np.random.default_rng(4), 6, 0)
    loss = IdentificationLoss(enc)
    rate = {"context": torch.ones(2, dtype=torch.float64)}
    new, value, _ = inner_step(enc.policy, params, rate, b, create_graph=False, loss_fn=loss)
    assert float(value) == 0.0
    assert torch.equal(new["context"], params["context"])


def test_model_fit_is_the_mean_of_per_task_losses() -> None:
    enc = _encoder()
    params = _params(enc, 5)
    rng = np.random.default_rng(5)
    batches = [_batch(rng, 6, live) for live in (6, 3)]
    z = torch.tensor([[0.1, 0.2], [-0.5, 0.4]], dtype=torch.float64)
    loss = IdentificationLoss(enc)
    by_hand = sum(float(loss({**params, "context": z[i]}, b)) for i, b in enumerate(batches)) / 2
    got = model_fit(enc, params, z, stack_batches(batches))
    assert float(got) == pytest.approx(by_hand, rel=1e-10)


def test_unknown_identifier_is_refused_by_name() -> None:
    policy = _encoder().policy
    with pytest.raises(ValueError, match="identifier: expected 'dynamics' or 'encoder'"):
        transition_model("oracle", policy, (8,))


def test_the_encoder_recovers_a_latent_seen_only_through_dynamics() -> None:
    """Toy: next = obs + act * z, z hidden. Trained to regress z from transitions, one step at
    rate 1 from any start lands near a new object's latent (no reward, no z shown)."""
    torch.manual_seed(0)
    enc = _encoder(obs_dim=2, act_dim=2, z_dim=1)
    params = {k: v.requires_grad_(True) for k, v in enc.init_params(torch.Generator()).items()}
    opt = torch.optim.Adam(list(params.values()), lr=3e-3)
    rng = np.random.default_rng(6)

    def draw(z: np.ndarray, n: int) -> InnerBatch:
        obs = torch.as_tensor(rng.standard_normal((len(z), n, 2)), dtype=torch.float32)
        act = torch.as_tensor(rng.uniform(-1, 1, (len(z), n, 2)), dtype=torch.float32)
        zt = torch.as_tensor(z, dtype=torch.float32)[:, None, None]
        return InnerBatch(
            obs=obs,
            act=act,
            adv=torch.zeros(len(z), n),
            mask=torch.ones(len(z), n),
            next_obs=obs + act * zt,
        )

    for _ in range(800):
        z = rng.uniform(-0.8, 0.8, 32)
        fit = model_fit(enc, params, torch.as_tensor(z, dtype=torch.float32)[:, None], draw(z, 16))
        opt.zero_grad()
        fit.backward()
        opt.step()
    loss = IdentificationLoss(enc)
    fixed = {k: v.detach() for k, v in params.items()}
    rate = positive_rates({"context": torch.tensor(np.log(np.expm1(1.0)), dtype=torch.float32)})
    for true_z in (-0.6, 0.0, 0.7):
        b = draw(np.array([true_z]), 100)
        assert b.next_obs is not None
        one = InnerBatch(
            obs=b.obs[0], act=b.act[0], adv=b.adv[0], mask=b.mask[0], next_obs=b.next_obs[0]
        )
        cur, _, _ = inner_step(
            enc.policy,
            {**fixed, "context": torch.tensor([0.9])},
            rate,
            one,
            create_graph=False,
            loss_fn=loss,
        )
        assert abs(float(cur["context"][0]) - true_z) < 0.1, (true_z, cur["context"])
