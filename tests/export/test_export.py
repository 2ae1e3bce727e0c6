"""End to end: a smoke-trained run -> bundle -> ONNX Runtime; bad input leaves nothing behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from adapt_robot.export import ExportError, ParityError, export_bundle, parity
from adapt_robot.export.cli_entry import export_main
from adapt_robot.meta import trainer
from adapt_robot.meta.inner import inner_step
from adapt_robot.meta.policy import GaussianMLPPolicy
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import bundle_format as bf
from tests.export.conftest import train_smoke


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_smoke_bundle_runs_in_onnxruntime(smoke_run: Path, smoke_bundle: Path) -> None:
    manifest, params = bf.load_bundle(smoke_bundle)
    assert manifest.family == "point" and not manifest.observation_reward
    assert not (smoke_bundle / bf.REWARD_ONNX).exists() and "reward" not in manifest.graphs
    assert "observation_reward false" in manifest.reward_note
    assert sorted(manifest.files) == sorted(
        ["adapt_step.onnx", "params.npz", "policy.onnx", "policy_fp16.onnx", "policy_frozen.onnx"]
    )
    assert manifest.inner_loop.capacity == 10 * 20  # episodes_per_task x horizon
    assert manifest.training["config"]["algo"]["inner_lr"] == 0.1
    assert all(v <= parity.RTOL_FP32 for k, v in manifest.parity.items() if "fp16" not in k)

    _, learner, _ = load_run(smoke_run)
    policy = learner.policy
    pol = parity.session(smoke_bundle / bf.POLICY_ONNX)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(9, 2)).astype(np.float32)
    meta = {s.name: params[s.name] for s in manifest.parameters}
    mean, log_std = pol.run(None, {"obs": obs, **meta})
    ref = policy.forward(learner.params, torch.as_tensor(obs))
    assert parity.rel_err(mean, ref[0].detach().numpy()) <= parity.RTOL_FP32
    assert np.allclose(log_std, ref[1].detach().numpy())

    # One adaptation as the robot runs it, fed from params.npz, vs the training inner step.
    step = parity.session(smoke_bundle / bf.ADAPT_STEP_ONNX)
    n = manifest.inner_loop.capacity
    batch = parity.random_batch(policy, learner.params, n, np.random.default_rng(1))
    feed = {k: params[k] for k in manifest.graphs["adapt_step"].inputs if k in params}
    feed |= {
        "obs": batch.obs.numpy(),
        "act": batch.act.numpy(),
        "adv": batch.adv.numpy(),
        "mask": batch.mask.numpy(),
    }
    out = dict(zip(manifest.graphs["adapt_step"].outputs, step.run(None, feed), strict=True))
    new, loss, gnorm = inner_step(policy, learner.params, learner.lrs(), batch, create_graph=False)
    scale = parity.loss_scale(policy, learner.params, batch)
    assert parity.rel_err(out["loss"], loss.detach().numpy(), scale) <= parity.RTOL_FP32
    assert parity.rel_err(out["grad_norm"], gnorm.numpy()) <= parity.RTOL_FP32
    for k in manifest.adapted_names():
        assert parity.rel_err(out[bf.NEW_PREFIX + k], new[k].detach().numpy()) <= 1e-5


def test_graphs_carry_metadata(smoke_bundle: Path) -> None:
    for name in ("policy.onnx", "adapt_step.onnx", "policy_fp16.onnx"):
        model = onnx.load(str(smoke_bundle / name))
        onnx.checker.check_model(model, full_check=True)
        props = {p.key: p.value for p in model.metadata_props}
        assert props["adapt_robot.family"] == "point"
        assert json.loads(props["adapt_robot.obs_names"]) == ["pos[0]", "pos[1]"]
        assert json.loads(props["adapt_robot.action_scale"]) == [1.0, 1.0]
        assert props["adapt_robot.format_version"] == str(bf.FORMAT_VERSION)
        assert model.opset_import[0].version == bf.load_manifest(smoke_bundle / bf.MANIFEST).opset


def test_export_main_replaces_an_existing_bundle(smoke_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    export_main(str(smoke_run), str(out), capacity=64, fp16=False)
    first = bf.load_manifest(out / bf.MANIFEST)
    export_main(str(smoke_run), str(out), capacity=32, fp16=False)
    second, _ = bf.load_bundle(out)
    assert (first.inner_loop.capacity, second.inner_loop.capacity) == (64, 32)
    assert _leftovers(tmp_path) == []
    assert oct(out.stat().st_mode & 0o777) == "0o755"


def test_corrupt_checkpoint_leaves_nothing(smoke_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    data = (smoke_run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out" / "bundle"
    with pytest.raises(ExportError, match=r"checkpoint\.pt: cannot read the checkpoint"):
        export_bundle(run, out)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or _leftovers(tmp_path / "out") == []


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"checkpoint\.pt: no checkpoint"):
        export_bundle(tmp_path, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_existing_non_bundle_dir_is_refused_and_untouched(smoke_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match=r"precious: exists and is not a bundle"):
        export_bundle(smoke_run, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert _leftovers(tmp_path) == []


class _Foreign:
    """A policy from elsewhere: the MLP's members except ``log_prob`` and ``kl``."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        if name in ("log_prob", "kl"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_unsupported_policy_is_refused(
    smoke_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = trainer.load_run

    def load_foreign(run_dir: str | Path) -> tuple[object, object, object]:
        cfg, learner, ckpt = real(run_dir)
        learner.policy = _Foreign(learner.policy)  # type: ignore[assignment]
        return cfg, learner, ckpt

    monkeypatch.setattr(trainer, "load_run", load_foreign)
    with pytest.raises(
        ExportError, match=r"policy type _Foreign is not a Policy .*: it lacks log_prob, kl\."
    ):
        export_bundle(smoke_run, tmp_path / "b")
    assert os.listdir(tmp_path) == []


def test_a_policy_kind_the_format_lacks_is_refused(
    smoke_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GaussianMLPPolicy, "kind", "transformer")
    with pytest.raises(ExportError, match=r"kind 'transformer' is not a policy.type"):
        export_bundle(smoke_run, tmp_path / "b")
    assert os.listdir(tmp_path) == []


def test_failed_parity_leaves_nothing(
    smoke_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parity, "RTOL_FP32", 0.0)
    with pytest.raises(ParityError, match=r"The bundle was not written"):
        export_bundle(smoke_run, tmp_path / "b", capacity=16)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ("algo.meta_sgd=true", "policy.adapt=head"),
        ("algo.meta_sgd=true", "policy.adapt=context", "algo.inner_steps=3"),
    ],
)
def test_meta_sgd_runs_export(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    run = train_smoke(tmp_path / "run", *overrides)
    manifest, params = bf.load_bundle(export_bundle(run, tmp_path / "b"))
    assert manifest.inner_loop.lr_mode == "per_parameter"
    for name in manifest.adapted_names():
        assert params[bf.LR_PREFIX + name].shape == params[name].shape
    assert max(manifest.parity.values()) <= parity.RTOL_FP32


def test_inner_batch_of_bundle_capacity(smoke_bundle: Path) -> None:
    """The capacity recorded in the manifest is the graph's fixed batch dimension."""
    manifest = bf.load_manifest(smoke_bundle / bf.MANIFEST)
    sess = parity.session(smoke_bundle / bf.ADAPT_STEP_ONNX)
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    n = manifest.inner_loop.capacity
    assert shapes["obs"] == [n, 2] and shapes["mask"] == [n]


def test_a_capacity_too_small_for_k_episodes_is_warned_at_export(
    smoke_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from adapt_robot.export.bundle import capacity_warning

    export_main(str(smoke_run), str(tmp_path / "ok"), capacity=None, fp16=False)
    assert "exploration episodes" not in caplog.text  # the default holds K x horizon
    inner = bf.load_manifest(tmp_path / "ok" / bf.MANIFEST).inner_loop
    assert inner.capacity == inner.episodes * inner.horizon
    export_main(str(smoke_run), str(tmp_path / "small"), capacity=inner.horizon, fp16=False)
    assert f"holds 1 of the K={inner.episodes} exploration episodes" in caplog.text
    assert f"--capacity {inner.episodes * inner.horizon}" in caplog.text
    assert capacity_warning(3, 100, 300) is None
    assert "holds 2 of the K=3" in str(capacity_warning(3, 100, 299))


def test_identifying_learners_adapt_on_their_exploration_episodes() -> None:
    from adapt_robot.export.bundle import adaptation_episodes, default_capacity
    from adapt_robot.meta.train_config import load_train_config
    from tests.conftest import ROOT

    law = load_train_config(
        ROOT / "launch" / "smoke_law.yaml",
        ["algo.explore_episodes=4", "sampler.episodes_per_task=2"],
    )
    assert adaptation_episodes(law) == 4 and default_capacity(law, 50) == 200
    maml = load_train_config(ROOT / "launch" / "smoke.yaml", ["sampler.episodes_per_task=2"])
    assert adaptation_episodes(maml) == 2
