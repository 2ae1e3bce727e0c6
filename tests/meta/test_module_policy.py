"""A user's ``torch.nn.Module`` as a Policy: params, an inner step, export parity, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.config import ConfigError
from adapt_robot.export import export_bundle, graphs, parity
from adapt_robot.meta.inner import adapt, init_raw_rates, inner_loss, inner_step, positive_rates
from adapt_robot.meta.module_policy import ModulePolicy
from adapt_robot.meta.policy import PolicyConfig
from adapt_robot.meta.policy_protocol import Policy, missing_members
from adapt_robot.meta.train_config import load_train_config
from adapt_robot.meta.trainer import build_learner, load_run
from adapt_robot.runtime import bundle_format as bf
from adapt_robot.runtime.adapter import OnlineAdapter
from tests.export.conftest import ROOT, train_smoke
from tests.meta.policies import Residual
from tests.meta.test_policy_inner import _fd_grad, make_batch

D = torch.float64
OBS, ACT = 3, 2
LOW, HIGH = -np.ones(ACT, dtype=np.float32), np.ones(ACT, dtype=np.float32)


def make(module: torch.nn.Module | None = None, adapt_mode: str = "all", seed: int = 0):
    cfg = PolicyConfig(adapt=adapt_mode, context_dim=2)  # type: ignore[arg-type]
    in_dim = OBS + (2 if adapt_mode == "context" else 0)
    pol = ModulePolicy(module or Residual(in_dim, ACT), OBS, ACT, cfg)
    gen = torch.Generator().manual_seed(seed)
    params = pol.init_params(gen, dtype=D)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen, dtype=D) for k, v in params.items()}
    return pol, {k: v.requires_grad_(True) for k, v in params.items()}


def test_params_are_the_modules_named_parameters_and_init_is_seeded() -> None:
    pol = ModulePolicy(Residual(OBS, ACT), OBS, ACT, PolicyConfig())
    assert isinstance(pol, Policy) and missing_members(pol) == []
    state = torch.random.get_rng_state()
    a = pol.init_params(torch.Generator().manual_seed(4))
    b = pol.init_params(torch.Generator().manual_seed(4))
    c = pol.init_params(torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    names = ["inp.weight", "inp.bias", "block.0.weight", "block.0.bias", "out.weight", "out.bias"]
    assert list(a) == [f"net.{n}" for n in names] + ["log_std"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["net.inp.weight"], c["net.inp.weight"])
    assert pol.adapted_names(a) == list(a)
    head = ModulePolicy(Residual(OBS, ACT), OBS, ACT, PolicyConfig(adapt="head"))
    assert head.adapted_names(a) == ["net.out.weight", "net.out.bias", "log_std"]


def test_forward_is_the_module_called_with_the_params() -> None:
    pol, params = make()
    obs = torch.randn(6, OBS, dtype=D)
    mean, log_std, state = pol.forward(params, obs)
    ref = Residual(OBS, ACT).double()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(params[f"net.{name}"])
        want = torch.tanh(ref(pol.normalize(obs)))
    torch.testing.assert_close(mean, want)
    assert state is None and log_std is params["log_std"]
    ctx_pol, ctx_params = make(adapt_mode="context")
    assert ctx_pol.adapted_names(ctx_params) == ["context"]
    before = ctx_pol.forward(ctx_params, obs)[0]
    moved = {**ctx_params, "context": ctx_params["context"] + 1.0}
    assert not torch.allclose(before, ctx_pol.forward(moved, obs)[0])


def test_a_module_of_the_wrong_width_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"maps \[2, 3\] to \(2, 3\); expected one tensor \[2, 2\]"
    ):
        ModulePolicy(torch.nn.Linear(OBS, ACT + 1), OBS, ACT, PolicyConfig())
    with pytest.raises(ValueError, match=r"fails on input \[2, 3\]"):
        ModulePolicy(torch.nn.Linear(OBS + 1, ACT), OBS, ACT, PolicyConfig())


def test_inner_step_gradient_matches_finite_differences() -> None:
    pol, params = make()
    batch = make_batch(10, OBS, ACT)
    lr = 0.05
    lrs = {k: torch.tensor(lr, dtype=D) for k in params}
    new, loss, _ = inner_step(pol, params, lrs, batch, create_graph=False)
    assert loss.item() == pytest.approx(inner_loss(pol, params, batch).item())
    for name in params:
        g = (params[name] - new[name]).detach().view(-1) / lr
        for idx in range(min(3, g.numel())):
            fd = _fd_grad(lambda p: inner_loss(pol, p, batch), params, name, idx)
            assert g[idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, idx)


def test_maml_meta_gradient_through_the_module_matches_finite_differences() -> None:
    pol, params = make()
    pre, post = make_batch(12, OBS, ACT, seed=2), make_batch(12, OBS, ACT, seed=3)
    lrs = positive_rates(init_raw_rates(params, list(params), 0.3, per_parameter=False))

    def objective(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return inner_loss(pol, adapt(pol, p, lrs, pre, 1, create_graph=True), post)

    grads = torch.autograd.grad(objective(params), list(params.values()))
    exact = dict(zip(params, grads, strict=True))

    def value(p: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.enable_grad():
            return objective({k: v.requires_grad_(True) for k, v in p.items()}).detach()

    for name in ("net.inp.weight", "net.block.0.weight", "net.out.bias", "log_std"):
        fd = _fd_grad(value, params, name, 0)
        assert exact[name].view(-1)[0].item() == pytest.approx(fd, rel=1e-4, abs=1e-7), name


@pytest.mark.parametrize("adapt_mode", ["all", "context"])
def test_policy_and_inner_step_graphs_match_torch(tmp_path: Path, adapt_mode: str) -> None:
    pol, params64 = make(adapt_mode=adapt_mode, seed=1)
    pol.module = pol.module.float()
    params = {k: v.detach().float() for k, v in params64.items()}
    rng = np.random.default_rng(0)
    pol.normalizer.mean, pol.normalizer.var = rng.normal(size=OBS), rng.uniform(0.5, 2, OBS)
    lrs = {k: torch.tensor(0.05) for k in pol.adapted_names(params)}
    graphs.export_policy(tmp_path / "policy.onnx", pol, params, LOW, HIGH)
    graphs.export_adapt_step(tmp_path / "adapt_step.onnx", pol, params, lrs, 40)
    err = parity.check_policy(tmp_path / "policy.onnx", pol, params, LOW, HIGH, rng)
    assert err <= parity.RTOL_FP32
    step = tmp_path / "adapt_step.onnx"
    assert parity.check_adapt_step(step, pol, params, lrs, 40, rng, steps=3) <= parity.RTOL_FP32


def test_policy_module_trains_exports_and_acts_on_the_robot(tmp_path: Path) -> None:
    run = train_smoke(
        tmp_path / "run",
        "policy.module=tests.meta.policies:residual_net",
        "budget.iterations=2",
        "eval.every=2",
    )
    cfg, learner, _ = load_run(run)
    assert cfg.policy.module == "tests.meta.policies:residual_net"
    assert isinstance(learner.policy, ModulePolicy)
    assert isinstance(learner.policy.module, Residual)
    out = export_bundle(run, tmp_path / "bundle", capacity=50)
    manifest, npz = bf.load_bundle(out)
    assert manifest.policy.type == "module" and manifest.policy.hidden == []
    assert [p.name for p in manifest.parameters] == list(learner.params)
    adapter = OnlineAdapter(out, deterministic=True, auto_adapt=False)
    dim = learner.policy.obs_dim
    obs = np.random.default_rng(2).normal(size=(5, dim)).astype(np.float32)
    params = {k: torch.as_tensor(npz[k]) for k in learner.params}
    for o in obs:
        with torch.no_grad():
            want = learner.policy.forward(params, torch.as_tensor(o))[0].numpy()
        assert parity.rel_err(adapter.act(o), want) <= parity.RTOL_FP32
    adapter.close()


def test_policy_module_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy.module: expected 'package.module:function'"):
        train_smoke(tmp_path / "a", "policy.module=not a path")
    with pytest.raises(ConfigError, match=r"policy.module: cannot import 'tests.nowhere'"):
        train_smoke(tmp_path / "b", "policy.module=tests.nowhere:net")
    with pytest.raises(ConfigError, match=r"policy.module: 'tests.meta.policies' has no attr"):
        train_smoke(tmp_path / "c", "policy.module=tests.meta.policies:nothing")
    with pytest.raises(ConfigError, match=r"expected one tensor \[2, 2\]"):
        train_smoke(tmp_path / "d", "policy.module=tests.meta.policies:wrong_width_net")


def test_a_learner_with_its_own_policy_refuses_policy_module() -> None:
    launch = str(ROOT / "launch" / "smoke_law.yaml")
    cfg = load_train_config(launch, ["policy.module=tests.meta.policies:mean_net"])
    with pytest.raises(ConfigError, match=r"policy.module: law_id trains its own policy"):
        build_learner(cfg)
