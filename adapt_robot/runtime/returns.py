"""Returns and advantages in numpy: the one implementation shared by the robot and the trainer.

Every function takes padded episode arrays ``[E, T]`` (``E`` episodes of at most ``T`` steps)
with a ``mask [E, T]`` that is 1 on live steps and 0 on padding after an episode ended. Padded
rewards are ignored, and every output is 0 on padding. Episodes end where the mask ends: the
value after the last live step is 0 (fixed-horizon episodes are treated as terminal, as in
rllab/ProMP).

This module imports numpy only; it runs on the robot, where torch is not installed.
"""

from __future__ import annotations

import numpy as np

BASELINE_TIME_SCALE = 100.0
"""Time features use ``t / 100`` (rllab's ``LinearFeatureBaseline``), keeping t^3 small."""


def _check_episodes(name: str, x: np.ndarray, mask: np.ndarray) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name}: expected shape [episodes, T], got {x.shape}")
    if mask.shape != x.shape:
        raise ValueError(f"mask: expected shape {x.shape} (as {name}), got {mask.shape}")


def discounted_returns(rewards: np.ndarray, mask: np.ndarray, gamma: float) -> np.ndarray:
    """Reward-to-go ``G_t = sum_k gamma^k r_{t+k}`` over live steps, per episode ``[E, T]``."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma: expected a value in [0, 1], got {gamma}")
    r = np.asarray(rewards, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    _check_episodes("rewards", r, m)
    r = r * m
    out = np.zeros_like(r)
    running = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        running = r[:, t] + gamma * running * (m[:, t + 1] if t + 1 < r.shape[1] else 0.0)
        out[:, t] = running
    return out * m


def baseline_features(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Features ``[obs, obs^2, t, t^2, t^3, 1]`` of every step, ``[E, T, 2*O + 4]``.

    As in Duan et al. (2016) and ProMP: observations clipped to [-10, 10], ``t`` the step index
    divided by :data:`BASELINE_TIME_SCALE`. Padding rows are all zero.
    """
    o = np.asarray(obs, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    if o.ndim != 3 or o.shape[:2] != m.shape:
        raise ValueError(
            f"obs: expected shape [E, T, obs_dim] matching mask {m.shape}, got {o.shape}"
        )
    o = np.clip(o, -10.0, 10.0)
    e, t_len, _ = o.shape
    t = np.broadcast_to(np.arange(t_len, dtype=np.float64) / BASELINE_TIME_SCALE, (e, t_len))
    t = t[..., None]
    feats = np.concatenate([o, o**2, t, t**2, t**3, np.ones_like(t)], axis=-1)
    return feats * m[..., None]


def fit_linear_baseline(
    features: np.ndarray, targets: np.ndarray, mask: np.ndarray, reg: float = 1e-5
) -> np.ndarray:
    """Ridge least squares ``argmin_w |F w - y|^2 + reg |w|^2`` over live steps; returns ``w``.

    If the normal equations are singular or give a non-finite solution the ridge term is
    multiplied by 10 (up to 5 times, as rllab does) before giving up with a ValueError.
    """
    if reg < 0:
        raise ValueError(f"reg: expected a value >= 0, got {reg}")
    f = np.asarray(features, dtype=np.float64).reshape(-1, features.shape[-1])
    m = np.asarray(mask, dtype=np.float64).reshape(-1)
    y = np.asarray(targets, dtype=np.float64).reshape(-1) * m
    f = f * m[:, None]
    a = f.T @ f
    b = f.T @ y
    eye = np.eye(a.shape[0])
    r = reg
    for _ in range(6):
        try:
            w = np.linalg.solve(a + r * eye, b)
        except np.linalg.LinAlgError:
            w = None
        if w is not None and np.all(np.isfinite(w)):
            return w
        r = max(r * 10.0, 1e-8)
    raise ValueError(f"linear baseline: ridge fit failed even with reg={r / 10.0:g}")


def linear_baseline(
    obs: np.ndarray, returns: np.ndarray, mask: np.ndarray, reg: float = 1e-5
) -> np.ndarray:
    """Fit the linear feature baseline to ``returns`` and return its values ``[E, T]``.

    Call it once per task with that task's episodes (the baseline is fit per task).
    """
    feats = baseline_features(obs, mask)
    w = fit_linear_baseline(feats, returns, mask, reg)
    return (feats @ w) * np.asarray(mask, dtype=np.float64)


def gae(
    rewards: np.ndarray, values: np.ndarray, mask: np.ndarray, gamma: float, lam: float
) -> np.ndarray:
    """Generalised advantage estimation (Schulman et al. 2016), ``[E, T]``.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` with ``V`` = 0 after the last live step;
    ``A_t = sum_k (gamma * lam)^k delta_{t+k}``. ``lam = 1`` gives returns minus the baseline.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma: expected a value in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam: expected a value in [0, 1], got {lam}")
    r = np.asarray(rewards, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    _check_episodes("rewards", r, m)
    _check_episodes("values", v, m)
    r, v = r * m, v * m
    next_v = np.concatenate([v[:, 1:] * m[:, 1:], np.zeros((v.shape[0], 1))], axis=1)
    next_m = np.concatenate([m[:, 1:], np.zeros((m.shape[0], 1))], axis=1)
    delta = (r + gamma * next_v - v) * m
    adv = np.zeros_like(r)
    running = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        running = delta[:, t] + gamma * lam * next_m[:, t] * running
        adv[:, t] = running
    return adv * m


def normalize_advantages(adv: np.ndarray, mask: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Shift and scale live advantages to mean 0, std 1 (padding stays 0)."""
    a = np.asarray(adv, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    if a.shape != m.shape:
        raise ValueError(f"mask: expected shape {a.shape} (as adv), got {m.shape}")
    n = m.sum()
    if n == 0:
        return np.zeros_like(a)
    mean = (a * m).sum() / n
    std = np.sqrt((((a - mean) * m) ** 2).sum() / n)
    return (a - mean) / (std + eps) * m
