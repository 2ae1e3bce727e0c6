"""The robot's batch equals the training batch: same episodes -> same advantages -> same step.

Training rollouts (the sampler of a smoke-trained run) are replayed transition by transition
into the adapter's :class:`TransitionBuffer`; the advantages it computes with the bundle's
settings, the packed ``adapt_step`` batch, and the parameters after the ONNX inner steps must
equal what the training path feeds into the inner loss (``Rollouts.task_batch``) and what
``adapt_robot.meta.inner.adapt`` makes of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapt_robot.meta.algorithms.base import Learner
from adapt_robot.meta.inner import adapt
from adapt_robot.meta.samplers.local import Rollouts
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import AdvantageSettings, Bundle, SafetyConfig, task_advantages
from adapt_robot.runtime.adaptation import InnerLoop
from adapt_robot.runtime.buffer import Batch, Episodes, TransitionBuffer, pack
from adapt_robot.runtime.sessions import CPU, SessionSettings, create_session


def replay(roll: Rollouts, task: int, capacity: int) -> Episodes:
    """Feed task ``task``'s live transitions into a buffer, as observe() would; read them back."""
    s = roll.task_slice(task)
    buffer = TransitionBuffer(capacity, roll.obs.shape[-1], roll.act.shape[-1])
    for obs, act, rew, mask in zip(
        roll.obs[s], roll.act[s], roll.rew[s], roll.mask[s], strict=True
    ):
        n = int(mask.sum())
        for t in range(n):
            buffer.add(obs[t], act[t], float(rew[t]), done=t == n - 1)
    return buffer.episodes(roll.episodes_per_task)


@pytest.fixture(scope="module")
def training(point_run: Path, point_bundle: Path) -> tuple[Learner, Bundle, Rollouts]:
    _, learner, _ = load_run(point_run)
    bundle = Bundle.load(point_bundle)
    family = learner.sampler.family
    tasks = family.sample_tasks(np.random.default_rng(11), 3, "test")
    k = bundle.manifest.inner_loop.episodes
    roll = learner.sampler.sample(
        {n: v.detach() for n, v in learner.params.items()}, tasks, np.random.default_rng(12), k
    )
    return learner, bundle, roll


def test_bundle_carries_the_training_advantage_settings(
    point_run: Path, point_bundle: Path
) -> None:
    cfg, _, _ = load_run(point_run)
    on_robot = AdvantageSettings.from_inner_loop(Bundle.load(point_bundle).manifest.inner_loop)
    assert on_robot == AdvantageSettings.from_inner_loop(cfg.sampler)


def test_replayed_batch_equals_the_training_batch(
    training: tuple[Learner, Bundle, Rollouts],
) -> None:
    _, bundle, roll = training
    m = bundle.manifest
    settings = AdvantageSettings.from_inner_loop(m.inner_loop)
    for i in range(roll.n_tasks):
        s = roll.task_slice(i)
        episodes = replay(roll, i, m.inner_loop.capacity)
        np.testing.assert_array_equal(episodes.mask, roll.mask[s])
        np.testing.assert_array_equal(episodes.obs, roll.obs[s])
        adv = settings.compute(episodes.obs, episodes.rew, episodes.mask)
        np.testing.assert_array_equal(adv, roll.adv[s])  # bit for bit: one implementation
        batch = Batch.zeros(m.inner_loop.capacity, m.observation.dim, m.action.dim)
        assert pack(episodes, adv, batch) == int(roll.mask[s].sum())
        ref = roll.task_batch(i)  # what the training inner loss is fed
        for name in ("obs", "act", "adv", "mask"):
            np.testing.assert_array_equal(getattr(batch, name), getattr(ref, name).numpy())


def test_onnx_inner_steps_on_replayed_episodes_equal_torch_adapt(
    training: tuple[Learner, Bundle, Rollouts],
) -> None:
    learner, bundle, roll = training
    m = bundle.manifest
    session = create_session(bundle.graph_path("adapt_step"), [CPU], SessionSettings())
    inner = InnerLoop(session, m, bundle.lrs, SafetyConfig(reject_loss_increase=False))
    params = {k: v.detach() for k, v in learner.params.items()}
    for i in range(roll.n_tasks):
        new, result = inner.run(bundle.params, replay(roll, i, m.inner_loop.capacity), steps=2)
        assert new is not None, result
        ref = adapt(
            learner.policy, params, learner.lrs(), roll.task_batch(i), 2, create_graph=False
        )
        for name, value in ref.items():
            want = value.numpy()
            err = np.abs(new[name] - want).max() / max(np.abs(want).max(), 1e-6)
            assert err < 1e-4, (i, name, err)


def test_early_ends_and_shorter_padding_give_the_same_advantages() -> None:
    rng = np.random.default_rng(0)
    e, t_len, o = 4, 12, 3
    lengths = np.array([12, 5, 9, 1])
    mask = (np.arange(t_len)[None] < lengths[:, None]).astype(np.float64)
    obs = (rng.normal(size=(e, t_len, o)) * mask[..., None]).astype(np.float32)
    rew = rng.normal(size=(e, t_len)) * mask
    buffer = TransitionBuffer(64, o, 2)
    for j in range(e):
        for t in range(lengths[j]):
            buffer.add(obs[j, t], np.zeros(2, np.float32), float(rew[j, t]), t == lengths[j] - 1)
    replayed = buffer.episodes(e)
    assert replayed.obs.shape == (e, lengths.max(), o)
    kwargs = dict(gamma=0.9, gae_lambda=0.95, baseline="linear", baseline_reg=1e-5, normalize=True)
    ref = task_advantages(obs, rew, mask, **kwargs)  # type: ignore[arg-type]
    got = task_advantages(replayed.obs, replayed.rew, replayed.mask, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, ref[:, : lengths.max()], rtol=1e-9, atol=1e-12)


def test_unknown_baseline_is_refused() -> None:
    z = np.zeros((1, 2))
    with pytest.raises(ValueError, match="baseline"):
        task_advantages(
            np.zeros((1, 2, 1)),
            z,
            z + 1,
            gamma=1,
            gae_lambda=1,
            baseline="mlp",
            baseline_reg=0,
            normalize=False,
        )
    with pytest.raises(ValueError, match="gamma"):
        AdvantageSettings(
            gamma=1.5, gae_lambda=1.0, baseline="none", baseline_reg=0.0, normalize=True
        )


def test_hand_computed_no_baseline_no_normalisation() -> None:
    rew = np.array([[1.0, 2.0, 0.0]])
    mask = np.array([[1.0, 1.0, 0.0]])
    adv = task_advantages(
        np.zeros((1, 3, 1)),
        rew,
        mask,
        gamma=0.5,
        gae_lambda=1.0,
        baseline="none",
        baseline_reg=0.0,
        normalize=False,
    )
    np.testing.assert_allclose(adv, [[1.0 + 0.5 * 2.0, 2.0, 0.0]])
