"""OnlineAdapter under hostile input: non-finite actions, hung adaptations, bad observe() calls."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.runtime import Bundle, EpisodicMode, OnlineAdapter
from adapt_robot.runtime.bundle_format import BundleError
from adapt_robot.runtime.safety import ActionClip, SafetyConfig
from tests.runtime.test_adapter import run_episodes


def test_action_clip_refuses_non_finite_or_inverted_bounds() -> None:
    ok = np.zeros(2, dtype=np.float32)
    for low, high in (
        ([-np.inf, -1.0], [1.0, 1.0]),
        ([-1.0, -1.0], [1.0, np.inf]),
        ([np.nan, -1.0], [1.0, 1.0]),
        ([-1.0, 2.0], [1.0, 1.0]),
    ):
        with pytest.raises(BundleError, match=r"action\.(low|high)\[\d\].*re-export"):
            ActionClip(np.asarray(low), np.asarray(high))
    ActionClip(ok - 1, ok + 1)


def test_act_never_returns_a_non_finite_action(point_bundle: Path) -> None:
    """Bounds of +-inf (as if a validator let them through) and a huge log_std: still finite."""
    bundle = Bundle.load(point_bundle)
    adapter = OnlineAdapter(bundle, auto_adapt=False, seed=1)
    adapter._clip.low[:] = -np.inf
    adapter._clip.high[:] = np.inf
    huge = {**adapter._params, "log_std": np.full_like(adapter._params["log_std"], 1e4)}
    adapter._params = huge
    obs = np.zeros(bundle.manifest.observation.dim, dtype=np.float32)
    for _ in range(20):
        a = adapter.act(obs)
        assert np.all(np.isfinite(a)), a
        adapter.observe(0.0, done=False)
    stats = adapter.stats()
    assert stats["action_faults"] == 20
    assert stats["faults"] == 20  # answered with the safe action, as a bad observation is


def endless(adapter: OnlineAdapter, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every inner step slow and harmless, so an absurd step count never ends."""
    calls = [0]

    def slow_step(params: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, float]:
        calls[0] += 1
        time.sleep(0.005)
        return dict(params), 0.0, 0.0

    monkeypatch.setattr(adapter._inner, "step", slow_step)
    return calls


def test_close_returns_within_its_bound_when_an_adaptation_never_ends(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(steps=10**9))
    calls = endless(adapter, monkeypatch)
    run_episodes(adapter, il.episodes, il.horizon)  # auto_adapt: the endless adaptation starts
    future = adapter._future
    assert future is not None
    time.sleep(0.2)
    assert adapter.adapting
    t0 = time.perf_counter()
    adapter.close(timeout=0.5)
    assert time.perf_counter() - t0 < 1.5
    result = future.result(timeout=5)  # the worker stops before its next step
    assert not result.accepted and result.reason == "cancelled"
    assert adapter.params["l0.w"] is bundle.params["l0.w"]  # the last good parameters
    assert adapter.stats()["adapt_cancelled"] == 1
    stopped = calls[0]
    time.sleep(0.1)
    assert calls[0] == stopped  # no step after the cancellation


def test_an_adaptation_past_its_deadline_is_rolled_back(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    safety = SafetyConfig.from_acceptance(bundle.manifest.acceptance)
    safety = dataclasses.replace(safety, adapt_deadline_s=0.2)
    with OnlineAdapter(bundle, mode=EpisodicMode(steps=10**9), safety=safety) as adapter:
        endless(adapter, monkeypatch)
        t0 = time.perf_counter()
        run_episodes(adapter, il.episodes, il.horizon)
        future = adapter._future
        assert future is not None
        result = future.result(timeout=10)
        assert time.perf_counter() - t0 < 5
        assert not result.accepted and result.reason == "deadline"
        assert adapter.params["l0.w"] is bundle.params["l0.w"]
        assert adapter.stats()["rollbacks_deadline"] == 1


def test_close_waits_for_an_adaptation_that_ends_in_time(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(steps=1))
    run_episodes(adapter, il.episodes, il.horizon)
    future = adapter._future
    assert future is not None
    adapter.close(timeout=30)
    assert future.done() and future.result().reason != "cancelled"


def test_adapt_after_close_is_refused(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, auto_adapt=False)
    run_episodes(adapter, il.episodes, il.horizon)
    adapter.close()
    with pytest.raises(RuntimeError, match=r"adapt: the adapter is closed"):
        adapter.adapt()
    with pytest.raises(RuntimeError, match="closed"):
        adapter.adapt_async()
    assert adapter.params["l0.w"] is bundle.params["l0.w"]
    assert adapter.stats()["adapt_attempts"] == 0


class _Raises:
    def __float__(self) -> float:
        raise RuntimeError("sensor driver fault")

    def __bool__(self) -> bool:
        raise RuntimeError("sensor driver fault")


@pytest.mark.parametrize(
    "reward",
    [10**400, _Raises(), "1.0", np.array([1.0, 2.0]), None.__class__, float("inf"), 1e300],
    ids=["overflow", "float_raises", "string", "array", "type", "inf", "huge"],
)
def test_a_bad_reward_is_a_counted_fault(point_bundle: Path, reward: object) -> None:
    adapter = OnlineAdapter(point_bundle, auto_adapt=False)
    adapter.act(np.zeros(2, dtype=np.float32))
    adapter.observe(reward, done=False)  # type: ignore[arg-type]
    stats = adapter.stats()
    assert stats["reward_faults"] == 1
    assert not stats["last_reward"] == stats["last_reward"] or abs(stats["last_reward"]) > 1e6


@pytest.mark.parametrize(
    "done",
    [
        "no",
        "",
        float("nan"),
        np.array([True, False]),
        np.array([1]),
        _Raises(),
        2,
        0.5,
        None,
    ],
    ids=["no", "empty", "nan", "array", "array1", "bool_raises", "two", "half", "none"],
)
def test_an_unreadable_done_is_a_counted_fault_that_ends_the_episode(
    point_bundle: Path, done: object
) -> None:
    adapter = OnlineAdapter(point_bundle, auto_adapt=False)
    adapter.act(np.zeros(2, dtype=np.float32))
    adapter.observe(1.0, done=done)  # type: ignore[arg-type]
    stats = adapter.stats()
    assert stats["observe_faults"] == 1
    assert stats["episodes"] == 1  # read as the end of an episode (see observe())


@pytest.mark.parametrize(
    "done", [True, False, 0, 1, np.bool_(True), np.int64(0), np.array(True), 1.0, 0.0]
)
def test_readable_done_values_are_not_faults(point_bundle: Path, done: object) -> None:
    adapter = OnlineAdapter(point_bundle, auto_adapt=False)
    adapter.act(np.zeros(2, dtype=np.float32))
    adapter.observe(1.0, done=done)  # type: ignore[arg-type]
    stats = adapter.stats()
    assert stats["observe_faults"] == 0
    assert stats["episodes"] == int(bool(np.asarray(done).item()))


def test_an_unreadable_success_is_a_fault_read_as_no_success(point_bundle: Path) -> None:
    mode = EpisodicMode(keep_on_success=True)
    adapter = OnlineAdapter(point_bundle, auto_adapt=False, mode=mode)
    adapter.act(np.zeros(2, dtype=np.float32))
    adapter.observe(1.0, done=True, success="yes")  # type: ignore[arg-type]
    assert adapter.stats()["observe_faults"] == 1
    assert not adapter._last_episode_ok


def test_observe_from_another_thread_does_not_change_the_contract(point_bundle: Path) -> None:
    """Sanity: faults never raise, from whichever thread the control loop runs on."""
    adapter = OnlineAdapter(point_bundle, auto_adapt=False)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for done in ("no", np.nan, True):
                adapter.act(np.zeros(2, dtype=np.float32))
                adapter.observe(_Raises(), done=done)  # type: ignore[arg-type]
        except BaseException as err:  # pragma: no cover - the failure is reported below
            errors.append(err)

    t = threading.Thread(target=loop)
    t.start()
    t.join(timeout=30)
    assert not errors
    assert adapter.stats()["reward_faults"] == 3
