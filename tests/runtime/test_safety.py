"""Safety: bad observations, clipping, adversarial rewards, huge rates, rejected updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adapt_robot.runtime import AdaptResult, Bundle, EpisodicMode, OnlineAdapter, SafetyConfig
from adapt_robot.runtime.safety import (
    LOSS_INCREASE,
    NONFINITE_UPDATE,
    UPDATE_NORM,
    ActionClip,
    ObsGuard,
    rejection,
)
from tests.runtime.conftest import edit_params, read_manifest, write_manifest

OBS_DIM = 2  # the point family


def drive(adapter: OnlineAdapter, rewards: list[float], length: int) -> None:
    """One act/observe per reward, episodes of ``length``."""
    rng = np.random.default_rng(0)
    for i, r in enumerate(rewards):
        adapter.act(rng.normal(size=OBS_DIM).astype(np.float32) * 0.2)
        adapter.observe(r, done=(i + 1) % length == 0)


def assert_safe(adapter: OnlineAdapter, action: np.ndarray) -> None:
    b = adapter.bundle
    assert action.dtype == np.float32 and action.shape == (b.manifest.action.dim,)
    assert np.all(np.isfinite(action))
    assert np.all(action >= b.action_low) and np.all(action <= b.action_high)


@pytest.fixture(scope="module")
def fuzz_adapter(point_bundle: Path) -> OnlineAdapter:
    return OnlineAdapter(point_bundle, auto_adapt=False)


bad_values = st.sampled_from([np.nan, np.inf, -np.inf])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)
float_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=shapes,
    elements=st.floats(-1e6, 1e6, width=32),
)
int_arrays = hnp.arrays(dtype=np.int32, shape=shapes, elements=st.integers(-1000, 1000))


def with_bad_entry(draw: st.DrawFn) -> np.ndarray:
    x = np.zeros(OBS_DIM, dtype=draw(st.sampled_from([np.float32, np.float64])))
    x[draw(st.integers(0, OBS_DIM - 1))] = draw(bad_values)
    return x


observations = st.one_of(
    float_arrays,
    int_arrays,
    st.composite(with_bad_entry)(),
    st.just(np.array([1e300, 0.0])),  # finite in float64, inf in float32
    st.sampled_from([None, "obs", [0.1, 0.2], [[0.1, 0.2]], {"x": 1}, 3.0]),
    hnp.arrays(np.float32, OBS_DIM, elements=st.floats(-1e3, 1e3, width=32)),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(obs=observations)
def test_any_observation_gives_a_safe_action(fuzz_adapter: OnlineAdapter, obs: object) -> None:
    arr = np.asarray(obs) if not isinstance(obs, dict) else np.asarray(None)
    with np.errstate(all="ignore"):
        valid = (
            arr.dtype.kind in "fiu"
            and arr.shape in ((OBS_DIM,), (1, OBS_DIM))
            and bool(np.all(np.isfinite(arr.astype(np.float32))))
        )
    before = fuzz_adapter.stats()["obs_faults"]
    action = fuzz_adapter.act(obs)  # type: ignore[arg-type]
    assert_safe(fuzz_adapter, action)
    assert fuzz_adapter.stats()["obs_faults"] == before + (0 if valid else 1)
    fuzz_adapter.observe(0.0, done=False)  # a faulted tick is dropped, never recorded


def test_fault_action_zero_or_hold(point_bundle: Path) -> None:
    good = np.array([0.3, -0.2], dtype=np.float32)
    zero = OnlineAdapter(point_bundle, safety=SafetyConfig(fault_action="zero"), seed=1)
    hold = OnlineAdapter(point_bundle, safety=SafetyConfig(fault_action="hold"), seed=1)
    np.testing.assert_array_equal(hold.act(np.array([np.nan, 0.0])), np.zeros(2))  # none yet
    last = hold.act(good)
    np.testing.assert_array_equal(hold.act(np.array([np.nan, 0.0])), last)
    zero.act(good)
    np.testing.assert_array_equal(zero.act(np.array([np.inf, 0.0])), np.zeros(2))
    hold.reset_to_meta()
    np.testing.assert_array_equal(hold.act(np.zeros(3)), np.zeros(2))


def test_action_clip_counts_and_replaces_nan() -> None:
    clip = ActionClip(np.array([-1.0, 0.5]), np.array([1.0, 2.0]))
    out = np.zeros(2, dtype=np.float32)
    assert not clip.apply(np.array([0.2, 1.0], dtype=np.float32), out)
    np.testing.assert_array_equal(out, np.array([0.2, 1.0], dtype=np.float32))
    assert clip.apply(np.array([-3.0, 9.0], dtype=np.float32), out)
    np.testing.assert_array_equal(out, [-1.0, 2.0])
    assert clip.apply(np.array([np.nan, 1.0], dtype=np.float32), out)
    np.testing.assert_array_equal(out, [0.0, 1.0])  # zero, moved into [low, high]
    np.testing.assert_array_equal(clip.safe_zero(), [0.0, 0.5])


def test_obs_guard_accepts_row_vectors_and_refuses_the_rest() -> None:
    guard = ObsGuard(3)
    assert guard.load(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(guard.buffer, [[1.0, 2.0, 3.0]])
    assert guard.load([1, 2, 3])
    assert not guard.load(np.array([1.0, 2.0, 3.0, 4.0]))
    assert not guard.load(np.array([1.0, np.nan, 3.0]))
    assert not guard.load(np.array(["a", "b", "c"]))
    assert not guard.load(np.array([1 + 1j, 2, 3]))


def test_clipped_actions_are_counted(point_bundle: Path) -> None:
    adapter = OnlineAdapter(point_bundle, seed=0, auto_adapt=False)
    actions = [adapter.act(np.array([0.1, 0.1], dtype=np.float32)) for _ in range(500)]
    at_bound = sum(bool(np.any(np.abs(a) == 1.0)) for a in actions)
    assert at_bound > 0  # std exp(-0.5) around a mean near 0: some samples leave [-1, 1]
    assert adapter.stats()["clipped_actions"] == at_bound


@pytest.mark.parametrize("bad", [1e30, -1e30, np.nan, np.inf])
def test_adversarial_reward_is_rolled_back(point_bundle: Path, bad: float) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, auto_adapt=False)
    rewards = [-0.1] * (il.episodes * il.horizon)
    rewards[5] = bad
    drive(adapter, rewards, il.horizon)
    result = adapter.adapt()
    assert not result.accepted and result.reason == "bad_reward"
    stats = adapter.stats()
    assert stats["rollbacks"] == 1 and stats["rollbacks_bad_reward"] == 1
    assert stats["reward_faults"] == 1 and stats["adaptations"] == 0
    assert all(adapter.params[k] is bundle.params[k] for k in bundle.params)
    assert_safe(adapter, adapter.act(np.zeros(OBS_DIM, dtype=np.float32)))


def test_huge_rewards_without_normalisation_break_the_norm_bound(point_bundle_copy: Path) -> None:
    data = read_manifest(point_bundle_copy)
    data["inner_loop"]["normalize_adv"] = False
    write_manifest(point_bundle_copy, data)
    bundle = Bundle.load(point_bundle_copy)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(
        bundle, safety=SafetyConfig(max_abs_reward=np.inf), auto_adapt=False, seed=2
    )
    drive(adapter, [1e30] * (il.episodes * il.horizon), il.horizon)
    result = adapter.adapt()
    assert not result.accepted and result.reason in ("update_norm", "nonfinite_update")
    assert adapter.stats()["rollbacks"] == 1
    assert all(adapter.params[k] is bundle.params[k] for k in bundle.params)
    assert_safe(adapter, adapter.act(np.zeros(OBS_DIM, dtype=np.float32)))


def scale_rates(bundle: Path, factor: float) -> Bundle:
    def scale(arrays: dict[str, np.ndarray]) -> None:
        for k in arrays:
            if k.startswith("lr."):
                arrays[k] = (arrays[k] * factor).astype(np.float32)

    edit_params(bundle, scale)
    return Bundle.load(bundle)


def adapt_on_noise(bundle: Bundle, safety: SafetyConfig) -> tuple[OnlineAdapter, AdaptResult]:
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, safety=safety, auto_adapt=False, seed=4)
    rng = np.random.default_rng(1)
    drive(adapter, list(rng.normal(size=il.episodes * il.horizon)), il.horizon)
    return adapter, adapter.adapt()


@pytest.mark.parametrize("factor", [1e3, 1e6, 1e30])
def test_huge_learning_rate_is_rolled_back(point_bundle_copy: Path, factor: float) -> None:
    bundle = scale_rates(point_bundle_copy, factor)
    adapter, result = adapt_on_noise(bundle, SafetyConfig())
    assert not result.accepted and result.reason == UPDATE_NORM, result
    assert result.update_norm > SafetyConfig().max_update_norm
    stats = adapter.stats()
    assert stats["rollbacks"] == 1 and stats["rollbacks_update_norm"] == 1
    assert all(adapter.params[k] is bundle.params[k] for k in bundle.params)
    rng = np.random.default_rng(2)
    for _ in range(10):
        assert_safe(adapter, adapter.act(rng.normal(size=OBS_DIM).astype(np.float32)))


def test_without_a_norm_bound_a_wild_update_still_gives_safe_actions(
    point_bundle_copy: Path,
) -> None:
    # The surrogate loss cannot see every wild step (normalised advantages sum to 0, so a
    # huge log_std shift leaves it near 0): the norm bound is the guard that must stay on.
    bundle = scale_rates(point_bundle_copy, 1e30)
    adapter, _ = adapt_on_noise(bundle, SafetyConfig(max_update_norm=np.inf))
    rng = np.random.default_rng(3)
    for _ in range(20):
        assert_safe(adapter, adapter.act(rng.normal(size=OBS_DIM).astype(np.float32)))


def test_loss_rising_on_its_own_batch_is_rolled_back(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    adapter = OnlineAdapter(bundle, auto_adapt=False, seed=4)
    drive(adapter, [-0.1 * i for i in range(il.episodes * il.horizon)], il.horizon)
    step = adapter._inner.step
    calls: list[float] = []

    def worse_after(params: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, float]:
        new, loss, gnorm = step(params)
        calls.append(loss)
        return new, loss + (1.0 if len(calls) > 1 else 0.0), gnorm  # the measurement rises

    monkeypatch.setattr(adapter._inner, "step", worse_after)
    result = adapter.adapt()
    assert len(calls) == 2  # one inner step, one measurement of the result
    assert not result.accepted and result.reason == LOSS_INCREASE
    assert result.loss_after > result.loss_before
    assert adapter.stats()["rollbacks_loss_increase"] == 1
    assert all(adapter.params[k] is bundle.params[k] for k in bundle.params)


def test_rejection_rules() -> None:
    old = {"w": np.zeros(3, dtype=np.float32), "fixed": np.ones(2, dtype=np.float32)}
    step = {"w": np.array([0.1, 0.0, 0.0], dtype=np.float32), "fixed": old["fixed"]}
    cfg = SafetyConfig(max_update_norm=1.0, loss_tolerance=1e-3)

    def why(
        new: dict[str, np.ndarray], before: float, after: float | None, c: SafetyConfig = cfg
    ) -> str | None:
        return rejection(c, old, new, ["w"], [before, 1.0], before, after)[0]

    assert why(step, 1.0, 0.9) is None
    assert why(step, 1.0, 1.0005) is None  # within the tolerance
    assert why(step, 1.0, 1.01) == LOSS_INCREASE
    assert why(step, 1.0, 1.01, SafetyConfig(reject_loss_increase=False)) is None
    assert why(step, 1.0, None) is None  # not measured
    assert why({"w": np.array([2.0, 0, 0], dtype=np.float32)}, 1.0, 0.5) == UPDATE_NORM
    assert why({"w": np.array([np.nan, 0, 0], dtype=np.float32)}, 1.0, 0.5) == NONFINITE_UPDATE
    assert why(step, float("nan"), 0.5) == NONFINITE_UPDATE
    _, norm = rejection(cfg, old, step, ["w"], [1.0], 1.0, 0.9)
    assert norm == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_update_norm": 0.0}, "max_update_norm"),
        ({"loss_tolerance": -1.0}, "loss_tolerance"),
        ({"fault_action": "brake"}, "fault_action"),
        ({"max_abs_reward": float("nan")}, "max_abs_reward"),
    ],
)
def test_safety_config_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SafetyConfig(**kwargs)  # type: ignore[arg-type]


def test_episodic_mode_validation() -> None:
    with pytest.raises(ValueError, match=r"EpisodicMode\.episodes"):
        EpisodicMode(episodes=0)


def test_batch_rejection_order_and_bounds() -> None:
    from adapt_robot.runtime.safety import (
        BAD_REWARD,
        NONFINITE_ADVANTAGES,
        AcceptanceConfig,
        batch_rejection,
    )

    acc = AcceptanceConfig(max_abs_reward=5.0)
    good = np.array([0.5, -1.0])
    assert batch_rejection(acc, np.array([1.0, -5.0]), good) is None  # the bound is inclusive
    assert batch_rejection(acc, np.array([1.0, 5.5]), good) == BAD_REWARD
    assert batch_rejection(acc, np.array([np.nan]), None) == BAD_REWARD  # rewards first
    assert batch_rejection(acc, np.array([1.0]), None) == NONFINITE_ADVANTAGES
    assert batch_rejection(acc, np.array([1.0]), np.array([np.inf])) == NONFINITE_ADVANTAGES


def test_safety_config_is_the_acceptance_settings_plus_the_fault_action() -> None:
    from adapt_robot.runtime.safety import AcceptanceConfig

    acc = AcceptanceConfig(max_update_norm=np.inf, loss_tolerance=0.0)
    cfg = SafetyConfig.from_acceptance(acc, fault_action="hold")
    assert cfg.max_update_norm == np.inf and cfg.loss_tolerance == 0.0
    assert cfg.fault_action == "hold" and cfg.acceptance() == acc
    assert SafetyConfig().acceptance() == AcceptanceConfig()
