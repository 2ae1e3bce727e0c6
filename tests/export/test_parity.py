"""ONNX Runtime vs the training code for every adapted subset, scalar and Meta-SGD rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from adapt_robot.export import graphs, parity
from adapt_robot.meta.inner import InnerBatch, adapt, init_raw_rates, positive_rates
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.runtime.bundle_format import LR_PREFIX, NEW_PREFIX

OBS, ACT, N = 7, 3, 96
LOW, HIGH = -np.ones(ACT, dtype=np.float32), np.ones(ACT, dtype=np.float32)


def make_policy(adapt_mode: str, meta_sgd: bool, seed: int = 0):
    policy = GaussianMLPPolicy(OBS, ACT, PolicyConfig(hidden=(24, 16), adapt=adapt_mode))
    rng = np.random.default_rng(seed)
    policy.normalizer.mean = rng.normal(size=OBS)
    policy.normalizer.var = rng.uniform(0.2, 3.0, size=OBS)
    gen = torch.Generator().manual_seed(seed)
    params = policy.init_params(gen)
    # Move away from the init (zero biases, zero context) so every term is exercised.
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in params.items()}
    raw = init_raw_rates(params, policy.adapted_names(params), 0.05, meta_sgd)
    if meta_sgd:  # Meta-SGD: a different rate per entry
        raw = {k: v + 0.5 * torch.randn(v.shape, generator=gen) for k, v in raw.items()}
    return policy, params, {k: v.detach() for k, v in positive_rates(raw).items()}


CASES = [(m, s) for m in ("all", "head", "context") for s in (False, True)]


@pytest.mark.parametrize(("adapt_mode", "meta_sgd"), CASES)
def test_policy_and_inner_steps_match_torch(
    tmp_path: Path, adapt_mode: str, meta_sgd: bool
) -> None:
    policy, params, lrs = make_policy(adapt_mode, meta_sgd)
    rng = np.random.default_rng(1)
    pol_path, step_path = tmp_path / "policy.onnx", tmp_path / "adapt_step.onnx"
    graphs.export_policy(pol_path, policy, params, LOW, HIGH)
    inputs, outputs = graphs.export_adapt_step(step_path, policy, params, lrs, N)
    for p in (pol_path, step_path):
        onnx.checker.check_model(onnx.load(str(p)), full_check=True)
    assert parity.check_policy(pol_path, policy, params, LOW, HIGH, rng) <= parity.RTOL_FP32
    one = parity.check_adapt_step(step_path, policy, params, lrs, N, rng)
    three = parity.check_adapt_step(step_path, policy, params, lrs, N, rng, steps=3)
    assert one <= parity.RTOL_FP32
    assert three <= parity.RTOL_FP32
    adapted = policy.adapted_names(params)
    assert inputs == [*params, *(LR_PREFIX + n for n in adapted), "obs", "act", "adv", "mask"]
    assert outputs == [*(NEW_PREFIX + n for n in adapted), "loss", "grad_norm"]


def test_three_chained_onnx_steps_equal_training_adapt(tmp_path: Path) -> None:
    """The robot's loop (feed new.* back three times) equals inner.adapt(steps=3)."""
    policy, params, lrs = make_policy("all", True, seed=3)
    path = tmp_path / "adapt_step.onnx"
    graphs.export_adapt_step(path, policy, params, lrs, N)
    batch = parity.random_batch(policy, params, N, np.random.default_rng(4))
    sess = parity.session(path)
    names = [o.name for o in sess.get_outputs()]
    cur = {k: v.numpy() for k, v in params.items()}
    feed = {LR_PREFIX + k: v.numpy() for k, v in lrs.items()}
    feed |= {
        "obs": batch.obs.numpy(),
        "act": batch.act.numpy(),
        "adv": batch.adv.numpy(),
        "mask": batch.mask.numpy(),
    }
    for _ in range(3):
        out = dict(zip(names, sess.run(None, {**cur, **feed}), strict=True))
        cur |= {k: out[NEW_PREFIX + k] for k in lrs}
    ref = adapt(policy, params, lrs, batch, 3, create_graph=False)
    for k in params:
        assert parity.rel_err(cur[k], ref[k].detach().numpy()) <= parity.RTOL_FP32, k


def test_padding_rows_do_not_change_the_step(tmp_path: Path) -> None:
    policy, params, lrs = make_policy("head", False, seed=5)
    path = tmp_path / "adapt_step.onnx"
    graphs.export_adapt_step(path, policy, params, lrs, N)
    batch = parity.random_batch(policy, params, N, np.random.default_rng(6))
    live = batch.mask > 0
    junk = InnerBatch(
        obs=torch.where(live[:, None], batch.obs, 1e3),
        act=torch.where(live[:, None], batch.act, -7.0),
        adv=torch.where(live, batch.adv, 99.0),
        mask=batch.mask,
    )
    sess = parity.session(path)
    common = {k: v.numpy() for k, v in params.items()} | {
        LR_PREFIX + k: v.numpy() for k, v in lrs.items()
    }

    def run(b: InnerBatch) -> list[np.ndarray]:
        return sess.run(
            None,
            common
            | {
                "obs": b.obs.numpy(),
                "act": b.act.numpy(),
                "adv": b.adv.numpy(),
                "mask": b.mask.numpy(),
            },
        )

    for a, b in zip(run(batch), run(junk), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_params_are_swapped_without_a_new_session(tmp_path: Path) -> None:
    policy, params, _ = make_policy("all", False)
    path = tmp_path / "policy.onnx"
    graphs.export_policy(path, policy, params, LOW, HIGH)
    sess = parity.session(path)
    other = {k: v * 1.5 for k, v in params.items()}
    for rows, p in ((1, params), (5, other), (5, params)):
        obs = np.random.default_rng(rows).normal(size=(rows, OBS)).astype(np.float32)
        got = sess.run(None, {"obs": obs, **{k: v.numpy() for k, v in p.items()}})[0]
        ref = policy.forward(p, torch.as_tensor(obs))[0].detach().numpy()
        assert parity.rel_err(got, ref) <= parity.RTOL_FP32


def test_parity_check_fails_for_a_wrong_graph(tmp_path: Path) -> None:
    """The check can fail: a graph with another normaliser is caught."""
    policy, params, lrs = make_policy("all", False)
    path = tmp_path / "policy.onnx"
    graphs.export_policy(path, policy, params, LOW, HIGH)
    step = tmp_path / "adapt_step.onnx"
    graphs.export_adapt_step(step, policy, params, lrs, N)
    policy.normalizer.mean = policy.normalizer.mean + 0.5
    rng = np.random.default_rng(0)
    assert parity.check_policy(path, policy, params, LOW, HIGH, rng) > 1e-3
    assert parity.check_adapt_step(step, policy, params, lrs, N, rng) > 1e-3
    with pytest.raises(parity.ParityError, match=r"policy: .* > 1e-05"):
        parity.require({"policy": 1e-3}, {"policy": parity.RTOL_FP32})


def test_fp16_policy_parity(tmp_path: Path) -> None:
    policy, params, _ = make_policy("all", False)
    path = tmp_path / "policy_fp16.onnx"
    graphs.export_policy(path, policy, params, LOW, HIGH, fp16=True)
    err = parity.check_policy(path, policy, params, LOW, HIGH, np.random.default_rng(0))
    assert 0 < err <= parity.RTOL_FP16


def test_chained_check_still_catches_a_wrong_graph(tmp_path: Path) -> None:
    """Later steps are measured against the first step's scale too: that must not hide a graph
    whose steps are all wrong."""
    policy, params, lrs = make_policy("head", True)
    step = tmp_path / "adapt_step.onnx"
    graphs.export_adapt_step(step, policy, params, lrs, N)
    policy.normalizer.var = policy.normalizer.var * 1.3
    rng = np.random.default_rng(2)
    assert parity.check_adapt_step(step, policy, params, lrs, N, rng, steps=3) > 1e-3
