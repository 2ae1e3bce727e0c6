"""The Policy protocol: every built-in policy satisfies it, and a recurrent one fits it.

The recurrent case is :class:`tests.meta.policies.TinyGRUPolicy`: its hidden state is carried
from call to call (and from one episode of a task to the next) through :func:`unroll`,
``log_prob``, the inner step and the exported ``policy.onnx``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.export import ExportError, graphs, parity
from adapt_robot.export.bundle import check_exportable
from adapt_robot.meta.control_law import ControlLawPolicy
from adapt_robot.meta.inner import InnerBatch, inner_loss, inner_step
from adapt_robot.meta.module_policy import ModulePolicy
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.policy_protocol import (
    Policy,
    diag_gaussian_log_prob,
    missing_members,
    protocol_members,
    unroll,
)
from adapt_robot.meta.recurrent_policy import GRUPolicy, trial_input
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.sim.registry import get_family
from tests.meta.policies import TinyGRUPolicy, mean_net
from tests.meta.test_policy_inner import _fd_grad

D = torch.float64
OBS, ACT, H = 3, 2, 5


def gru(seed: int = 0, dtype: torch.dtype = D) -> tuple[TinyGRUPolicy, dict[str, torch.Tensor]]:
    pol = TinyGRUPolicy(OBS, ACT, H)
    gen = torch.Generator().manual_seed(seed)
    params = pol.init_params(gen, dtype)
    params = {
        k: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=dtype) for k, v in params.items()
    }
    return pol, params


def test_every_built_in_policy_satisfies_the_protocol() -> None:
    policies = [
        GaussianMLPPolicy(OBS, ACT, PolicyConfig()),
        ControlLawPolicy(get_family("grasp"), PolicyConfig(adapt="context")),
        ModulePolicy(mean_net(OBS, ACT), OBS, ACT, PolicyConfig()),
        TinyGRUPolicy(OBS, ACT),
    ]
    for pol in policies:
        assert isinstance(pol, Policy), type(pol).__name__
        assert missing_members(pol) == [], type(pol).__name__
    members = protocol_members()
    for name in ("forward", "log_prob", "initial_state", "state_dim", "numpy_forward", "kind"):
        assert name in members
    assert missing_members(object()) == members


def test_memoryless_policies_take_and_return_no_state() -> None:
    pol = GaussianMLPPolicy(OBS, ACT, PolicyConfig(hidden=(8,)))
    params = pol.init_params(torch.Generator().manual_seed(0), D)
    obs = torch.randn(4, 7, OBS, dtype=D)
    assert pol.initial_state((4,)) is None
    mean, log_std, state = pol.forward(params, obs)
    assert state is None and mean.shape == (4, 7, ACT)
    m2, s2, st2 = unroll(pol, params, obs)
    assert torch.equal(mean, m2) and torch.equal(log_std, s2) and st2 is None


def test_the_recurrent_state_is_carried_from_call_to_call() -> None:
    pol, params = gru()
    obs = torch.randn(4, OBS, dtype=D)
    m1, _, h1 = pol.forward(params, obs)
    assert h1 is not None and h1.shape == (4, H)
    m2, _, h2 = pol.forward(params, obs, h1)
    fresh, _, _ = pol.forward(params, obs)
    assert torch.equal(fresh, m1)  # None is the initial state
    assert not torch.allclose(m2, m1)  # the same observation, another memory
    assert not torch.allclose(h2, h1)


def test_unroll_and_log_prob_carry_the_state_along_time_and_across_episodes() -> None:
    pol, params = gru()
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(2, 9, OBS, generator=g, dtype=D)  # 2 tasks, 9 steps
    act = torch.randn(2, 9, ACT, generator=g, dtype=D)
    h = pol.initial_state((2,), D)
    steps = []
    for t in range(9):
        mean, log_std, h = pol.forward(params, obs[:, t], h)
        steps.append(diag_gaussian_log_prob(mean, log_std, act[:, t]))
    want = torch.stack(steps, dim=-1)
    torch.testing.assert_close(pol.log_prob(params, obs, act), want)
    # Two episodes of one task, the second starting from the first's last state.
    m_a, _, h_a = unroll(pol, params, obs[:, :4])
    m_b, _, h_b = unroll(pol, params, obs[:, 4:], h_a)
    m_all, _, h_all = unroll(pol, params, obs)
    torch.testing.assert_close(torch.cat([m_a, m_b], dim=1), m_all)
    assert h_b is not None and h_all is not None
    torch.testing.assert_close(h_b, h_all)
    # Restarting the second episode from the initial state is a different policy.
    m_reset, _, _ = unroll(pol, params, obs[:, 4:])
    assert not torch.allclose(m_reset, m_b)


def test_the_inner_step_differentiates_through_the_recurrence() -> None:
    pol, params = gru()
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    g = torch.Generator().manual_seed(5)
    n = 8
    mask = torch.ones(n, dtype=D)
    mask[-2:] = 0
    batch = InnerBatch(
        obs=torch.randn(n, OBS, generator=g, dtype=D),
        act=torch.randn(n, ACT, generator=g, dtype=D),
        adv=torch.randn(n, generator=g, dtype=D),
        mask=mask,
    )
    lr = 0.1
    lrs = {k: torch.tensor(lr, dtype=D) for k in params}
    new, _, _ = inner_step(pol, params, lrs, batch, create_graph=False)
    for name in ("gru.wz", "gru.wh", "head.w", "log_std"):
        g_step = (params[name] - new[name]).detach().view(-1) / lr
        fd = _fd_grad(lambda p: inner_loss(pol, p, batch), params, name, 1)
        assert g_step[1].item() == pytest.approx(fd, rel=1e-5, abs=1e-8), name


def test_policy_onnx_carries_the_state_in_and_out(tmp_path: Path) -> None:
    pol = GRUPolicy(OBS, ACT, PolicyConfig(hidden=(H, 4)))
    gen = torch.Generator().manual_seed(2)
    params = {
        k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in pol.init_params(gen).items()
    }
    rng = np.random.default_rng(0)
    pol.normalizer.mean, pol.normalizer.var = rng.normal(size=OBS), rng.uniform(0.5, 2, OBS)
    low, high = -np.ones(ACT, np.float32), np.ones(ACT, np.float32)
    path = tmp_path / "policy.onnx"
    inputs, outputs = graphs.export_policy(path, pol, params, low, high)
    assert inputs == ["obs", "prev_action", "prev_reward", "episode_start", "state", *params]
    assert outputs == ["action_mean", "action_log_std", "next_state"]
    assert parity.check_policy(path, pol, params, low, high, rng) <= parity.RTOL_FP32
    # The check can fail: a graph fed a stale state disagrees.
    sess = parity.session(path)
    feed = {
        "obs": rng.normal(size=(3, OBS)).astype(np.float32),
        "prev_action": rng.uniform(-1, 1, (3, ACT)).astype(np.float32),
        "prev_reward": rng.normal(size=(3, 1)).astype(np.float32),
        "episode_start": np.zeros((3, 1), np.float32),
    }
    flat = {k: v.detach().numpy() for k, v in params.items()}
    zero = np.zeros((3, H), np.float32)
    _, _, h1 = sess.run(None, {**feed, "state": zero, **flat})
    m_carried = sess.run(None, {**feed, "state": h1, **flat})[0]
    x = trial_input(*(torch.as_tensor(v) for v in feed.values()))
    with torch.no_grad():
        _, _, t1 = pol.forward(params, x)
        want = pol.forward(params, x, t1)[0].numpy()
    assert parity.rel_err(m_carried, want) <= parity.RTOL_FP32
    m_stale = sess.run(None, {**feed, "state": zero, **flat})[0]
    assert parity.rel_err(m_stale, want) > 1e-3


def test_a_recurrent_policy_must_read_the_trial_input_and_gets_no_batched_sampling() -> None:
    pol = TinyGRUPolicy(OBS, ACT)
    with pytest.raises(ExportError, match=r"kind 'tiny_gru' is not a policy.type"):
        check_exportable(pol, "run")
    pol.kind = "module"  # a kind the format knows: its input is what stops it
    with pytest.raises(ExportError, match=r"recurrent state \(state_dim 5\) but reads 3 inputs"):
        check_exportable(pol, "run", OBS + ACT + 2)
    check_exportable(GRUPolicy(OBS, ACT, PolicyConfig(hidden=(H,))), "run", OBS + ACT + 2)
    family = get_family("point")
    dims = TinyGRUPolicy(family.obs_spec.dim, family.action_spec.dim)
    sampler = Sampler(family, dims, SamplerConfig())
    with pytest.raises(ValueError, match=r"is recurrent \(state_dim 5\)"):
        sampler.sample(
            dims.init_params(torch.Generator()),
            family.sample_tasks(np.random.default_rng(0), 1, "train"),
            np.random.default_rng(0),
        )
