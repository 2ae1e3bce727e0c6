"""A PEARL bundle on the robot: ``z`` from the prior first, then the posterior of what it saw.

The first episode on an object acts with ``z`` drawn from the prior by the adapter's seeded
generator (the same seed, the same ``z`` and trajectory; ``reset_to_meta`` draws again); every
adaptation, in every mode, sets ``z`` to the posterior mean ``encoder.onnx`` computes, which is
the training code's (:class:`ContextEncoder` on :func:`pack_context`); bad rewards,
teleports and an encoder gone wrong are rolled back and the robot's actions stay finite; the
manifest refuses inconsistent posterior fields, naming them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from adapt_robot.meta.context_encoder import episodes_posterior
from adapt_robot.meta.policy import detach
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import Bundle, EpisodicMode, OnlineAdapter, SlidingWindowMode
from adapt_robot.runtime.adaptation import CANCELLED, Stop
from adapt_robot.runtime.buffer import Episodes
from adapt_robot.runtime.bundle_format import BundleError
from adapt_robot.runtime.posterior import PosteriorUpdate
from adapt_robot.runtime.safety import (
    BAD_REWARD,
    BAD_TRANSITIONS,
    DEADLINE,
    NONFINITE_UPDATE,
    TELEPORT_STD,
    UPDATE_NORM,
    SafetyConfig,
)
from adapt_robot.runtime.sessions import CPU, SessionSettings, create_session
from tests.runtime.conftest import edit_params, read_manifest, write_manifest


def walk(bundle: Bundle, n: int, seed: int) -> np.ndarray:
    """A slow random walk around the normaliser's mean (plausible consecutive observations)."""
    norm = bundle.manifest.normalizer
    std = np.sqrt(np.asarray(norm.var) + 1e-8)
    steps = 0.05 * np.random.default_rng(seed).standard_normal((n, len(std)))
    return (np.asarray(norm.mean) + std * np.cumsum(steps, axis=0)).astype(np.float32)


def play(
    adapter: OnlineAdapter, obs: np.ndarray, rewards: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One episode over ``obs`` with ``rewards``; the actions sent (deterministic: as stored)."""
    acts = []
    for t, o in enumerate(obs):
        acts.append(adapter.act(o))
        adapter.observe(float(rewards[t]), done=t == len(obs) - 1)
    return np.stack(acts), rewards


def torch_posterior(run: Path, obs: list, act: list, rew: list, capacity: int) -> tuple:
    """The training code's posterior of these episodes, packed as the robot packs them."""
    _, learner, _ = load_run(run)
    mean, var = episodes_posterior(
        learner.encoder,
        detach(learner.params),
        np.stack(obs),
        np.stack(act),
        np.stack(rew),
        np.ones((len(obs), len(obs[0]))),
        capacity,
    )
    return mean.numpy(), var.numpy()


@pytest.fixture
def pearl_copy(pearl_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pearl_bundle, tmp_path / "bundle"))


def test_the_first_z_is_a_seeded_prior_draw_and_a_reset_draws_again(pearl_bundle: Path) -> None:
    bundle = Bundle.load(pearl_bundle)
    z_dim = bundle.manifest.memory.state_dim
    a, b, c = (OnlineAdapter(bundle, seed=s, auto_adapt=False) for s in (3, 3, 4))
    first = a.params["context"].copy()
    assert first.shape == (z_dim,) and first.dtype == np.float32
    assert np.array_equal(first, np.random.default_rng(3).standard_normal(z_dim, np.float32))
    assert np.array_equal(first, b.params["context"])  # same seed, same z
    assert not np.array_equal(first, c.params["context"])
    assert np.array_equal(a.meta_params["context"], np.zeros(z_dim))  # the bundle's is the mean
    obs = walk(bundle, 12, 0)
    assert np.array_equal(np.stack([a.act(o) for o in obs]), np.stack([b.act(o) for o in obs]))
    a.reset_to_meta()
    b.reset_to_meta()
    assert not np.array_equal(a.params["context"], first)  # a new object: a new draw
    assert np.array_equal(a.params["context"], b.params["context"])
    stats = a.stats()
    assert stats["adapts_by_posterior"] == 1 and stats["params_version"] == 0
    for ad in (a, b, c):
        ad.close()


def test_prior_mean_acts_with_z_zero(pearl_copy: Path) -> None:
    data = read_manifest(pearl_copy)
    data["memory"]["first_episode"] = "prior_mean"
    write_manifest(pearl_copy, data)
    adapter = OnlineAdapter(pearl_copy, seed=3, auto_adapt=False)
    assert np.array_equal(adapter.params["context"], np.zeros(data["memory"]["state_dim"]))
    adapter.close()


def test_after_an_episode_z_is_the_torch_posterior_mean(
    pearl_run: Path, pearl_bundle: Path
) -> None:
    bundle = Bundle.load(pearl_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(
        bundle, mode=EpisodicMode(episodes=1), deterministic=True, auto_adapt=False, seed=1
    )
    obs = walk(bundle, il.horizon, 1)
    rew = np.random.default_rng(1).normal(size=il.horizon) * 2.0
    act, _ = play(adapter, obs, rew)
    prior_z = adapter.params["context"].copy()
    result = adapter.adapt()
    assert result.accepted and result.steps == 1 and result.rows == il.horizon - 1
    assert np.isnan(result.loss_before) and np.isnan(result.loss_after)
    mean, var = torch_posterior(pearl_run, [obs], [act], [rew], il.capacity)
    got = adapter.params["context"]
    assert not got.flags.writeable and got.dtype == np.float32
    np.testing.assert_allclose(got, mean, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, prior_z)
    assert result.update_norm == pytest.approx(float(np.linalg.norm(mean)), rel=1e-4)
    stats = adapter.stats()
    assert stats["last_posterior_var"] == pytest.approx(float(var.mean()), rel=1e-5)
    assert stats["adaptations"] == 1 and stats["params_version"] == 1
    for p in bundle.manifest.parameters:  # only z moved; the other arrays are the bundle's own
        if p.name != "context":
            assert adapter.params[p.name] is adapter.meta_params[p.name]
    adapter.close()


def test_sequential_history_uses_every_episode_and_a_window_the_last_rows(
    pearl_run: Path, pearl_bundle: Path
) -> None:
    bundle = Bundle.load(pearl_bundle)
    il = bundle.manifest.inner_loop
    mode = EpisodicMode(episodes=1, once=False, history=2)
    seq = OnlineAdapter(bundle, mode=mode, deterministic=True, auto_adapt=False, seed=2)
    episodes = []
    for e in range(2):
        obs = walk(bundle, il.horizon, 10 + e)
        act, rew = play(seq, obs, np.full(il.horizon, -0.5 + e))
        episodes.append((obs, act, rew))
        assert seq.adapt().accepted
    mean, _ = torch_posterior(pearl_run, *map(list, zip(*episodes, strict=True)), il.capacity)
    np.testing.assert_allclose(seq.params["context"], mean, rtol=1e-5, atol=1e-6)
    seq.close()

    window = 8
    slide = SlidingWindowMode(every=window, window=window, steps=1)
    ad = OnlineAdapter(bundle, mode=slide, deterministic=True, auto_adapt=False, seed=2)
    obs = walk(bundle, il.horizon, 12)
    act, rew = play(ad, obs, np.linspace(-1, 1, il.horizon))
    assert ad.adapt().accepted
    last = slice(il.horizon - window, il.horizon)
    mean, _ = torch_posterior(pearl_run, [obs[last]], [act[last]], [rew[last]], il.capacity)
    np.testing.assert_allclose(ad.params["context"], mean, rtol=1e-5, atol=1e-6)
    ad.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e7])
def test_a_bad_reward_is_refused_and_z_kept(pearl_bundle: Path, bad: float) -> None:
    bundle = Bundle.load(pearl_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1), auto_adapt=False, seed=5)
    rew = np.zeros(il.horizon)
    rew[3] = bad  # beyond max_abs_reward (1e6) or not finite
    play(adapter, walk(bundle, il.horizon, 5), rew)
    before = adapter.params
    result = adapter.adapt()
    assert not result.accepted and result.reason == BAD_REWARD
    assert adapter.params["context"] is before["context"]  # still the prior draw
    stats = adapter.stats()
    assert stats[f"rollbacks_{BAD_REWARD}"] == 1 and stats["reward_faults"] == 1
    assert stats["params_version"] == 0
    adapter.close()


def test_a_teleport_is_refused(pearl_bundle: Path) -> None:
    bundle = Bundle.load(pearl_bundle)
    il = bundle.manifest.inner_loop
    obs = walk(bundle, il.horizon, 6)
    std = np.sqrt(np.asarray(bundle.manifest.normalizer.var) + 1e-8)
    obs[il.horizon // 2 :, 0] += np.float32(3 * TELEPORT_STD * std[0])
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1), auto_adapt=False)
    play(adapter, obs, np.zeros(il.horizon))
    result = adapter.adapt()
    assert result.reason == BAD_TRANSITIONS and adapter.stats()["params_version"] == 0
    adapter.close()


def _last_layer(bundle: Path) -> tuple[str, str]:
    names = [p["name"] for p in read_manifest(bundle)["parameters"]]
    last = max(int(n.split(".")[1][1:]) for n in names if n.startswith("enc.l"))
    return f"enc.l{last}.w", f"enc.l{last}.b"


@pytest.mark.parametrize(
    ("scale", "reason"),
    [(3e38, NONFINITE_UPDATE), (None, UPDATE_NORM)],
    ids=["overflowing_encoder", "far_posterior"],
)
def test_a_hostile_encoder_is_rolled_back_and_actions_stay_finite(
    pearl_copy: Path, scale: float | None, reason: str
) -> None:
    w_name, b_name = _last_layer(pearl_copy)
    z_dim = read_manifest(pearl_copy)["memory"]["state_dim"]

    def edit(arrays: dict[str, np.ndarray]) -> None:
        if scale is not None:  # finite parameters whose factors overflow: inf / NaN in z
            arrays[w_name] = np.full_like(arrays[w_name], scale)
        else:  # every factor's mean at 1e3, sure of itself: a posterior mean far from the prior
            arrays[w_name][:] = 0.0
            arrays[b_name][:z_dim], arrays[b_name][z_dim:] = 1e3, -20.0

    edit_params(pearl_copy, edit)
    bundle = Bundle.load(pearl_copy)  # finite parameters: the loader has nothing to refuse
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1), auto_adapt=False, seed=7)
    update = adapter._inner
    assert isinstance(update, PosteriorUpdate)
    obs = walk(bundle, il.horizon, 7)
    play(adapter, obs, np.ones(il.horizon))
    z = adapter.params["context"].copy()
    result = adapter.adapt()
    mean, _ = update.posterior(bundle.params)  # what the encoder said
    assert (not np.all(np.isfinite(mean))) if scale is not None else np.all(mean > 100)
    assert not result.accepted and result.reason == reason
    assert np.array_equal(adapter.params["context"], z)
    assert adapter.stats()[f"rollbacks_{reason}"] == 1
    for o in [*obs, np.full_like(obs[0], 1e6)]:
        assert np.all(np.isfinite(adapter.act(o)))
    adapter.close()


def test_a_stopped_or_late_pass_returns_nothing(pearl_bundle: Path) -> None:
    bundle = Bundle.load(pearl_bundle)
    m = bundle.manifest
    session = create_session(bundle.graph_bytes("encoder"), [CPU], SessionSettings())
    update = PosteriorUpdate(session, m, SafetyConfig())
    h = m.inner_loop.horizon
    episodes = Episodes(
        obs=walk(bundle, h, 8)[None],
        act=np.zeros((1, h, m.action.dim), np.float32),
        rew=np.zeros((1, h)),
        mask=np.ones((1, h)),
    )
    cancelled = Stop(10.0)
    cancelled.cancel()
    new, result = update.run(bundle.params, episodes, 1, cancelled)
    assert new is None and result.reason == CANCELLED and result.rows == h - 1
    late = Stop(1e-6)
    time.sleep(0.01)
    new, result = update.run(bundle.params, episodes, 1, late)
    assert new is None and result.reason == DEADLINE
    new, result = update.run(bundle.params, episodes, 1)
    assert new is not None and result.accepted


def test_a_posterior_takes_one_pass(pearl_bundle: Path) -> None:
    with pytest.raises(ValueError, match=r"mode\.steps: .*posterior.*expected 1.*got 2"):
        OnlineAdapter(pearl_bundle, mode=EpisodicMode(steps=2))
    with pytest.raises(ValueError, match=r"mode\.steps"):
        OnlineAdapter(pearl_bundle, mode=SlidingWindowMode(every=1, window=4, steps=3))


def test_snapshot_freezes_the_z_the_robot_acts_with(pearl_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(pearl_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(
        bundle, mode=EpisodicMode(episodes=1), deterministic=True, auto_adapt=False, seed=9
    )
    obs = walk(bundle, il.horizon, 9)
    for label in ("prior_sample", "adapted"):
        path = adapter.snapshot(tmp_path / f"{label}.onnx")
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["adapt_robot.params"] == label
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(["actions"], {"obs": obs[:5]})[0]
        want = np.stack([adapter.act(o) for o in obs[:5]])
        np.testing.assert_allclose(got, want, atol=1e-5)
        adapter.reset_to_meta()
        play(adapter, obs, np.ones(il.horizon))
        assert adapter.adapt().accepted
    adapter.close()


def _refused(bundle: Path, edit: object, match: str) -> None:
    """``edit`` of the manifest is refused with ``match``; the manifest is restored after."""
    original = read_manifest(bundle)
    data = read_manifest(bundle)
    edit(data)  # type: ignore[operator]
    write_manifest(bundle, data)
    with pytest.raises(BundleError, match=match):
        Bundle.load(bundle)
    write_manifest(bundle, original)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["memory"].update(first_episode="meta"), r"memory\.first_episode: a poster"),
        (lambda d: d["memory"].pop("first_episode"), r"memory\.first_episode: a posterior"),
        (lambda d: d["memory"].update(state_input="state"), r"memory\.kind: a posterior sets"),
        (lambda d: d["memory"].update(state_output="z"), r"memory\.kind: a posterior sets"),
        (lambda d: d["memory"].update(state_dim=3), r"memory\.state_dim: .*context_dim = 3"),
        (lambda d: d["memory"].update(kind="recurrent"), r"memory\.(kind|first_episode)"),
        (lambda d: d["memory"].update(first_episode="posterior"), r"first_episode: expected"),
        (lambda d: d["inner_loop"].update(loss="identification"), r"memory\.kind: .*loss post"),
        (lambda d: d["inner_loop"].update(steps=2), r"inner_loop\.steps: .*one encoder pass"),
        (lambda d: d["policy"].update(adapt="all"), r"memory\.state_dim: .*policy\.adapt con"),
        (lambda d: d["parameters"][-1].update(adapted=True), r"memory\.kind: .*no adapted"),
        (lambda d: d["graphs"].pop("encoder"), r"graphs\.encoder: missing field"),
        (
            lambda d: d["graphs"]["encoder"]["inputs"].remove("rew"),
            r"graphs\.encoder\.inputs: lists",
        ),
        (lambda d: d["inner_loop"].update(capacity=7), r"encoder\.onnx: input obs: shape"),
        (
            lambda d: d["graphs"]["encoder"].update(file="policy.onnx"),
            r"policy\.onnx: inputs: the graph declares",
        ),
    ],
    ids=[
        "first_episode_meta",
        "first_episode_missing",
        "state_input",
        "state_output",
        "state_dim",
        "kind_recurrent",
        "first_episode_unknown",
        "loss",
        "steps",
        "policy_adapt",
        "adapted_param",
        "no_encoder_graph",
        "encoder_inputs",
        "capacity",
        "encoder_file",
    ],
)
def test_inconsistent_posterior_manifests_are_refused(
    pearl_copy: Path, edit: object, match: str
) -> None:
    _refused(pearl_copy, edit, match)


def test_gradient_bundles_refuse_the_posterior_fields_and_old_ones_load(
    point_bundle_copy: Path, pearl_bundle: Path
) -> None:
    b = point_bundle_copy
    _refused(b, lambda d: d["memory"].update(first_episode="prior_sample"), r"first_episode: ")
    _refused(b, lambda d: d["memory"].update(first_episode="meta", kind="posterior"), r"memory\.")
    _refused(b, lambda d: d["inner_loop"].update(loss="posterior"), r"loss: posterior is for")
    enc = read_manifest(pearl_bundle)["graphs"]["encoder"]
    _refused(b, lambda d: d["graphs"].update(encoder=enc), r"graphs\.encoder: only a posterior")
    data = read_manifest(b)  # a format-4 manifest written before first_episode existed
    data["memory"].pop("first_episode")
    write_manifest(b, data)
    assert Bundle.load(b).manifest.memory.first_episode == "meta"
