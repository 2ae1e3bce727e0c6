"""PEARL's ``encoder.onnx``: ONNX Runtime vs the context encoder's posterior, and its bundle.

On a random policy and encoder (no training): fresh contexts, full, padded, with padding
anywhere or NaN padding, agree with :meth:`ContextEncoder.posterior`; an empty context gives the
prior itself; a wrong graph is caught. On a one-iteration PEARL run: the bundle carries the
encoder instead of an inner step, its memory says posterior with a prior-sampled first episode,
and the recorded parity is re-measured on fresh inputs.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.export import graphs, parity
from adapt_robot.export.bundle import ExportError, posterior_encoder
from adapt_robot.meta.context_encoder import ENC_PREFIX, ContextEncoder
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import Bundle
from adapt_robot.runtime import bundle_format as bf
from adapt_robot.runtime.buffer import CONTEXT_FIELDS

OBS, ACT, Z, N = 5, 3, 4, 48


def make_encoder(seed: int = 0) -> tuple[ContextEncoder, dict[str, torch.Tensor]]:
    """A random encoder whose factors are far from the init (every term matters)."""
    policy = GaussianMLPPolicy(OBS, ACT, PolicyConfig(hidden=(16,), adapt="context", context_dim=Z))
    rng = np.random.default_rng(seed)
    policy.normalizer.mean = rng.normal(size=OBS)
    policy.normalizer.var = rng.uniform(0.2, 3.0, size=OBS)
    encoder = ContextEncoder(policy, (24, 16))
    gen = torch.Generator().manual_seed(seed)
    params = {
        k: v + 0.3 * torch.randn(v.shape, generator=gen)
        for k, v in encoder.init_params(gen).items()
    }
    return encoder, params


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ContextEncoder, dict]:
    encoder, params = make_encoder()
    path = tmp_path_factory.mktemp("encoder") / "encoder.onnx"
    inputs, outputs = graphs.export_encoder(path, encoder, params, N)
    assert inputs == [*params, *CONTEXT_FIELDS] and outputs == ["z_mean", "z_var"]
    return path, encoder, params


def _run(path: Path, params: dict, batch: object) -> tuple[np.ndarray, np.ndarray]:
    feed = {k: v.numpy() for k, v in params.items()}
    mean, var = parity.session(path).run(None, {**feed, **batch.feed()})  # type: ignore[attr-defined]
    return mean, var


def test_the_encoder_prefix_is_the_bundle_formats() -> None:
    assert ENC_PREFIX == bf.ENCODER_PREFIX  # the runtime finds the encoder's inputs by it


def test_encoder_graph_matches_torch_on_fresh_contexts(exported: tuple) -> None:
    path, encoder, params = exported
    for seed in (1, 2, 3):
        err, prior = parity.check_encoder(path, encoder, params, N, np.random.default_rng(seed))
        assert err <= parity.RTOL_FP32 and prior == 0.0


def test_an_empty_context_gives_the_prior(exported: tuple) -> None:
    path, encoder, params = exported
    batch = parity.random_context(encoder, N, np.random.default_rng(4), "empty")
    assert batch.mask.sum() == 0 and np.abs(batch.obs).sum() > 0  # rows hold values, all masked
    mean, var = _run(path, params, batch)
    assert np.array_equal(mean, np.zeros(Z)) and np.array_equal(var, np.ones(Z))


def test_a_padded_nan_row_does_not_change_the_posterior(exported: tuple) -> None:
    path, encoder, params = exported
    batch = parity.random_context(encoder, N, np.random.default_rng(5), "padded")
    clean = _run(path, params, batch)
    for field in ("obs", "act", "rew", "next_obs"):
        getattr(batch, field)[-1] = np.nan
        getattr(batch, field)[-2] = np.inf
    assert batch.mask[-1] == 0 and batch.mask[-2] == 0
    dirty = _run(path, params, batch)
    for a, b in zip(clean, dirty, strict=True):
        assert np.all(np.isfinite(b)) and np.array_equal(a, b)
    # the same row made live (finite values) does move it: the mask keeps padding out
    batch.mask[-3] = 1.0
    for field in ("obs", "act", "rew", "next_obs"):
        getattr(batch, field)[-3] = getattr(batch, field)[0]
    moved = _run(path, params, batch)
    assert np.all(moved[1] < clean[1])  # one more factor: a narrower posterior


def test_parity_check_fails_for_a_wrong_graph(exported: tuple, tmp_path: Path) -> None:
    _path, encoder, params = exported
    other, other_params = make_encoder(seed=7)  # another normaliser baked into its graph
    wrong = tmp_path / "other.onnx"
    graphs.export_encoder(wrong, other, other_params, N)
    err, _ = parity.check_encoder(wrong, encoder, params, N, np.random.default_rng(6))
    assert err > parity.RTOL_FP32
    with pytest.raises(parity.ParityError, match="encoder"):
        parity.require({"encoder": err}, {"encoder": parity.RTOL_FP32})


def test_posterior_encoder_finds_only_a_context_encoder() -> None:
    encoder, params = make_encoder()
    policy = encoder.policy
    full = {**policy.init_params(torch.Generator().manual_seed(0)), **params}
    learner = types.SimpleNamespace(policy=policy, params=full, encoder=encoder)
    assert posterior_encoder(learner, "run") is encoder  # type: ignore[arg-type]
    training_only = types.SimpleNamespace(policy=policy, params=full, encoder=object())
    assert posterior_encoder(training_only, "run") is None  # type: ignore[arg-type]
    no_enc = types.SimpleNamespace(
        policy=policy, params={k: v for k, v in full.items() if not k.startswith("enc.")}
    )
    no_enc.encoder = encoder
    with pytest.raises(ExportError, match=r"run: .*no enc\.\* parameters"):
        posterior_encoder(no_enc, "run")  # type: ignore[arg-type]
    narrow = types.SimpleNamespace(
        policy=policy, params={**full, "context": torch.zeros(Z + 1)}, encoder=encoder
    )
    with pytest.raises(ExportError, match=r"latent of 4 entries.*context shape \(5,\)"):
        posterior_encoder(narrow, "run")  # type: ignore[arg-type]


def test_a_pearl_bundle_carries_the_encoder_and_no_inner_step(pearl_bundle: Path) -> None:
    m = Bundle.load(pearl_bundle).manifest
    assert set(m.graphs) == {"policy", "encoder"}  # no adapt_step.onnx
    assert set(m.files) == {"policy.onnx", "encoder.onnx", "policy_frozen.onnx", "params.npz"}
    assert m.memory.kind == "posterior" and m.memory.first_episode == "prior_sample"
    assert m.memory.state_input == "context" and m.memory.state_dim == m.policy.context_dim
    assert m.memory.state_output == "" and m.memory.feedback == []
    assert m.inner_loop.loss == "posterior" and m.inner_loop.steps == 1
    assert m.inner_loop.algorithm == "pearl" and m.adapted_names() == []
    enc = m.encoder_names()
    assert enc and all(n.startswith("enc.") for n in enc)
    assert m.graphs["encoder"].inputs == [*enc, "obs", "act", "rew", "next_obs", "mask"]
    assert m.graphs["encoder"].outputs == ["z_mean", "z_var"]
    assert m.parity["encoder"] <= 1e-5 and m.parity["encoder_prior"] == 0.0
    with np.load(pearl_bundle / "params.npz") as npz:
        assert not [k for k in npz.files if k.startswith("lr.")]  # no inner rate to store
        assert np.array_equal(npz["context"], np.zeros(m.memory.state_dim))  # the prior mean


def test_the_recorded_parity_holds_on_fresh_inputs(pearl_run: Path, pearl_bundle: Path) -> None:
    _, learner, _ = load_run(pearl_run)
    encoder = learner.encoder
    params = {k: v.detach() for k, v in learner.params.items() if k.startswith("enc.")}
    capacity = Bundle.load(pearl_bundle).manifest.inner_loop.capacity
    rng = np.random.default_rng(12345)  # not the export's seed
    err, prior = parity.check_encoder(pearl_bundle / "encoder.onnx", encoder, params, capacity, rng)
    assert err <= parity.RTOL_FP32 and prior == 0.0
