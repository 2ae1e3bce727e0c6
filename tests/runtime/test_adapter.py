"""OnlineAdapter: parity with the training code, modes, swap without blocking, device rewards."""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.meta.inner import InnerBatch, adapt
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import (
    AdaptResult,
    Bundle,
    EpisodicMode,
    OnlineAdapter,
    SlidingWindowMode,
)


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    g, r = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-6))


def random_obs(bundle: Bundle, n: int, seed: int) -> np.ndarray:
    """Observations around the normaliser's statistics (as the policy sees in training)."""
    norm = bundle.manifest.normalizer
    std = np.sqrt(np.asarray(norm.var) + 1e-8)
    rng = np.random.default_rng(seed)
    obs = np.asarray(norm.mean) + 1.5 * std * rng.standard_normal((n, len(std)))
    return obs.astype(np.float32)


def run_episodes(
    adapter: OnlineAdapter, episodes: int, length: int, seed: int = 0
) -> list[np.ndarray]:
    """Drive the adapter through episodes of a toy task (reward: minus |obs + action|)."""
    obs = random_obs(adapter.bundle, episodes * length, seed)
    actions = []
    for i, o in enumerate(obs):
        a = adapter.act(o)
        actions.append(a)
        reward = -float(np.abs(o[: a.shape[0]] + a).sum())
        adapter.observe(reward, done=(i + 1) % length == 0)
    return actions


def test_deterministic_act_matches_the_torch_policy(point_run: Path, point_bundle: Path) -> None:
    _, learner, _ = load_run(point_run)
    policy, params = learner.policy, {k: v.detach() for k, v in learner.params.items()}
    adapter = OnlineAdapter(point_bundle, deterministic=True, auto_adapt=False)
    low, high = torch.as_tensor(adapter.bundle.action_low), adapter.bundle.action_high
    worst = 0.0
    for o in random_obs(adapter.bundle, 64, seed=1):
        a = adapter.act(o)
        assert a.dtype == np.float32 and a.shape == (policy.act_dim,)
        with torch.no_grad():
            mean, _, _ = policy.forward(params, torch.as_tensor(o))
            ref = torch.clamp(mean, low, torch.as_tensor(high)).numpy()
        worst = max(worst, rel_err(a, ref))
    assert worst < 1e-5
    assert adapter.stats()["acts"] == 64


def test_sampled_actions_follow_the_policy_gaussian(point_run: Path, point_bundle: Path) -> None:
    _, learner, _ = load_run(point_run)
    adapter = OnlineAdapter(point_bundle, seed=3, auto_adapt=False)
    o = random_obs(adapter.bundle, 1, seed=2)[0]
    n = 4000
    samples = np.empty((n, learner.policy.act_dim), dtype=np.float32)
    for i in range(n):
        sent = adapter.act(o)
        samples[i] = adapter._sample  # the unclipped draw stored for adaptation
        np.testing.assert_array_equal(
            sent, np.clip(samples[i], adapter.bundle.action_low, adapter.bundle.action_high)
        )
    with torch.no_grad():
        params = {k: v.detach() for k, v in learner.params.items()}
        mean, log_std, _ = learner.policy.forward(params, torch.as_tensor(o))
    std = np.exp(log_std.numpy())
    np.testing.assert_allclose(samples.mean(0), mean.numpy(), atol=5 * std.max() / np.sqrt(n))
    np.testing.assert_allclose(samples.std(0), std, rtol=0.05)


def test_same_seed_same_actions(point_bundle: Path) -> None:
    obs = random_obs(Bundle.load(point_bundle), 20, seed=5)

    def actions(seed: int) -> np.ndarray:
        adapter = OnlineAdapter(point_bundle, seed=seed, auto_adapt=False)
        return np.stack([adapter.act(o) for o in obs])

    np.testing.assert_array_equal(actions(7), actions(7))
    assert not np.array_equal(actions(7), actions(8))


def test_adapt_equals_torch_adapt_on_the_same_batch(point_run: Path, point_bundle: Path) -> None:
    _, learner, _ = load_run(point_run)
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(steps=3), auto_adapt=False)
    run_episodes(adapter, il.episodes, il.horizon)
    result = adapter.adapt()
    assert result.accepted, result
    assert result.steps == 3 and result.rows == il.episodes * il.horizon
    b = adapter._inner.batch  # exactly what adapt_step.onnx was fed
    batch = InnerBatch(*(torch.as_tensor(x) for x in (b.obs, b.act, b.adv, b.mask)))
    params = {k: v.detach() for k, v in learner.params.items()}
    ref = adapt(learner.policy, params, learner.lrs(), batch, 3, create_graph=False)
    for name, value in ref.items():
        assert rel_err(adapter.params[name], value.detach().numpy()) < 1e-4, name
    changed = [n for n in ref if not np.array_equal(adapter.params[n], bundle.params[n])]
    assert changed == bundle.manifest.adapted_names()
    assert result.loss_after < result.loss_before
    stats = adapter.stats()
    assert stats["adaptations"] == 1 and stats["params_version"] == 1
    assert stats["last_loss_before"] == result.loss_before


def test_episodic_mode_adapts_once_then_keeps_the_params(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    with OnlineAdapter(bundle, mode=EpisodicMode(episodes=1)) as adapter:
        run_episodes(adapter, 1, il.horizon)
        future = adapter._future  # the one auto_adapt started after the episode
        assert future is not None
        result = future.result(timeout=60)
        assert result.accepted and result.episodes == 1
        adapted = adapter.params
        run_episodes(adapter, 3, il.horizon, seed=1)  # once: no further adaptation
        assert adapter._future is future
        assert adapter.stats()["adapt_attempts"] == 1
        assert adapter.params["l0.w"] is adapted["l0.w"]
        adapter.reset_to_meta()
        assert adapter.params["l0.w"] is bundle.params["l0.w"]
        assert adapter.stats()["params_version"] == 0
        with pytest.raises(ValueError, match="no finished episode"):
            adapter.adapt()  # experience was cleared with the object
        run_episodes(adapter, 1, il.horizon, seed=2)  # a new object adapts again
        adapter.close()
        assert adapter.stats()["adaptations"] == 2


def test_more_episodes_than_capacity_keeps_the_most_recent(
    point_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    per_capacity = il.capacity // il.horizon
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=per_capacity + 1), auto_adapt=False)
    run_episodes(adapter, per_capacity + 1, il.horizon)
    result = adapter.adapt()
    assert result.episodes == per_capacity and result.rows == per_capacity * il.horizon
    assert result.dropped_rows == il.horizon
    assert adapter.stats()["dropped_episodes"] == 1
    assert "left out 1 episode(s)" in caplog.text and "--capacity" in caplog.text


def test_sliding_window_cuts_segments_at_episode_ends(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    mode = SlidingWindowMode(every=10, window=il.capacity, steps=1)
    adapter = OnlineAdapter(bundle, mode=mode, auto_adapt=False)
    length = 15
    run_episodes(adapter, 3, length)  # 45 transitions, episodes of 15
    result = adapter.adapt()
    # The last `capacity` transitions: the tail of one episode, then whole ones.
    tail = il.capacity % length
    assert result.rows == il.capacity
    assert result.episodes == il.capacity // length + (1 if tail else 0)
    assert adapter._inner.batch.mask.sum() == il.capacity


def test_sliding_window_adapts_every_m_ticks(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    mode = SlidingWindowMode(every=7, window=12, steps=1)
    with OnlineAdapter(bundle, mode=mode) as adapter:
        for i, o in enumerate(random_obs(bundle, 70, seed=4)):
            adapter.act(o)
            adapter.observe(-float(np.abs(o).sum()), done=(i + 1) % 25 == 0)
            future = adapter._future
            if future is not None:
                future.result(timeout=60)  # keep the worker free: every trigger then runs
    stats = adapter.stats()
    assert stats["adapt_attempts"] == 10 and stats["adapt_deferred"] == 0


def test_sliding_window_waits_for_min_window_transitions(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    mode = SlidingWindowMode(every=5, window=12, steps=1, min_window=22)
    attempts = []
    with OnlineAdapter(bundle, mode=mode) as adapter:
        for o in random_obs(bundle, 40, seed=5):
            adapter.act(o)
            adapter.observe(-float(np.abs(o).sum()), done=False)
            future = adapter._future
            if future is not None:
                future.result(timeout=60)
            attempts.append(adapter.stats()["adapt_attempts"])
        # Ticks 5..20 are due but the window is short; from 22 (then every 5): 22, 27, 32, 37.
        assert attempts[20] == 0 and attempts[21] == 1 and attempts[-1] == 4
        adapter.reset_to_meta()  # a new object: wait again
        for o in random_obs(bundle, 21, seed=6):
            adapter.act(o)
            adapter.observe(0.0, done=False)
        assert adapter.stats()["adapt_attempts"] == 4


def test_window_larger_than_capacity_is_refused(point_bundle: Path) -> None:
    cap = Bundle.load(point_bundle).manifest.inner_loop.capacity
    with pytest.raises(ValueError, match=r"inner_loop\.capacity"):
        OnlineAdapter(point_bundle, mode=SlidingWindowMode(every=1, window=cap + 1, steps=1))


def test_act_does_not_block_while_an_adaptation_runs(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, auto_adapt=False)
    run_episodes(adapter, il.episodes, il.horizon)
    entered, release = threading.Event(), threading.Event()
    step = adapter._inner.step

    def held_step(params: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, float]:
        entered.set()
        assert release.wait(timeout=60), "the test never released the adaptation"
        return step(params)

    monkeypatch.setattr(adapter._inner, "step", held_step)
    future = adapter.adapt_async()
    try:
        assert entered.wait(timeout=60)
        actions = [adapter.act(o) for o in random_obs(bundle, 100, seed=9)]
        assert len(actions) == 100 and all(np.all(np.isfinite(a)) for a in actions)
        assert adapter.adapting and not future.done()
        assert adapter.adapt_async() is future  # one worker: the running one is returned
        assert adapter.params["l0.w"] is bundle.params["l0.w"]  # not swapped yet
    finally:
        release.set()
    result: AdaptResult = future.result(timeout=60)
    assert result.accepted
    assert adapter.params["l0.w"] is not bundle.params["l0.w"]
    assert adapter.stats()["acts"] == il.episodes * il.horizon + 100
    adapter.close()


def test_reset_during_adaptation_discards_its_result(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, auto_adapt=False)
    run_episodes(adapter, il.episodes, il.horizon)
    entered, release = threading.Event(), threading.Event()
    step = adapter._inner.step

    def held_step(params: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, float]:
        entered.set()
        release.wait(timeout=60)
        return step(params)

    monkeypatch.setattr(adapter._inner, "step", held_step)
    future = adapter.adapt_async()
    assert entered.wait(timeout=60)
    adapter.reset_to_meta()
    release.set()
    result = future.result(timeout=60)
    assert not result.accepted and result.reason == "discarded"
    assert adapter.params["l0.w"] is bundle.params["l0.w"]
    assert adapter.stats()["discarded_adaptations"] == 1
    adapter.close()


def test_reward_computed_on_device_matches_the_family(grasp_bundle: Path) -> None:
    from adapt_robot.sim.families.grasp.reward import reward as grasp_reward

    bundle = Bundle.load(grasp_bundle)
    adapter = OnlineAdapter(bundle, seed=0, auto_adapt=False)
    obs = random_obs(bundle, 6, seed=0)
    for o, nxt in itertools.pairwise(obs):
        a = adapter.act(o)
        adapter.observe(None, done=False, next_obs=nxt)
        ref = grasp_reward(o.astype(np.float64), a.astype(np.float64), nxt.astype(np.float64))
        assert adapter.stats()["last_reward"] == pytest.approx(float(ref), rel=1e-5, abs=1e-6)
    adapter.act(obs[0])
    adapter.observe(None, done=True, next_obs=np.full_like(obs[0], np.nan))
    assert adapter.stats()["reward_faults"] == 1
    adapter.act(obs[0])
    with pytest.raises(ValueError, match="next_obs"):
        adapter.observe(None, done=False)


def test_reward_none_without_reward_graph_is_a_clear_error(point_bundle: Path) -> None:
    adapter = OnlineAdapter(point_bundle, auto_adapt=False)
    adapter.act(np.zeros(adapter.bundle.manifest.observation.dim, dtype=np.float32))
    with pytest.raises(ValueError, match=r"no reward\.onnx.*pass the reward"):
        adapter.observe(None, done=False, next_obs=np.zeros(2, dtype=np.float32))
    adapter.observe(1.0, done=False)  # the pending transition is still there
    with pytest.raises(RuntimeError, match="no act"):
        adapter.observe(1.0, done=False)


def test_unavailable_provider_falls_back_to_cpu(
    point_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="adapt_robot.runtime.sessions"):
        adapter = OnlineAdapter(point_bundle, providers=("tensorrt", "cuda", "cpu"))
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: nothing falls back")
    assert adapter.providers[-1] == "CPUExecutionProvider"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert np.all(np.isfinite(adapter.act(np.zeros(2, dtype=np.float32))))


def test_closed_adapter_refuses_to_act(point_bundle: Path) -> None:
    with OnlineAdapter(point_bundle) as adapter:
        adapter.act(np.zeros(2, dtype=np.float32))
    with pytest.raises(RuntimeError, match="closed"):
        adapter.act(np.zeros(2, dtype=np.float32))


def test_stats_names_every_counter(point_bundle: Path) -> None:
    stats = OnlineAdapter(point_bundle).stats()
    for key in (
        "acts",
        "episodes",
        "obs_faults",
        "clipped_actions",
        "adaptations",
        "rollbacks",
        "rollbacks_update_norm",
        "rollbacks_loss_increase",
        "last_loss_before",
        "last_loss_after",
        "adapt_ms_last",
        "adapt_ms_max",
        "params_version",
        "faults",
    ):
        assert key in stats, key


def test_episodic_mode_repeats_when_not_once(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    mode = EpisodicMode(episodes=1, steps=1, once=False)
    with OnlineAdapter(bundle, mode=mode) as adapter:
        for seed in range(3):
            run_episodes(adapter, 1, il.horizon, seed=seed)
            future = adapter._future
            assert future is not None
            assert future.result(timeout=60).episodes == 1  # only the newest episode
    assert adapter.stats()["adapt_attempts"] == 3


def test_sequential_mode_adapts_after_every_episode_on_this_objects_recent_ones(
    point_bundle: Path,
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    mode = EpisodicMode(episodes=1, steps=1, once=False, history=2)
    with OnlineAdapter(bundle, mode=mode, auto_adapt=False) as adapter:
        used = []
        for seed in range(3):
            run_episodes(adapter, 1, il.horizon, seed=seed)
            used.append(adapter.adapt().episodes)
        assert used == [1, 2, 2]  # all so far, then the last two
        adapter.reset_to_meta()  # a new object: its own experience only
        run_episodes(adapter, 1, il.horizon, seed=5)
        assert adapter.adapt().episodes == 1


def test_auto_adapt_without_recorded_data_never_raises(point_bundle: Path) -> None:
    mode = SlidingWindowMode(every=3, window=10, steps=1)
    with OnlineAdapter(point_bundle, mode=mode) as adapter:
        for _ in range(7):
            adapter.act(np.array([np.nan, 0.0]))  # every tick faulted: nothing recorded
            adapter.observe(0.0, done=False)
    stats = adapter.stats()
    assert stats["adapt_no_data"] == 2 and stats["adapt_attempts"] == 0
    assert stats["obs_faults"] == 7
