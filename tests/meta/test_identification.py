"""The identification loss, its gradient, the transition batch, and latent recovery on a toy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt_robot.meta.identification import (
    DELTA_CLIP,
    IdentificationLoss,
    IdentificationModel,
    hidden_features,
    transition_batch,
)
from adapt_robot.meta.inner import InnerBatch, inner_step, positive_rates
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.runtime.buffer import Batch, pack_transitions
from adapt_robot.sim.families.grasp.task import GraspParams


def _model(obs_dim: int = 3, act_dim: int = 2, z_dim: int = 2) -> IdentificationModel:
    policy = GaussianMLPPolicy(
        obs_dim, act_dim, PolicyConfig(hidden=(8,), adapt="context", context_dim=z_dim)
    )
    return IdentificationModel(policy, (16,))


def _batch(rng: np.random.Generator, n: int, obs_dim: int, act_dim: int) -> InnerBatch:
    obs = torch.as_tensor(rng.standard_normal((n, obs_dim)))
    mask = torch.ones(n, dtype=torch.float64)
    mask[-2:] = 0.0
    return InnerBatch(
        obs=obs,
        act=torch.as_tensor(rng.uniform(-1, 1, (n, act_dim))),
        adv=torch.zeros(n, dtype=torch.float64),
        mask=mask,
        next_obs=obs + 0.1 * torch.as_tensor(rng.standard_normal((n, obs_dim))),
    )


def test_loss_is_the_masked_mean_squared_prediction_error() -> None:
    model = _model()
    params = {**model.init_params(torch.Generator().manual_seed(0))}
    params = {k: v.double() for k, v in params.items()}
    params["context"] = torch.tensor([0.3, -0.2], dtype=torch.float64)
    batch = _batch(np.random.default_rng(0), 7, 3, 2)
    loss = IdentificationLoss(model)(params, batch)
    assert batch.next_obs is not None
    pred = model.predict(params, batch.obs, batch.act, params["context"])
    err = ((pred - (batch.next_obs - batch.obs)) ** 2).mean(-1)  # unit normaliser: var 1
    by_hand = float((err[:5]).sum() / 5)
    assert float(loss) == pytest.approx(by_hand, rel=1e-6)


def test_padding_rows_do_not_change_the_loss() -> None:
    model = _model()
    params = {k: v.double() for k, v in model.init_params(torch.Generator().manual_seed(1)).items()}
    params["context"] = torch.zeros(2, dtype=torch.float64)
    batch = _batch(np.random.default_rng(1), 6, 3, 2)
    assert batch.next_obs is not None
    junk = batch.next_obs.clone()
    junk[-2:] = 1e3
    other = InnerBatch(obs=batch.obs, act=batch.act, adv=batch.adv, mask=batch.mask, next_obs=junk)
    loss = IdentificationLoss(model)
    assert float(loss(params, batch)) == pytest.approx(float(loss(params, other)), rel=1e-12)


def test_targets_are_clipped_so_a_teleport_cannot_dominate() -> None:
    model = _model()
    obs = torch.zeros(1, 3)
    far = torch.full((1, 3), 1e6)
    assert torch.all(model.target(obs, far) == DELTA_CLIP)


def test_gradient_in_z_matches_finite_differences() -> None:
    model = _model()
    params = {k: v.double() for k, v in model.init_params(torch.Generator().manual_seed(2)).items()}
    batch = _batch(np.random.default_rng(2), 9, 3, 2)
    loss = IdentificationLoss(model)

    def of_z(z: torch.Tensor) -> torch.Tensor:
        return loss({**params, "context": z}, batch)

    z = torch.tensor([0.4, -0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(of_z, (z,), eps=1e-6, atol=1e-7)


def test_one_inner_step_is_z_minus_rate_times_gradient() -> None:
    model = _model()
    params = {k: v.double() for k, v in model.init_params(torch.Generator().manual_seed(3)).items()}
    params["context"] = torch.tensor([0.1, 0.2], dtype=torch.float64)
    batch = _batch(np.random.default_rng(3), 8, 3, 2)
    loss = IdentificationLoss(model)
    lr = {"context": torch.tensor([0.5, 0.25], dtype=torch.float64)}
    new, value, gnorm = inner_step(
        model.policy, params, lr, batch, create_graph=False, loss_fn=loss
    )
    z = params["context"].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss({**params, "context": z}, batch), z)
    assert torch.allclose(new["context"], params["context"] - lr["context"] * g)
    assert float(value) == pytest.approx(float(loss(params, batch)), rel=1e-12)
    assert float(gnorm) == pytest.approx(float(g.norm()), rel=1e-9)
    for k in params:
        if k != "context":
            assert new[k] is params[k]


def test_pack_transitions_pairs_steps_within_episodes_and_keeps_the_latest() -> None:
    obs = np.arange(2 * 4 * 1, dtype=np.float32).reshape(2, 4, 1)  # episode e, step t: 4e + t
    act = obs + 100
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float64)
    out = Batch.zeros(5, 1, 1)
    assert pack_transitions(obs, act, mask, out) == 3  # (0->1), (1->2), (4->5)
    assert out.obs[:3, 0].tolist() == [0, 1, 4]
    assert out.next_obs[:3, 0].tolist() == [1, 2, 5]
    assert out.act[:3, 0].tolist() == [100, 101, 104]
    assert out.mask.tolist() == [1, 1, 1, 0, 0]
    small = Batch.zeros(2, 1, 1)
    assert pack_transitions(obs, act, mask, small) == 2
    assert small.obs[:, 0].tolist() == [1, 4]  # the latest two


def test_training_batch_is_the_runtime_batch() -> None:
    rng = np.random.default_rng(4)
    obs = rng.standard_normal((3, 6, 2)).astype(np.float32)
    act = rng.standard_normal((3, 6, 1)).astype(np.float32)
    mask = (rng.uniform(size=(3, 6)) < 0.8).astype(np.float64)
    mask[:, 0] = 1.0
    torch_batch = transition_batch(obs, act, mask, 12)
    out = Batch.zeros(12, 2, 1)
    pack_transitions(obs, act, mask, out)
    assert torch_batch.next_obs is not None
    assert np.array_equal(torch_batch.obs.numpy(), out.obs)
    assert np.array_equal(torch_batch.next_obs.numpy(), out.next_obs)
    assert np.array_equal(torch_batch.mask.numpy(), out.mask)


def test_hidden_features_encode_only_hidden_parameters() -> None:
    base = GraspParams(
        shape="box",
        half_width=0.02,
        half_depth=0.03,
        half_height=0.03,
        mass=0.5,
        friction=1.0,
        com_x=0.0,
        com_z=0.0,
        break_force=1000.0,
    )
    f = hidden_features(base)
    assert f.shape == (5,)  # mass, friction, com_x, com_z, break_force
    assert f[4] == pytest.approx(1.0)  # top of the (log-scaled) break-force range
    assert f[2] == pytest.approx(0.0)  # com_x at the centre of its range
    wider = GraspParams(**{**base.as_dict(), "half_width": 0.03})
    assert np.array_equal(hidden_features(wider), f)  # a visible change is not encoded


def test_k_steps_recover_a_latent_seen_only_through_dynamics() -> None:
    """Toy: next = obs + act / mass, mass hidden. Fit f at the true latent z = 1/mass, then 3
    identification steps from z0 (no reward, no mass) land near the new object's latent."""
    torch.manual_seed(0)
    model = _model(obs_dim=2, act_dim=2, z_dim=1)
    params = model.init_params(torch.Generator().manual_seed(5))
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.Adam(list(params.values()), lr=3e-3)
    rng = np.random.default_rng(5)

    def draw(z: np.ndarray, n: int) -> tuple[torch.Tensor, ...]:
        obs = torch.as_tensor(rng.standard_normal((len(z), n, 2)), dtype=torch.float32)
        act = torch.as_tensor(rng.uniform(-1, 1, (len(z), n, 2)), dtype=torch.float32)
        zt = torch.as_tensor(z, dtype=torch.float32)[:, None, None]
        return obs, act, obs + act * zt, torch.as_tensor(z, dtype=torch.float32)[:, None]

    for _ in range(1500):
        obs, act, nxt, z = draw(rng.uniform(0.5, 2.0, 32), 16)
        err = model.row_errors(params, obs, act, nxt, z[:, None, :].expand(-1, 16, -1)).mean()
        opt.zero_grad()
        err.backward()
        opt.step()
    loss = IdentificationLoss(model)
    fixed = {k: v.detach() for k, v in params.items()}
    rate = positive_rates({"context": torch.tensor(np.log(np.expm1(1.5)), dtype=torch.float32)})
    for true_z in (0.6, 1.0, 1.8):
        obs, act, nxt, _ = draw(np.array([true_z]), 100)
        batch = InnerBatch(
            obs=obs[0], act=act[0], adv=torch.zeros(100), mask=torch.ones(100), next_obs=nxt[0]
        )
        cur = {**fixed, "context": torch.tensor([1.25])}
        for _ in range(3):
            cur, _, _ = inner_step(model.policy, cur, rate, batch, create_graph=False, loss_fn=loss)
        assert abs(float(cur["context"][0]) - true_z) < 0.15, (true_z, cur["context"])
