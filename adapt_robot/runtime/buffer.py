"""The adapter's experience: a fixed-size ring of transitions, cut into episodes and batches.

:class:`TransitionBuffer` preallocates ``capacity`` rows (the bundle's inner batch capacity
``N``) of ``obs``, ``act`` (the unclipped sample the policy drew, as in training), ``reward``
and episode flags; older rows are overwritten. It answers two questions:

- :meth:`TransitionBuffer.episodes`: the last ``K`` finished episodes (episodic adaptation);
  episodes partly overwritten do not fit the capacity and are left out (counted).
- :meth:`TransitionBuffer.window`: the last ``n`` transitions, cut at episode boundaries
  into segments (sliding-window adaptation).

Both return :class:`Episodes`, padded ``[E, T, ...]`` arrays with a mask (the layout
:func:`adapt_robot.runtime.advantages.task_advantages` takes). Segments are numbered from 0
at their first kept row (the time feature of the baseline), and a segment whose episode has
not ended is treated as ending there, as the returns module treats every masked end.
:func:`pack` writes episodes and their advantages into the fixed-capacity batch of
``adapt_step.onnx``, live rows first and padding (``mask = 0``) after.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Episodes:
    """Padded episodes (a copy, safe to hand to another thread)."""

    obs: np.ndarray
    """Observations ``[E, T, O]`` float32."""
    act: np.ndarray
    """Sampled actions ``[E, T, A]`` float32."""
    rew: np.ndarray
    """Rewards ``[E, T]`` float64 (0 on padding)."""
    mask: np.ndarray
    """1.0 on live rows, 0.0 on padding, ``[E, T]`` float64."""
    dropped_rows: int = 0
    """Rows of the requested episodes left out because they did not fit the capacity."""
    dropped_episodes: int = 0
    """Requested episodes left out (wholly or in part) for the same reason."""

    @property
    def rows(self) -> int:
        """Live transitions."""
        return int(self.mask.sum())

    @property
    def count(self) -> int:
        """Episodes (segments)."""
        return int(self.obs.shape[0])


class TransitionBuffer:
    """A ring of the last ``capacity`` transitions with episode boundaries."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: expected an integer >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.act = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rew = np.zeros(capacity, dtype=np.float64)
        self.first = np.zeros(capacity, dtype=bool)
        """Row starts an episode."""
        self.last = np.zeros(capacity, dtype=bool)
        """Row ends an episode (``done``)."""
        self.total = 0
        """Transitions added since the last :meth:`clear` (global row index of the next one)."""
        self.finished: deque[tuple[int, int]] = deque(maxlen=4096)
        """``(first row, end row)`` global indices of recently finished episodes."""
        self._episode_start = 0

    def clear(self) -> None:
        """Forget every transition."""
        self.total = 0
        self._episode_start = 0
        self.finished.clear()
        self.first[:] = False
        self.last[:] = False

    @property
    def oldest(self) -> int:
        """Global index of the oldest row still held."""
        return max(0, self.total - self.capacity)

    def add(self, obs: np.ndarray, act: np.ndarray, reward: float, done: bool) -> None:
        """Append one transition (copies ``obs`` and ``act`` into the ring)."""
        i = self.total % self.capacity
        self.obs[i] = obs
        self.act[i] = act
        self.rew[i] = reward
        self.first[i] = self.total == self._episode_start
        self.last[i] = done
        self.total += 1
        if done:
            self.finished.append((self._episode_start, self.total))
            self._episode_start = self.total

    def end_episode(self) -> None:
        """End the current episode without a transition (e.g. after a dropped last tick)."""
        if self.total > self._episode_start:
            self.last[(self.total - 1) % self.capacity] = True
            self.finished.append((self._episode_start, self.total))
        self._episode_start = self.total

    def episodes(self, k: int, since: int = 0) -> Episodes:
        """The last ``k`` episodes finished with all rows at or after global row ``since``.

        Episodes whose first rows were overwritten are left out (counted in ``dropped_*``); if
        none of the requested episodes is whole, the newest one's kept tail is used.
        """
        wanted = [e for e in self.finished if e[0] >= since][-k:] if k > 0 else []
        if not wanted:
            raise ValueError(
                f"no finished episode to adapt on (since row {since}); call observe(..., "
                "done=True) at the end of each episode"
            )
        whole = [e for e in wanted if e[0] >= self.oldest]
        segments = whole if whole else [(self.oldest, wanted[-1][1])]
        if segments[-1][0] >= segments[-1][1]:
            raise ValueError(
                f"the finished episodes were overwritten by {self.total - wanted[-1][1]} later "
                f"transitions (buffer capacity {self.capacity}); adapt right after they end"
            )
        used = sum(b - a for a, b in segments)
        requested = sum(b - a for a, b in wanted)
        dropped_eps = len(wanted) - len(whole)
        return self._gather(segments, requested - used, dropped_eps)

    def window(self, n: int) -> Episodes:
        """The last ``n`` transitions (at most the capacity), cut into episode segments."""
        if n < 1:
            raise ValueError(f"window: expected an integer >= 1, got {n}")
        start = max(self.oldest, self.total - n)
        if start >= self.total:
            raise ValueError("no transitions to adapt on yet; act() and observe() first")
        segments: list[tuple[int, int]] = []
        a = start
        for g in range(start, self.total):
            i = g % self.capacity
            if self.first[i] and g > a:
                segments.append((a, g))
                a = g
            if self.last[i]:
                segments.append((a, g + 1))
                a = g + 1
        if a < self.total:
            segments.append((a, self.total))
        return self._gather(segments, 0, 0)

    def _gather(
        self, segments: list[tuple[int, int]], dropped_rows: int, dropped_eps: int
    ) -> Episodes:
        e = len(segments)
        t = max(b - a for a, b in segments)
        obs = np.zeros((e, t, self.obs.shape[1]), dtype=np.float32)
        act = np.zeros((e, t, self.act.shape[1]), dtype=np.float32)
        rew = np.zeros((e, t))
        mask = np.zeros((e, t))
        for j, (a, b) in enumerate(segments):
            idx = np.arange(a, b) % self.capacity
            n = b - a
            obs[j, :n], act[j, :n], rew[j, :n] = self.obs[idx], self.act[idx], self.rew[idx]
            mask[j, :n] = 1.0
        return Episodes(obs, act, rew, mask, dropped_rows, dropped_eps)


PG_FIELDS = ("obs", "act", "adv", "mask")
"""Batch inputs of a policy-gradient ``adapt_step.onnx``."""
TRANSITION_FIELDS = ("obs", "act", "next_obs", "mask")
"""Batch inputs of an identification ``adapt_step.onnx`` (the robot's own transitions)."""


@dataclass(frozen=True)
class Batch:
    """Preallocated inputs of ``adapt_step.onnx``; a graph reads those its inner loss declares.

    ``obs [N, O]``, ``act [N, A]``, ``adv [N]``, ``next_obs [N, O]`` and ``mask [N]``.
    """

    obs: np.ndarray
    act: np.ndarray
    adv: np.ndarray
    mask: np.ndarray
    next_obs: np.ndarray

    @classmethod
    def zeros(cls, capacity: int, obs_dim: int, act_dim: int) -> Batch:
        """An empty batch of ``capacity`` rows (float32)."""
        return cls(
            obs=np.zeros((capacity, obs_dim), dtype=np.float32),
            act=np.zeros((capacity, act_dim), dtype=np.float32),
            adv=np.zeros(capacity, dtype=np.float32),
            mask=np.zeros(capacity, dtype=np.float32),
            next_obs=np.zeros((capacity, obs_dim), dtype=np.float32),
        )

    def feed(self, fields: tuple[str, ...] = PG_FIELDS) -> dict[str, np.ndarray]:
        """The batch tensors ``fields`` as graph inputs."""
        return {f: getattr(self, f) for f in fields}


def pack(episodes: Episodes, adv: np.ndarray, out: Batch) -> int:
    """Write the live rows of ``episodes`` (with ``adv [E, T]``) into ``out``; returns the count.

    Live rows come first in episode order, the rest is zeroed padding with ``mask = 0``.
    """
    live = episodes.mask > 0
    n = int(live.sum())
    cap = out.obs.shape[0]
    if n > cap:
        raise ValueError(f"batch: {n} live rows do not fit the capacity {cap}")
    out.obs[:n] = episodes.obs[live]
    out.act[:n] = episodes.act[live]
    out.adv[:n] = adv[live]
    out.mask[:n] = 1.0
    for a in (out.obs, out.act, out.adv, out.mask):
        a[n:] = 0.0
    return n


def episode_pairs(
    obs: np.ndarray, mask: np.ndarray, capacity: int, *at_t: np.ndarray
) -> list[np.ndarray]:
    """The live transitions ``t -> t+1`` of padded episodes, the latest ``capacity`` of them.

    ``obs [E, T, O]``, ``mask [E, T]``; ``at_t`` are per-step arrays ``[E, T, ...]`` read at
    step ``t``. A transition is live when steps ``t`` and ``t + 1`` are both live steps of the
    same episode (segment). Returns ``[obs_t+1, *at_t]`` rows in episode order: the one pairing
    rule of :func:`pack_transitions` and :func:`pack_context`.
    """
    pair = (mask[:, :-1] > 0) & (mask[:, 1:] > 0)
    rows = [obs[:, 1:][pair], *(x[:, :-1][pair] for x in at_t)]
    if len(rows[0]) > capacity:
        rows = [x[len(x) - capacity :] for x in rows]
    return rows


def pack_transitions(obs: np.ndarray, act: np.ndarray, mask: np.ndarray, out: Batch) -> int:
    """Write the transitions ``(obs_t, act_t, obs_t+1)`` of padded episodes into ``out``.

    ``obs [E, T, O]``, ``act [E, T, A]``, ``mask [E, T]``. A transition is live when steps
    ``t`` and ``t + 1`` are both live steps of the same episode (segment); live transitions come
    first in episode order, the rest is zeroed padding with ``mask = 0``. When there are more
    than the capacity, the latest are kept. Returns the number of live rows. Training builds
    its identification batches with this very function.
    """
    n, o, a = episode_pairs(obs, mask, out.obs.shape[0], obs, act)
    rows = len(o)
    out.obs[:rows], out.act[:rows], out.next_obs[:rows] = o, a, n
    out.mask[:rows] = 1.0
    for x in (out.obs, out.act, out.next_obs, out.mask, out.adv):
        x[rows:] = 0.0
    out.adv[:rows] = 0.0
    return rows


CONTEXT_FIELDS = ("obs", "act", "rew", "next_obs", "mask")
"""Inputs of ``encoder.onnx`` (a PEARL bundle's context), in order."""


@dataclass(frozen=True)
class ContextBatch:
    """Preallocated context of ``encoder.onnx``: transitions with their rewards.

    ``obs [N, O]``, ``act [N, A]``, ``rew [N]``, ``next_obs [N, O]`` and ``mask [N]`` (float32).
    """

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    next_obs: np.ndarray
    mask: np.ndarray

    @classmethod
    def zeros(cls, capacity: int, obs_dim: int, act_dim: int) -> ContextBatch:
        """An empty context of ``capacity`` rows."""
        return cls(
            obs=np.zeros((capacity, obs_dim), dtype=np.float32),
            act=np.zeros((capacity, act_dim), dtype=np.float32),
            rew=np.zeros(capacity, dtype=np.float32),
            next_obs=np.zeros((capacity, obs_dim), dtype=np.float32),
            mask=np.zeros(capacity, dtype=np.float32),
        )

    def feed(self) -> dict[str, np.ndarray]:
        """The context tensors as graph inputs (:data:`CONTEXT_FIELDS`)."""
        return {f: getattr(self, f) for f in CONTEXT_FIELDS}


def pack_context(
    obs: np.ndarray, act: np.ndarray, rew: np.ndarray, mask: np.ndarray, out: ContextBatch
) -> int:
    """Write the transitions ``(obs_t, act_t, rew_t, obs_t+1)`` of padded episodes into ``out``.

    The pairing of :func:`pack_transitions` (:func:`episode_pairs`), with the reward of step
    ``t``.
    Returns the number of live rows. Training builds its PEARL contexts with this function.
    """
    n, o, a, r = episode_pairs(obs, mask, out.obs.shape[0], obs, act, rew)
    rows = len(o)
    out.obs[:rows], out.act[:rows], out.rew[:rows], out.next_obs[:rows] = o, a, r, n
    out.mask[:rows] = 1.0
    for x in (out.obs, out.act, out.rew, out.next_obs, out.mask):
        x[rows:] = 0.0
    return rows
