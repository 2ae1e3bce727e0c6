from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from adapt_robot.runtime import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    linear_baseline,
    normalize_advantages,
)


def test_discounted_returns_hand_computed() -> None:
    rew = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    out = discounted_returns(rew, mask, gamma=0.5)
    # 1 + .5*2 + .25*3 = 2.75; 2 + .5*3 = 3.5; 3. Second episode ends after step 1: the
    # padded reward 3 is ignored.
    np.testing.assert_allclose(out, [[2.75, 3.5, 3.0], [2.0, 2.0, 0.0]])


def test_gae_hand_computed() -> None:
    rew = np.array([[1.0, 1.0]])
    values = np.array([[0.5, 0.2]])
    mask = np.ones((1, 2))
    adv = gae(rew, values, mask, gamma=0.9, lam=0.8)
    d1 = 1.0 - 0.2  # last step: V after the end is 0
    d0 = 1.0 + 0.9 * 0.2 - 0.5
    np.testing.assert_allclose(adv, [[d0 + 0.9 * 0.8 * d1, d1]])


def test_gae_lambda_one_is_returns_minus_values_and_padding_ignored() -> None:
    rng = np.random.default_rng(0)
    rew = rng.normal(size=(3, 6))
    values = rng.normal(size=(3, 6))
    mask = np.ones((3, 6))
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    adv = gae(rew, values, mask, gamma=0.95, lam=1.0)
    ret = discounted_returns(rew, mask, 0.95)
    np.testing.assert_allclose(adv, (ret - values) * mask, atol=1e-12)
    # Changing padded rewards and values changes nothing.
    rew2, values2 = rew.copy(), values.copy()
    rew2[mask == 0] = 100.0
    values2[mask == 0] = -50.0
    np.testing.assert_allclose(
        gae(rew2, values2, mask, 0.95, 0.7), gae(rew, values, mask, 0.95, 0.7)
    )


def test_linear_baseline_exact_on_a_linear_target() -> None:
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(5, 8, 3))
    mask = np.ones((5, 8))
    mask[0, 6:] = 0
    feats = baseline_features(obs, mask)
    assert feats.shape == (5, 8, 2 * 3 + 4)
    w_true = rng.normal(size=feats.shape[-1])
    target = feats @ w_true
    values = linear_baseline(obs, target, mask, reg=1e-12)
    np.testing.assert_allclose(values, target * mask, atol=1e-6)
    w = fit_linear_baseline(feats, target, mask, reg=1e-12)
    np.testing.assert_allclose(feats @ w, target * mask[..., None][..., 0], atol=1e-6)


def test_baseline_features_hand_computed() -> None:
    obs = np.array([[[2.0], [20.0]]])
    feats = baseline_features(obs, np.ones((1, 2)))
    np.testing.assert_allclose(feats[0, 0], [2.0, 4.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(feats[0, 1], [10.0, 100.0, 0.01, 1e-4, 1e-6, 1.0])  # clipped obs


def test_normalize_advantages() -> None:
    adv = np.array([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
    mask = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    out = normalize_advantages(adv, mask)
    live = out[mask > 0]
    assert live.mean() == pytest.approx(0.0, abs=1e-12)
    assert live.std() == pytest.approx(1.0, abs=1e-6)
    assert np.all(out[mask == 0] == 0)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(np.zeros((1, 2)), np.ones((1, 2)), 1.5)
    with pytest.raises(ValueError, match="mask: expected shape"):
        gae(np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 3)), 0.9, 0.9)


def test_runtime_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import adapt_robot.runtime as r\n"
        "import numpy as np\n"
        "print(r.discounted_returns(np.ones((1, 2)), np.ones((1, 2)), 1.0).tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[[2.0, 1.0]]"
