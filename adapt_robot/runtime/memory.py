"""The recurrent state and feedback inputs of an RL² bundle's ``policy.onnx`` (numpy only).

A recurrent bundle (``manifest.memory.kind: recurrent``) adapts in its activations: at every
tick its policy reads the observation, the action the robot sent at the previous tick, that
tick's reward and whether a new episode started, and its hidden state, which it returns
updated. :class:`RecurrentMemory` holds those inputs in preallocated buffers that the policy
session reads in place, and the rules for changing them:

- after each policy run, the state becomes ``next_state``, unless that is not finite (then
  the old state is kept and the tick is a fault: the robot gets the safe action);
- :meth:`RecurrentMemory.record` (from ``observe``) stores the action sent and its reward (a
  reward that is not finite or beyond the safety limit enters as 0, so one bad reading never
  poisons the state); at an episode end the next tick is an episode start (action and reward
  0, ``episode_start`` 1) and the state is **kept**: what the policy learnt of this object
  carries into its next attempt. A tick whose policy output was not taken (a bad observation,
  a rejected state) leaves ``episode_start`` as it was, so an episode's first good tick is
  still fed as its start; a second ``act`` without an ``observe`` in between (a controller
  whose send or read failed) is recorded as a tick with reward 0 first;
- :meth:`RecurrentMemory.reset` (from ``reset_to_meta``: a new object) zeroes the state.
"""

from __future__ import annotations

import math

import numpy as np

from adapt_robot.runtime.bundle_format import MemorySpec

FLOAT32_MAX = float(np.finfo(np.float32).max)


class RecurrentMemory:
    """Buffers and update rules of a recurrent policy's state (see the module docstring)."""

    def __init__(self, spec: MemorySpec, act_dim: int, max_abs_reward: float) -> None:
        if not spec.recurrent:
            raise ValueError("RecurrentMemory: the bundle's memory.kind is not recurrent")
        self.spec = spec
        self.max_abs_reward = max_abs_reward
        h = spec.state_dim
        self.state = np.zeros((1, h), dtype=np.float32)
        self.next_state = np.zeros((1, h), dtype=np.float32)
        self.prev_action = np.zeros((1, act_dim), dtype=np.float32)
        self.prev_reward = np.zeros((1, 1), dtype=np.float32)
        self.episode_start = np.ones((1, 1), dtype=np.float32)
        self._sent = np.zeros(act_dim, dtype=np.float32)
        self._taken = False
        """Whether this tick's policy output (its next state) was taken."""

    def inputs(self) -> dict[str, np.ndarray]:
        """Graph input name -> buffer: the feedback inputs and the state."""
        feedback = {
            "prev_action": self.prev_action,
            "prev_reward": self.prev_reward,
            "episode_start": self.episode_start,
        }
        out = {name: feedback[name] for name in self.spec.feedback}
        out[self.spec.state_input] = self.state
        return out

    def outputs(self) -> dict[str, np.ndarray]:
        """Graph output name -> buffer: the next state."""
        return {self.spec.state_output: self.next_state}

    def advance(self) -> bool:
        """After a policy run: take ``next_state`` if it is finite (True), else keep the old."""
        self._taken = bool(np.isfinite(self.next_state).all())
        if self._taken:
            np.copyto(self.state, self.next_state)
        return self._taken

    def sent(self, action: np.ndarray) -> None:
        """The action the robot was given at this tick (fed back at the next)."""
        np.copyto(self._sent, action)

    def record(self, reward: float, done: bool) -> None:
        """The outcome of the tick: its reward, and whether the episode ended."""
        taken, self._taken = self._taken, False
        if done:
            self.prev_action.fill(0.0)
            self.prev_reward.fill(0.0)
            self.episode_start.fill(1.0)
            return
        np.copyto(self.prev_action[0], self._sent)
        ok = math.isfinite(reward) and abs(reward) <= min(self.max_abs_reward, FLOAT32_MAX)
        self.prev_reward[0, 0] = reward if ok else 0.0
        if taken:  # the policy saw this tick: the next is not an episode start
            self.episode_start.fill(0.0)

    def reset(self) -> None:
        """A new task: zero state, the next tick an episode start."""
        self.state.fill(0.0)
        self.next_state.fill(0.0)
        self.prev_action.fill(0.0)
        self.prev_reward.fill(0.0)
        self.episode_start.fill(1.0)
        self._sent.fill(0.0)
        self._taken = False
