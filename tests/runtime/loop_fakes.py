"""Test doubles for the control loop and the bridge: a scripted robot and a linear controller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np


class LinearController:
    """``action = W @ obs`` (float32), recording every call."""

    def __init__(self, obs_dim: int = 5, act_dim: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((act_dim, obs_dim)).astype(np.float32)
        self.acted: list[np.ndarray] = []
        self.observed: list[tuple[float | None, bool, np.ndarray | None]] = []
        self.params_version = 0
        self.faults = 0
        self.hooks: dict[str, Callable[[int], None]] = {}

    def act(self, obs: np.ndarray) -> np.ndarray:
        n = len(self.acted)
        self.acted.append(np.array(obs, copy=True))
        if "act" in self.hooks:
            self.hooks["act"](n)
        if not np.isfinite(obs).all():
            self.faults += 1
            return np.zeros(self.W.shape[0], dtype=np.float32)
        return (self.W @ obs).astype(np.float32)

    def observe(self, reward: float | None, done: bool, next_obs: np.ndarray | None = None) -> None:
        n = len(self.observed)
        self.observed.append((reward, done, None if next_obs is None else next_obs.copy()))
        if "observe" in self.hooks:
            self.hooks["observe"](n)

    def stats(self) -> dict[str, float | int]:
        return {
            "params_version": self.params_version,
            "faults": self.faults,
            "acts": len(self.acted),
        }


class ScriptedRobot:
    """A robot whose observation is ``[step, episode, 0, 0, ...]``; episodes last ``horizon``.

    ``fail`` maps a method name to the set of call indices (0-based, per method) that raise;
    ``delay_s`` maps a method name to a sleep inserted in every call.
    """

    def __init__(
        self,
        obs_dim: int = 5,
        act_dim: int = 3,
        horizon: int = 10,
        fail: dict[str, set[int]] | None = None,
        delay_s: dict[str, float] | None = None,
    ) -> None:
        self._obs_dim, self._act_dim, self.horizon = obs_dim, act_dim, horizon
        self.fail = fail or {}
        self.delay_s = delay_s or {}
        self.calls: dict[str, int] = {}
        self.sent: list[np.ndarray] = []
        self.resets = 0
        self.episode = -1
        self.step = 0
        self.sent_event = threading.Event()
        self.event_after = 10**9

    @property
    def obs_dim(self) -> int:
        return self._obs_dim

    @property
    def action_dim(self) -> int:
        return self._act_dim

    def _call(self, name: str) -> None:
        n = self.calls.get(name, 0)
        self.calls[name] = n + 1
        if name in self.delay_s:
            time.sleep(self.delay_s[name])
        if n in self.fail.get(name, set()):
            raise OSError(f"{name} failed (call {n})")

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self._obs_dim, dtype=np.float32)
        obs[0], obs[1] = self.step, self.episode
        return obs

    def reset(self) -> np.ndarray:
        self._call("reset")
        self.resets += 1
        self.episode += 1
        self.step = 0
        return self._obs()

    def read_obs(self) -> np.ndarray:
        self._call("read_obs")
        return self._obs()

    def send_action(self, action: np.ndarray) -> None:
        self._call("send_action")
        self.sent.append(np.array(action, copy=True))
        self.step += 1
        if len(self.sent) >= self.event_after:
            self.sent_event.set()

    def reward(self) -> float | None:
        self._call("reward")
        return float(self.step)

    def done(self) -> bool:
        return self.step >= self.horizon

    def success(self) -> bool | None:
        return self.episode % 2 == 0
