from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adapt_robot.meta.inner import (
    MIN_RATE,
    InnerBatch,
    adapt,
    batched_adapt,
    init_raw_rates,
    inner_loss,
    inner_step,
    positive_rates,
    stack_batches,
)
from adapt_robot.meta.policy import (
    GaussianMLPPolicy,
    ObsNormalizer,
    PolicyConfig,
    normalize_obs,
)

D = torch.float64


def make(adapt_mode: str = "all", obs_dim: int = 3, act_dim: int = 2, seed: int = 0):
    cfg = PolicyConfig(hidden=(8, 8), adapt=adapt_mode, context_dim=3)  # type: ignore[arg-type]
    pol = GaussianMLPPolicy(obs_dim, act_dim, cfg)
    gen = torch.Generator().manual_seed(seed)
    params = pol.init_params(gen, dtype=D)
    # Non-trivial output layer so second derivatives matter.
    params["l2.w"] = torch.randn(params["l2.w"].shape, generator=gen, dtype=D) * 0.5
    return pol, {k: v.requires_grad_(True) for k, v in params.items()}


def make_batch(n: int, obs_dim: int = 3, act_dim: int = 2, seed: int = 1, pad: int = 2):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, dtype=D)
    mask[n - pad :] = 0
    return InnerBatch(
        obs=torch.randn(n, obs_dim, generator=g, dtype=D),
        act=torch.randn(n, act_dim, generator=g, dtype=D) * 0.5,
        adv=torch.randn(n, generator=g, dtype=D),
        mask=mask,
    )


def test_param_names_order_and_adapted_subsets() -> None:
    pol, params = make("all")
    assert list(params) == ["l0.w", "l0.b", "l1.w", "l1.b", "l2.w", "l2.b", "log_std"]
    assert pol.adapted_names(params) == list(params)
    pol_h, params_h = make("head")
    assert pol_h.adapted_names(params_h) == ["l2.w", "l2.b", "log_std"]
    pol_c, params_c = make("context")
    assert list(params_c)[-1] == "context" and params_c["l0.w"].shape == (8, 3 + 3)
    assert pol_c.adapted_names(params_c) == ["context"]


def test_log_prob_matches_torch_normal_and_mean_is_squashed() -> None:
    pol, params = make()
    obs = torch.randn(5, 3, dtype=D) * 100
    act = torch.randn(5, 2, dtype=D)
    mean, log_std, _ = pol.forward(params, obs)
    assert mean.abs().max() < 1.0
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(act).sum(-1)
    torch.testing.assert_close(pol.log_prob(params, obs, act), ref)


def test_normalizer_matches_numpy_over_batches_and_freezes() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(2.0, 3.0, size=(50, 3)), rng.normal(-1.0, 0.5, size=(30, 3))
    norm = ObsNormalizer(3)
    norm.update(a)
    norm.update(b)
    both = np.concatenate([a, b])
    np.testing.assert_allclose(norm.mean, both.mean(0))
    np.testing.assert_allclose(norm.var, both.var(0))
    norm.frozen = True
    norm.update(b)
    np.testing.assert_allclose(norm.mean, both.mean(0))


def test_dead_dimension_normalises_to_zero_and_live_ones_are_unchanged() -> None:
    # dim 1 never varies in the data (an unseen shape's one-hot): any later value gives 0
    data = np.stack([np.linspace(-1.0, 3.0, 40), np.zeros(40), np.linspace(5.0, 6.0, 40)], 1)
    norm = ObsNormalizer(3)
    norm.update(data)
    np.testing.assert_array_equal(norm.live(), [1.0, 0.0, 1.0])
    cfg = PolicyConfig(obs_clip=10.0)
    obs = torch.tensor([[0.5, 1.0, 5.5], [2.0, -3.0, 6.0]], dtype=D)
    out = normalize_obs(obs, norm, cfg)
    ref = (obs.numpy() - norm.mean) / np.sqrt(norm.var + 1e-8)
    np.testing.assert_allclose(out[:, [0, 2]].numpy(), ref[:, [0, 2]])
    assert out[:, 1].abs().max() == 0.0
    # on the data itself nothing changes: a constant dimension normalises to 0 anyway
    torch.testing.assert_close(
        normalize_obs(torch.as_tensor(data), norm, cfg)[:, 1], torch.zeros(40, dtype=D)
    )


def test_inner_loss_hand_computed_and_padding_ignored() -> None:
    pol, params = make()
    batch = make_batch(6)
    logp = pol.log_prob(params, batch.obs, batch.act)
    expected = -(logp[:4] * batch.adv[:4]).sum() / 4
    torch.testing.assert_close(inner_loss(pol, params, batch), expected)
    junk = InnerBatch(
        obs=batch.obs.clone(), act=batch.act.clone(), adv=batch.adv.clone(), mask=batch.mask
    )
    junk.obs[4:] = 1e3
    junk.adv[4:] = -7.0
    torch.testing.assert_close(inner_loss(pol, params, junk), expected)


def _fd_grad(f, params, name, idx, eps=1e-6):
    p_plus = {k: v.detach().clone() for k, v in params.items()}
    p_minus = {k: v.detach().clone() for k, v in params.items()}
    p_plus[name].view(-1)[idx] += eps
    p_minus[name].view(-1)[idx] -= eps
    return (f(p_plus) - f(p_minus)).item() / (2 * eps)


def test_inner_step_gradient_matches_finite_differences() -> None:
    pol, params = make()
    batch = make_batch(10)
    lr = 0.05
    lrs = {k: torch.tensor(lr, dtype=D) for k in params}
    new, loss, gnorm = inner_step(pol, params, lrs, batch, create_graph=False)
    assert loss.item() == pytest.approx(inner_loss(pol, params, batch).item())
    sq = 0.0
    for name in params:
        g = (params[name] - new[name]).detach().view(-1) / lr
        sq += float((g**2).sum())
        for idx in range(min(3, g.numel())):
            fd = _fd_grad(lambda p: inner_loss(pol, p, batch), params, name, idx)
            assert g[idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, idx)
    assert gnorm.item() == pytest.approx(math.sqrt(sq), rel=1e-9)


def meta_objective(pol, params, raw, pre, post, steps, create_graph=True):
    phi = adapt(pol, params, positive_rates(raw), pre, steps, create_graph=create_graph)
    return inner_loss(pol, phi, post)


@pytest.mark.parametrize("steps", [1, 2])
def test_meta_gradient_matches_finite_differences(steps: int) -> None:
    pol, params = make()
    pre, post = make_batch(12, seed=2), make_batch(12, seed=3)
    raw = {
        k: v.requires_grad_(True)
        for k, v in init_raw_rates(params, list(params), 0.3, per_parameter=True).items()
    }
    j = meta_objective(pol, params, raw, pre, post, steps)
    grads = torch.autograd.grad(j, list(params.values()) + list(raw.values()))
    g_params = dict(zip(params, grads[: len(params)], strict=True))
    g_raw = dict(zip(raw, grads[len(params) :], strict=True))

    def f(p):
        with torch.enable_grad():
            p = {k: v.requires_grad_(True) for k, v in p.items()}
            return meta_objective(pol, p, raw, pre, post, steps).detach()

    def f_raw(r):
        with torch.enable_grad():
            p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            return meta_objective(pol, p, r, pre, post, steps).detach()

    fo = torch.autograd.grad(
        meta_objective(pol, params, raw, pre, post, steps, create_graph=False), params["l1.w"]
    )[0]
    worst_fo = 0.0
    for name in ("l0.w", "l1.w", "l2.w", "l2.b", "log_std"):
        for idx in range(3 if params[name].numel() >= 3 else params[name].numel()):
            fd = _fd_grad(f, params, name, idx)
            assert g_params[name].view(-1)[idx].item() == pytest.approx(fd, rel=1e-4, abs=1e-7)
            if name == "l1.w":
                worst_fo = max(worst_fo, abs(fo.view(-1)[idx].item() - fd))
    for name in ("l0.w", "log_std"):
        fd = _fd_grad(f_raw, raw, name, 0)
        assert g_raw[name].view(-1)[0].item() == pytest.approx(fd, rel=1e-4, abs=1e-7)
    # The first-order gradient is not the exact one (the test can tell them apart).
    assert worst_fo > 1e-4


def test_batched_adapt_equals_per_task_adapt() -> None:
    pol, params = make()
    batches = [make_batch(8, seed=s) for s in range(3)]
    lrs = positive_rates(init_raw_rates(params, list(params), 0.2, per_parameter=False))
    stacked = batched_adapt(pol, params, lrs, stack_batches(batches), 2, create_graph=False)
    for i, b in enumerate(batches):
        one = adapt(pol, params, lrs, b, 2, create_graph=False)
        for k in params:
            torch.testing.assert_close(stacked[k][i], one[k])


def test_learned_rates_stay_positive_under_adversarial_updates() -> None:
    _, params = make()
    raw = {
        k: v.requires_grad_(True)
        for k, v in init_raw_rates(params, list(params), 0.1, per_parameter=True).items()
    }
    opt = torch.optim.SGD(list(raw.values()), lr=1e4)
    for _ in range(20):  # push every rate towards (and past) zero as hard as possible
        loss = sum(v.sum() for v in positive_rates(raw).values())
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
    for v in positive_rates(raw).values():
        assert bool((v >= MIN_RATE).all()) and bool(torch.isfinite(v).all())
    lr = positive_rates(init_raw_rates(params, ["log_std"], 0.1, per_parameter=False))
    assert lr["log_std"].item() == pytest.approx(0.1)


def test_lvc_loss_has_the_same_gradient_but_a_different_meta_gradient() -> None:
    pol, params = make()
    pre, post = make_batch(12, seed=4), make_batch(12, seed=5)
    names = list(params)
    g_plain = torch.autograd.grad(inner_loss(pol, params, pre), [params[n] for n in names])
    g_lvc = torch.autograd.grad(inner_loss(pol, params, pre, lvc=True), [params[n] for n in names])
    for a, b in zip(g_plain, g_lvc, strict=True):
        torch.testing.assert_close(a, b)
    lrs = positive_rates(init_raw_rates(params, names, 0.3, per_parameter=False))
    batch = stack_batches([pre])
    metas = []
    for lvc in (False, True):
        phi = batched_adapt(pol, params, lrs, batch, 1, create_graph=True, lvc=lvc)
        j = inner_loss(pol, {k: v[0] for k, v in phi.items()}, post)
        metas.append(torch.autograd.grad(j, params["l1.w"])[0])
    assert float((metas[0] - metas[1]).abs().max()) > 1e-4
