"""Batched environments: B envs of one family, each with its own task, stepped in lockstep.

Episodes have a fixed horizon (``family.max_steps``) and are reset together, which is what
meta-RL samplers want (K episodes per task, all tasks at once). An env that terminates early
(e.g. a broken object) keeps its last observation and gets zero reward until the next reset;
``done`` says which. An env whose physics the engine failed to step (a MuJoCo error; see
:attr:`adapt_robot.sim.core.family.Physics.faulted`) terminates the same way, with zero reward, no
success and ``info["physics_fault"]`` set. The per-step Python is a handful of vectorised numpy
calls; the physics of all envs advances in one engine call where the engine can batch (MuJoCo's
threaded rollout).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from adapt_robot.sim.core.family import EpisodeState, Physics, TaskFamily, episode_success
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.core.spec import check_action


class VectorTaskEnv:
    """``batch`` envs of ``family`` in ``engine``; call :meth:`set_tasks` before :meth:`reset`."""

    def __init__(self, family: TaskFamily[Any], engine: str, batch: int) -> None:
        family.check_engine(engine)
        self.family = family
        self.engine = engine
        self.batch = batch
        self.physics = family.make_physics(engine, batch)
        self.obs_dim = family.obs_spec.dim
        self.act_dim = family.action_spec.dim
        self.max_steps = family.max_steps
        self.tasks: list[TaskParams] = []
        self._ctx = np.zeros((batch, 0))
        self._state: EpisodeState = {}
        self._obs = np.zeros((batch, self.obs_dim), dtype=np.float32)
        self.done = np.zeros(batch, dtype=bool)
        self.episode_success = np.zeros(batch, dtype=bool)
        """Each env's episode success so far, by the family's ``success_rule``."""
        self.elapsed = np.zeros(batch, dtype=np.int64)
        """Steps of each env's current episode (they differ after :meth:`reset_envs`)."""

    def set_tasks(self, tasks: Sequence[TaskParams]) -> None:
        """Give each env its task (takes effect at the next reset)."""
        if len(tasks) != self.batch:
            raise ValueError(f"tasks: expected {self.batch} tasks, got {len(tasks)}")
        self._check_types(tasks)
        self.physics.set_tasks(tasks)
        self.tasks = list(tasks)
        self._ctx = np.stack([self.family.reward_context(t) for t in tasks])

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Reset all envs; returns observations ``[B, O]`` (float32)."""
        if not self.tasks:
            raise RuntimeError("reset: no tasks set; call set_tasks(tasks) first")
        sensors = self.physics.reset(rng)
        self._state = self.family.new_episode(self.tasks, sensors)
        self._obs = self.family.observe(sensors, self._state).astype(np.float32)
        self.done[:] = False
        self.episode_success = np.zeros(self.batch, dtype=bool)
        self.elapsed[:] = 0
        return self._obs.copy()

    def reset_envs(
        self,
        rng: np.random.Generator,
        indices: Sequence[int] | np.ndarray,
        tasks: Sequence[TaskParams] | None = None,
    ) -> np.ndarray:
        """Start a new episode in envs ``indices`` only (on new ``tasks``, one per index).

        The other envs go on with their episodes. Returns the observations ``[B, O]`` of every
        env (the reset ones: their first observation). This is the autoreset of
        :class:`adapt_robot.sim.envs.vector_gym.TaskVectorEnv`; the lockstep samplers reset all at
        once.
        """
        if not self._state:
            raise RuntimeError("reset_envs: call reset() first")
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return self._obs.copy()
        if idx.min() < 0 or idx.max() >= self.batch or np.unique(idx).size != idx.size:
            raise ValueError(f"indices: expected distinct envs in [0, {self.batch}), got {idx}")
        if tasks is not None:
            Physics.reset_plan(idx, tasks)  # one task per index, before any env is touched
            self._check_types(tasks)
        sensors = self.physics.reset_envs(rng, idx, tasks)
        if tasks is not None:
            for i, task in zip(idx, tasks, strict=True):
                self.tasks[i] = task
                self._ctx[i] = self.family.reward_context(task)
        sub = self.family.new_episode([self.tasks[i] for i in idx], sensors[idx])
        first = self.family.observe(sensors[idx], sub).astype(np.float32)
        for key, value in sub.items():
            whole = self._state.get(key)
            if not isinstance(whole, np.ndarray) or whole.shape[:1] != (self.batch,):
                raise TypeError(
                    f"{self.family.name}: episode state {key!r} is not one array row per env, "
                    "so a subset of envs cannot be reset"
                )
            whole[idx] = value
        self._obs[idx] = first
        self.done[idx] = False
        self.episode_success[idx] = False
        self.elapsed[idx] = 0
        return self._obs.copy()

    def _check_types(self, tasks: Sequence[TaskParams]) -> None:
        for i, task in enumerate(tasks):
            if not isinstance(task, self.family.params_type):
                raise TypeError(
                    f"tasks[{i}]: expected {self.family.params_type.__name__}, "
                    f"got {type(task).__name__}"
                )

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Step all envs with ``action [B, A]``.

        Returns ``(obs, reward, terminated, truncated, info)`` with ``info["success"]`` (this
        step), ``info["episode_success"]`` (the episode so far, by the family's
        ``success_rule``) and
        ``info["physics_fault"]`` (the envs the engine failed to step this time: they terminate
        with their last observation, zero reward and no success).
        Raises ValueError for a wrong shape or a non-finite action before any physics runs.
        """
        if not self._state:
            raise RuntimeError("step: call reset() first")
        a = check_action(action, self.act_dim, self.batch)
        ctrl = self.family.control(a, self._state)
        sensors = self.physics.step(ctrl)
        # Rewards are computed from the float32 observations the caller gets, so a robot that
        # recomputes them from what it saw gets exactly the same numbers.
        next_obs = self.family.observe(sensors, self._state).astype(np.float32)
        live = ~self.done
        fault = self.physics.faulted & live
        moved = live & ~fault
        next_obs = np.where(moved[:, None], next_obs, self._obs)
        raw_reward, success, ended = self.family.outcome(
            self._obs, a, next_obs, self._ctx, self._state
        )
        reward = np.where(moved, raw_reward, 0.0)
        success = success & ~fault
        self.episode_success = episode_success(
            self.family.success_rule, self.episode_success, success, live
        )
        terminated = (ended | fault) & live
        self.elapsed += 1
        truncated = (self.elapsed >= self.max_steps) & live & ~terminated
        self.done |= terminated | truncated
        self._obs = next_obs
        return (
            next_obs.copy(),
            reward.astype(np.float64),
            terminated,
            truncated,
            {
                "success": success,
                "episode_success": self.episode_success.copy(),
                "physics_fault": fault,
            },
        )

    def render(self, index: int = 0, width: int = 320, height: int = 240) -> np.ndarray:
        """RGB frame of env ``index``."""
        return self.physics.render(index, width, height)

    def close(self) -> None:
        """Release the engine."""
        self.physics.close()


class EnvBatches:
    """A learner's own env batches of one family: made once per (engine, size), closed together."""

    def __init__(self, family: TaskFamily[Any]) -> None:
        self.family = family
        self._envs: dict[tuple[str, int], VectorTaskEnv] = {}

    def get(self, engine: str, batch: int) -> VectorTaskEnv:
        """The batch of ``batch`` envs in ``engine`` (made at the first call)."""
        key = (engine, batch)
        if key not in self._envs:
            self._envs[key] = VectorTaskEnv(self.family, engine, batch)
        return self._envs[key]

    def close(self) -> None:
        """Release every batch."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
