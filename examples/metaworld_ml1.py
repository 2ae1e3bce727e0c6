"""Meta-World ML1 as adapt-robot task families, through the Gymnasium plug-in protocol.

Meta-World (Yu et al., CoRL 2019; McLean et al. 2025 for v3) ML1 gives one manipulation skill
with 50 training and 50 test task variations (object and goal positions); the goal is hidden
from the observation (its last three entries are zero), so a policy must find it from its own
experience. This module registers, on import:

- ``mw_door_open``: ML1 ``door-open-v3``; ``mw_pick_place``: ML1 ``pick-place-v3``;
  500 steps, Meta-World's own episode length;
- ``mw_door_open_150`` and ``mw_pick_place_150``: the first 150 steps of the same tasks, for
  runs that fit a laptop (Meta-World's scripted policies need fewer than 150 steps on most
  tasks: ``adapt-robot experts`` below measures it).

Train tasks come from ``ML1.train_tasks``, test tasks from ``ML1.test_tasks`` (drawn without
replacement up to 50, then with), and ``set_task`` is Meta-World's own. Success is Meta-World's
rule: ``info["success"]`` at any step. The expert (the oracle arm, warm starts, DAgger) is
Meta-World's scripted policy for the skill told the task's goal (:class:`ScriptedExpert`).

Meta-World 3.1.1 pins ``mujoco==3.3.0`` (it does not load under MuJoCo 4, whose equality
constraints carry more data), so it lives in its own venv; ``make metaworld`` builds
``.venv-metaworld`` with adapt-robot, Meta-World and MuJoCo 3.3.0, and runs the smoke check
(docs/metaworld.md has the commands and the figures measured).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import gymnasium
import metaworld  # type: ignore[import-not-found]
import metaworld.policies  # type: ignore[import-not-found]
import numpy as np

from adapt_robot.sim.core.family import Split
from adapt_robot.sim.families.gym_family import gym_task_family
from adapt_robot.sim.registry import family_names, register_family

SEED = 0
"""Seed of the ML1 benchmark (which 50 + 50 task variations it draws)."""
SKILLS = {
    "mw_door_open": ("door-open-v3", "SawyerDoorOpenV3Policy"),
    "mw_pick_place": ("pick-place-v3", "SawyerPickPlaceV3Policy"),
}
"""Family name -> (ML1 env name, Meta-World scripted policy class)."""
MAX_STEPS = 500
"""Meta-World's episode length (``max_path_length``)."""
SHORT_STEPS = 150
"""Episode length of the ``_150`` variants."""


@dataclass(frozen=True)
class ML1Task:
    """One ML1 task variation: the skill, its split and its index in that split's list."""

    env_name: str
    split: str
    index: int

    def metaworld_task(self) -> Any:
        """The ``metaworld.Task`` this names."""
        ml1 = benchmark(self.env_name)
        tasks = ml1.train_tasks if self.split == "train" else ml1.test_tasks
        return tasks[self.index]


@functools.cache
def benchmark(env_name: str) -> Any:
    """The ML1 benchmark of ``env_name`` (built once per process)."""
    return metaworld.ML1(env_name, seed=SEED)


class ML1Env(gymnasium.Env[np.ndarray, np.ndarray]):
    """A Meta-World ML1 env whose ``set_task`` takes an :class:`ML1Task`.

    The plug-in protocol calls ``set_task`` on the unwrapped env, so this is an env of its
    own (not a wrapper) that steps the Meta-World env it holds.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium.Env declares it so)

    def __init__(self, env_name: str, render_mode: str | None = None) -> None:
        ml1 = benchmark(env_name)
        self.env_name = env_name
        self._env = ml1.train_classes[env_name](render_mode=render_mode)
        self._env.set_task(ml1.train_tasks[0])
        self.observation_space = self._env.observation_space
        self.action_space = self._env.action_space
        self.render_mode = render_mode

    def set_task(self, task: ML1Task) -> None:
        """Meta-World's ``set_task`` (the task takes effect at the next reset)."""
        if task.env_name != self.env_name:
            raise ValueError(f"set_task: a {task.env_name} task given to a {self.env_name} env")
        self._env.set_task(task.metaworld_task())

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Meta-World's reset, seeded."""
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed, options=options)
        return np.asarray(obs, dtype=np.float64), dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Meta-World's step; ``info["success"]`` as a bool."""
        obs, reward, terminated, truncated, info = self._env.step(action)
        info = dict(info)
        info["success"] = bool(info.get("success", 0.0))
        return np.asarray(obs, dtype=np.float64), float(reward), terminated, truncated, info

    def render(self) -> Any:
        """Meta-World's frame (make the env with ``render_mode="rgb_array"``)."""
        return self._env.render()

    def close(self) -> None:
        """Close the Meta-World env."""
        self._env.close()


class ScriptedExpert:
    """Meta-World's scripted policy for the skill, told the task's goal.

    The scripted policies read the goal from the observation's last three entries, which ML1
    zeroes (the goal is what the learner must find): the expert puts the true goal back, as an
    oracle is told the hidden parameters.
    """

    def __init__(self, policy_class: str, goal: np.ndarray) -> None:
        self._policy = getattr(metaworld.policies, policy_class)()
        self.goal = np.asarray(goal, dtype=np.float64)

    def reset(self) -> None:
        """The scripted policies are memoryless."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The scripted action on the observation with the goal, clipped to [-1, 1]."""
        told = np.array(obs, dtype=np.float64)
        told[-3:] = self.goal
        return np.clip(np.asarray(self._policy.get_action(told), dtype=np.float64), -1.0, 1.0)


@functools.cache
def _reference_env(env_name: str) -> Any:
    """One Meta-World env per skill, to read task goals from (never stepped)."""
    return benchmark(env_name).train_classes[env_name]()


def task_goal(task: ML1Task) -> np.ndarray:
    """The goal position of ``task`` (fixed by the task: Meta-World freezes its random vector)."""
    env = _reference_env(task.env_name)
    env.set_task(task.metaworld_task())
    env.reset(seed=0)
    return np.asarray(env._get_pos_goal(), dtype=np.float64).copy()


def _sampler(env_name: str) -> Any:
    def sample_tasks(rng: np.random.Generator, n: int, split: Split) -> list[ML1Task]:
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        ml1 = benchmark(env_name)
        pool = len(ml1.train_tasks if split == "train" else ml1.test_tasks)
        picks = rng.choice(pool, size=n, replace=n > pool)
        return [ML1Task(env_name=env_name, split=split, index=int(i)) for i in picks]

    return sample_tasks


def _register() -> None:
    # make_env and expert are closures of this module: worker processes rebuild a family by
    # importing the module of its make_env (see GymTaskFamily.__reduce__ in
    # adapt_robot.sim.families.gym_family).
    for name, (env_name, policy_class) in SKILLS.items():

        def make_env(env_name: str = env_name) -> ML1Env:
            return ML1Env(env_name)

        def expert(task: ML1Task, policy_class: str = policy_class) -> ScriptedExpert:
            return ScriptedExpert(policy_class, task_goal(task))

        for family, steps in ((name, MAX_STEPS), (f"{name}_{SHORT_STEPS}", SHORT_STEPS)):
            if family not in family_names():
                register_family(
                    family,
                    gym_task_family(
                        family,
                        make_env,
                        _sampler(env_name),
                        task_type=ML1Task,
                        max_steps=steps,
                        success_rule="any",
                        expert=expert,
                    ),
                )


_register()
