"""A Gymnasium vector env over the batched engine: ``gymnasium.make_vec("adapt_robot/Grasp-v0")``.

``gymnasium.make_vec(id, num_envs=64)`` builds :class:`TaskVectorEnv` (the ids' registered
``vector_entry_point``): one :class:`~adapt_robot.sim.envs.vector.VectorTaskEnv` of ``num_envs``
envs, so the physics of all of them advances in one engine call (MuJoCo's threaded rollout), instead
of the ``SyncVectorEnv`` of single envs that Gymnasium builds otherwise.

Semantics (Gymnasium 1.x):

- Autoreset ``NEXT_STEP``: the step after an env terminated or was truncated resets it and
  returns its first observation with reward 0, ``terminated`` and ``truncated`` False; the action
  given to it in that step is ignored. The other envs go on with their episodes.
- Tasks: each env draws a task from ``split`` at each of its resets (domain randomisation),
  until :meth:`TaskVectorEnv.set_task` fixes its task (``set_task(None)`` returns it to
  drawing). A new task takes effect at that env's next reset.
- ``infos``: ``success`` (this step) and ``episode_success`` (the episode so far, by the family's
  success rule) and ``physics_fault``, each with its ``_key`` mask, as Gymnasium's vector envs
  report per-env info.
- Seeding: ``reset(seed=s)`` seeds one generator for the initial poses and the task draws, so
  the same seed and actions give the same trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from adapt_robot.sim.core.family import SPLITS, Split
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.registry import get_family

INFO_KEYS = ("success", "episode_success", "physics_fault")
"""The per-env entries of ``infos`` (each with its ``_key`` mask)."""


class TaskVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` envs of ``family`` in ``engine``, each on its own task."""

    metadata: dict[str, Any] = {  # noqa: RUF012 (Gymnasium's VectorEnv declares it so)
        "render_modes": ["rgb_array"],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        family: str,
        num_envs: int = 1,
        engine: str = "mujoco",
        split: str = "train",
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        max_episode_steps: int | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        if split not in SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs: expected an integer >= 1, got {num_envs}")
        self.family = get_family(family)
        if max_episode_steps not in (None, self.family.max_steps):
            raise ValueError(
                f"max_episode_steps: the {family} family's episodes are {self.family.max_steps} "
                f"steps, got {max_episode_steps}"
            )
        self.split: Split = "train" if split == "train" else "test"
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.width, self.height = width, height
        self._vec = VectorTaskEnv(self.family, engine, num_envs)
        obs_spec, act_spec = self.family.obs_spec, self.family.action_spec
        self.single_observation_space = gym.spaces.Box(
            obs_spec.low, obs_spec.high, dtype=np.float32
        )
        self.single_action_space = gym.spaces.Box(act_spec.low, act_spec.high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**self.metadata, "render_fps": round(self.family.control_hz)}
        self._fixed: list[TaskParams | None] = [None] * num_envs
        self._rng = np.random.default_rng()
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._started = False

    @property
    def tasks(self) -> list[TaskParams]:
        """The task each env is on now."""
        return list(self._vec.tasks)

    def set_task(self, index: int, task: TaskParams | None) -> None:
        """Fix env ``index``'s task from its next reset on (None: draw one at each reset)."""
        if not 0 <= index < self.num_envs:
            raise IndexError(f"index: expected 0 <= index < {self.num_envs}, got {index}")
        if task is not None and not isinstance(task, self.family.params_type):
            raise TypeError(
                f"task: expected {self.family.params_type.__name__}, got {type(task).__name__}"
            )
        self._fixed[index] = task

    def set_tasks(self, tasks: Sequence[TaskParams | None]) -> None:
        """:meth:`set_task` for every env."""
        if len(tasks) != self.num_envs:
            raise ValueError(f"tasks: expected {self.num_envs}, got {len(tasks)}")
        for i, task in enumerate(tasks):
            self.set_task(i, task)

    def _tasks_for(self, indices: Sequence[int]) -> list[TaskParams]:
        drawn = self.family.sample_tasks(self._rng, len(indices), self.split)
        out = []
        for i, task in zip(indices, drawn, strict=True):
            fixed = self._fixed[i]
            out.append(task if fixed is None else fixed)
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env (or those of ``options["reset_mask"]``, after a first full reset)."""
        if seed is not None:
            if not isinstance(seed, int | np.integer):
                raise TypeError(f"seed: expected one integer for all envs, got {seed!r}")
            self._rng = np.random.default_rng(int(seed))
        mask = None if options is None else options.get("reset_mask")
        if mask is not None and self._started:
            idx = np.flatnonzero(np.asarray(mask, dtype=bool).reshape(self.num_envs))
            obs = self._vec.reset_envs(self._rng, idx, self._tasks_for(list(idx)))
            self._autoreset[idx] = False
        else:
            self._vec.set_tasks(self._tasks_for(list(range(self.num_envs))))
            obs = self._vec.reset(self._rng)
            self._autoreset[:] = False
            self._started = True
        return obs, {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env; those that ended at the last step are reset instead (NEXT_STEP)."""
        if not self._started:
            raise RuntimeError("step: call reset() first")
        resetting = self._autoreset.copy()
        actions = np.array(actions, dtype=np.float32)  # a copy: the ignored rows are zeroed
        if actions.ndim == 2 and actions.shape[0] == self.num_envs:  # else step() says why
            actions[resetting] = 0.0  # whatever they hold (a NaN placeholder included)
        obs, reward, terminated, truncated, info = self._vec.step(actions)
        if resetting.any():
            idx = np.flatnonzero(resetting)
            obs = self._vec.reset_envs(self._rng, idx, self._tasks_for(list(idx)))
            reward[idx] = 0.0
            terminated[idx] = False
            truncated[idx] = False
            for key in INFO_KEYS:
                info[key][idx] = False
        self._autoreset = terminated | truncated
        infos: dict[str, Any] = {}
        for key in INFO_KEYS:
            infos[key] = info[key]
            infos[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return obs, reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """An ``rgb_array`` frame of every env (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array":
            return None
        return tuple(self._vec.render(i, self.width, self.height) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        """Release the engine."""
        del kwargs
        self._vec.close()
