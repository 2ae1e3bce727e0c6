"""The on-device identification step (latent learner): parity with torch, refusal of bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.meta.inner import InnerBatch, adapt
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import Bundle, EpisodicMode, OnlineAdapter
from adapt_robot.runtime.adaptation import KEPT_SUCCESS
from adapt_robot.runtime.safety import (
    BAD_TRANSITIONS,
    TELEPORT_STD,
    transition_scale,
    transitions_ok,
)


def smooth_obs(bundle: Bundle, n: int, seed: int) -> np.ndarray:
    """A slow random walk around the normaliser's mean (plausible consecutive observations)."""
    norm = bundle.manifest.normalizer
    std = np.sqrt(np.asarray(norm.var) + 1e-8)
    rng = np.random.default_rng(seed)
    walk = np.cumsum(0.05 * rng.standard_normal((n, len(std))), axis=0)
    return (np.asarray(norm.mean) + std * walk).astype(np.float32)


def drive(adapter: OnlineAdapter, obs: np.ndarray, length: int) -> None:
    for i, o in enumerate(obs):
        adapter.act(o)
        adapter.observe(0.0, done=(i + 1) % length == 0)


def test_manifest_says_identification_and_only_the_latent_adapts(latent_bundle: Path) -> None:
    bundle = Bundle.load(latent_bundle)
    assert bundle.manifest.inner_loop.loss == "identification"
    assert bundle.manifest.adapted_names() == ["context"]
    assert bundle.manifest.graphs["adapt_step"].inputs[-4:] == ["obs", "act", "next_obs", "mask"]


def test_device_step_equals_torch_identification_step(
    latent_run: Path, latent_bundle: Path
) -> None:
    _, learner, _ = load_run(latent_run)
    bundle = Bundle.load(latent_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1), auto_adapt=False)
    drive(adapter, smooth_obs(bundle, il.horizon, 0), il.horizon)
    result = adapter.adapt()
    assert result.reason in ("accepted", "loss_increase"), result
    assert result.rows == il.horizon - 1  # transitions, not steps
    b = adapter._inner.batch
    batch = InnerBatch(
        *(torch.as_tensor(x) for x in (b.obs, b.act, b.adv, b.mask)),
        next_obs=torch.as_tensor(b.next_obs),
    )
    params = {k: v.detach() for k, v in learner.params.items()}
    ref = adapt(
        learner.policy,
        params,
        learner.lrs(),
        batch,
        il.steps,
        create_graph=False,
        loss_fn=learner.inner_loss_fn(),
    )
    if result.accepted:
        got = adapter.params["context"]
        want = ref["context"].numpy()
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
        for name in bundle.manifest.parameters:
            if name.name != "context":
                assert np.array_equal(adapter.params[name.name], bundle.params[name.name])
    adapter.close()


def test_a_teleport_is_refused_and_the_old_latent_kept(latent_bundle: Path) -> None:
    bundle = Bundle.load(latent_bundle)
    il = bundle.manifest.inner_loop
    obs = smooth_obs(bundle, il.horizon, 1)
    std = np.sqrt(np.asarray(bundle.manifest.normalizer.var) + 1e-8)
    obs[il.horizon // 2 :, 0] += np.float32(3 * TELEPORT_STD * std[0])  # one jump mid-episode
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1), auto_adapt=False)
    drive(adapter, obs, il.horizon)
    result = adapter.adapt()
    assert not result.accepted and result.reason == BAD_TRANSITIONS
    assert np.array_equal(adapter.params["context"], bundle.params["context"])
    assert adapter.stats()[f"rollbacks_{BAD_TRANSITIONS}"] == 1
    adapter.close()


def test_a_jump_of_a_dead_entry_is_no_teleport_but_a_nan_there_is_refused() -> None:
    # entry 1 never moved in training (a protective-stop flag no training episode tripped)
    scale = transition_scale(np.array([0.04, 0.0, 1e-4]), 1e-8)
    assert np.isinf(scale[1]) and scale[0] == pytest.approx(0.2)
    obs = np.zeros((3, 3))
    nxt = obs.copy()
    nxt[2, 1] = 1.0  # the flag trips: ignored
    assert transitions_ok(obs, nxt, scale)
    nxt[1, 2] = 31 * np.sqrt(1e-4 + 1e-8)  # a live entry jumps beyond TELEPORT_STD
    assert not transitions_ok(obs, nxt, scale)
    nxt[1, 2] = 0.0
    nxt[0, 1] = np.nan
    assert not transitions_ok(obs, nxt, scale)


def test_nan_observations_never_reach_the_identification_batch(latent_bundle: Path) -> None:
    bundle = Bundle.load(latent_bundle)
    il = bundle.manifest.inner_loop
    obs = smooth_obs(bundle, il.horizon, 2)
    obs[5] = np.nan
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1), auto_adapt=False)
    drive(adapter, obs, il.horizon)
    result = adapter.adapt()
    assert adapter.stats()["obs_faults"] == 1
    assert result.reason != BAD_TRANSITIONS  # the guard kept the NaN row out of the buffer
    assert np.all(np.isfinite(adapter.params["context"]))
    adapter.close()


@pytest.mark.parametrize("succeeded", [True, False])
def test_keep_on_success_adapts_only_after_a_failed_episode(
    latent_bundle: Path, succeeded: bool
) -> None:
    bundle = Bundle.load(latent_bundle)
    il = bundle.manifest.inner_loop
    mode = EpisodicMode(episodes=1, keep_on_success=True)
    adapter = OnlineAdapter(bundle, mode=mode, auto_adapt=False)
    for i, o in enumerate(smooth_obs(bundle, il.horizon, 3)):
        adapter.act(o)
        last = i + 1 == il.horizon
        adapter.observe(0.0, done=last, success=succeeded and last)
    result = adapter.adapt()
    if succeeded:
        assert result.reason == KEPT_SUCCESS and result.steps == 0
        assert adapter.stats()["kept_on_success"] == 1
        assert adapter.stats()["rollbacks"] == 0  # keeping is not a rollback
    else:
        assert result.reason != KEPT_SUCCESS and result.steps == il.steps
    adapter.close()


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The latent learner with the transition encoder (RMA-style), a few seconds of it."""
    from tests.conftest import train_launch

    out = tmp_path_factory.mktemp("rt_encoder") / "run"
    sets = ("algo.identifier=encoder", "algo.inner_steps=1", "algo.inner_lr=1.0")
    return train_launch("smoke_latent.yaml", out, *sets)


def test_device_encoder_step_lands_where_the_torch_encoder_says(
    encoder_run: Path, tmp_path: Path
) -> None:
    """z_1 = z_0 - rate * (z_0 - phi(the robot's transitions)): the history -> z module runs on
    the device through the same exported step, acceptance rule and checks."""
    from tests.conftest import export

    _, learner, _ = load_run(encoder_run)
    bundle = Bundle.load(export(encoder_run, tmp_path / "b"))
    assert bundle.manifest.inner_loop.loss == "identification"
    assert any(p.name.startswith("id.g.") for p in bundle.manifest.parameters)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1, steps=1), auto_adapt=False)
    drive(adapter, smooth_obs(bundle, il.horizon, 3), il.horizon)
    result = adapter.adapt()
    assert result.accepted, result
    b = adapter._inner.batch
    params = {k: v.detach() for k, v in learner.params.items()}
    phi = learner.model.estimate(
        params, *(torch.as_tensor(x) for x in (b.obs, b.act, b.next_obs, b.mask))
    )
    z0, rate = params["context"], learner.lrs()["context"].detach()
    want = (z0 - rate * (z0 - phi)).numpy()
    assert np.abs(adapter.params["context"] - want).max() < 1e-5
    assert result.loss_after < result.loss_before
    adapter.close()
