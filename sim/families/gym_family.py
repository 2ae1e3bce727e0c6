"""Bring your own task family: any Gymnasium env with ``set_task(task)`` plus a task sampler.

The plug-in protocol (also in the README, "Extending"):

1. The environment is a ``gymnasium.Env`` with ``Box`` observation and action spaces (actions in
   [-1, 1], as for every family here) whose unwrapped env has ``set_task(task)``: the task
   takes effect at the next ``reset``. ``info["success"]`` (optional) says the task is achieved.
2. A sampler ``sample_tasks(rng, n, split) -> list[task]`` draws tasks of ``split``
   (``"train"`` or ``"test"``); tasks are instances of one class (a frozen dataclass is best).
3. :func:`gym_task_family` wraps both into a :class:`~adapt_robot.sim.core.family.TaskFamily` on
the engine
   ``"gym"``; :func:`adapt_robot.sim.registry.register_family` names it, and a training launch file
   lists the module that registers it under ``imports:`` so that ``adapt-robot train`` can find it.

The env's own reward is used (``observation_reward`` is False: no ``reward.onnx`` is exported,
and the robot must be given the reward). There is no scripted expert, so no warm start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np

from adapt_robot.sim.core.family import (
    EpisodeState,
    Expert,
    Physics,
    Split,
    SuccessRule,
    TaskFamily,
)
from adapt_robot.sim.core.spec import Field, VectorSpec

GYM_ENGINE = "gym"
TaskSampler = Callable[[np.random.Generator, int, Split], Sequence[Any]]


def _box_spec(space: gymnasium.Space[Any], what: str, prefix: str) -> VectorSpec:
    """A VectorSpec with one field per entry of a 1-D ``Box``."""
    if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"{what}: expected a 1-D gymnasium.spaces.Box, got {space}")
    low = np.broadcast_to(space.low, space.shape)
    high = np.broadcast_to(space.high, space.shape)
    return VectorSpec(
        tuple(
            Field(name=f"{prefix}{i}", low=float(lo), high=float(hi), doc=f"{what} entry {i}")
            for i, (lo, hi) in enumerate(zip(low, high, strict=True))
        )
    )


class GymPhysics(Physics):
    """``batch`` Gymnasium envs stepped in turn; sensors = ``[obs, reward, ended, success]``.

    An env that terminated or was truncated (its own time limit) is not stepped again; its last
    sensors are repeated.
    """

    def __init__(self, make_env: Callable[[], gymnasium.Env[Any, Any]], batch: int) -> None:
        super().__init__(batch)
        self.envs = [make_env() for _ in range(batch)]
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape or (0,)))
        self.sensor_dim = self.obs_dim + 3
        self.ctrl_dim = int(np.prod(self.envs[0].action_space.shape or (0,)))
        self._last = np.zeros((batch, self.sensor_dim))
        self._ended = np.zeros(batch, dtype=bool)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """``set_task`` on every env (takes effect at the next reset)."""
        for env, task in zip(self.envs, tasks, strict=True):
            self._set_task(env, task)

    @staticmethod
    def _set_task(env: gymnasium.Env[Any, Any], task: Any) -> None:
        setter = getattr(env.unwrapped, "set_task", None)
        if setter is None:
            raise TypeError(
                f"{type(env.unwrapped).__name__} has no set_task(task): the plug-in "
                "protocol needs one (see adapt_robot.sim.families.gym_family)"
            )
        setter(task)

    def reset_envs(
        self,
        rng: np.random.Generator,
        indices: np.ndarray,
        tasks: Sequence[Any] | None = None,
    ) -> np.ndarray:
        """Reset envs ``indices``, each with a seed drawn from ``rng``.

        ``set_task`` comes first when ``tasks`` are given.
        """
        for i, task in self.reset_plan(indices, tasks):
            if task is not None:
                self._set_task(self.envs[i], task)
            obs, _ = self.envs[i].reset(seed=int(rng.integers(2**31 - 1)))
            self._last[i] = np.concatenate([np.ravel(obs), [0.0, 0.0, 0.0]])
            self._ended[i] = False
        return self._last.copy()

    def step(self, ctrl: np.ndarray) -> np.ndarray:
        """One ``env.step`` per env that has not terminated."""
        for i, env in enumerate(self.envs):
            if self._ended[i]:
                continue
            obs, reward, terminated, truncated, info = env.step(ctrl[i].astype(np.float32))
            success = float(bool(info.get("success", False)))
            # The env's own time limit ends the episode here too (it must not be stepped on).
            ended = bool(terminated) or bool(truncated)
            self._last[i] = np.concatenate([np.ravel(obs), [reward, float(ended), success]])
            self._ended[i] = ended
        return self._last.copy()

    def render(self, index: int, width: int, height: int) -> np.ndarray:
        """The env's own ``rgb_array`` frame (its size is the env's)."""
        del width, height
        frame = self.envs[index].render()
        if not isinstance(frame, np.ndarray):
            raise RuntimeError("render: make the env with render_mode='rgb_array'")
        return frame

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


class GymTaskFamily(TaskFamily[Any]):
    """Base of the classes :func:`gym_task_family` builds (one per plug-in family)."""

    engines: ClassVar[tuple[str, ...]] = (GYM_ENGINE,)
    observation_reward: ClassVar[bool] = False
    control_hz: ClassVar[float] = 0.0
    make_env: ClassVar[Callable[[], gymnasium.Env[Any, Any]]]
    task_sampler: ClassVar[TaskSampler]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by name, so that worker processes can rebuild the family.

        The worker imports the module that defines ``make_env`` (which registers the family
        on import) and looks the family up again.
        """
        return (_rebuild, (self.name, type(self).make_env.__module__))

    def sample_tasks(self, rng: np.random.Generator, n: int, split: Split) -> list[Any]:
        """The user's sampler, checked for count and task type."""
        tasks = list(type(self).task_sampler(rng, n, split))
        if len(tasks) != n:
            raise ValueError(f"{self.name}: sample_tasks returned {len(tasks)} tasks, asked {n}")
        for t in tasks:
            if not isinstance(t, self.params_type):
                raise TypeError(
                    f"{self.name}: sample_tasks returned a {type(t).__name__}, expected "
                    f"{self.params_type.__name__}"
                )
        return tasks

    def in_split(self, task: Any) -> Split:
        """Plug-in tasks carry their split only through the sampler: unknown here."""
        raise ValueError(f"{self.name}: a plug-in family does not say which split a task is in")

    def make_physics(self, engine: str, batch: int) -> Physics:
        """``batch`` envs from the user's factory."""
        self.check_engine(engine)
        return GymPhysics(type(self).make_env, batch)

    def new_episode(self, tasks: Sequence[Any], sensors: np.ndarray) -> EpisodeState:
        """No family-side episode memory beyond the last step's outcome."""
        del tasks
        return {"outcome": np.zeros((sensors.shape[0], 3))}

    def control(self, action: np.ndarray, state: EpisodeState) -> np.ndarray:
        """Actions go to the env unchanged."""
        del state
        return action

    def observe(self, sensors: np.ndarray, state: EpisodeState) -> np.ndarray:
        """The env's observation; its reward, termination and success are kept in ``state``."""
        dim = self.obs_spec.dim
        state["outcome"] = sensors[:, dim : dim + 3].copy()
        return sensors[:, :dim]

    def outcome(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        ctx: np.ndarray,
        state: EpisodeState,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the env reported for the step just taken."""
        out = state["outcome"]
        return out[:, 0], out[:, 2] > 0.5, out[:, 1] > 0.5

    def reward(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, ctx: np.ndarray
    ) -> np.ndarray:
        """Not a function of observations: the env reports it (see :meth:`outcome`)."""
        raise ValueError(f"{self.name}: the reward comes from the env; it has no reward(obs)")

    def success(self, next_obs: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        """Not a function of observations: the env reports it (see :meth:`outcome`)."""
        raise ValueError(f"{self.name}: success comes from the env's info['success']")

    expert_factory: ClassVar[Callable[[Any], Expert] | None] = None
    """``gym_task_family(expert=...)``: the user's controller told a task's true parameters."""

    def expert(self, task: Any) -> Expert:
        """The plug-in's expert for ``task`` (``gym_task_family(expert=...)``).

        It is what warm starts, DAgger, ``adapt-robot experts`` and the scoreboard's ``expert``
        arm run; it gets the task (privileged) and acts on observations like any policy.
        """
        factory = type(self).expert_factory
        if factory is None:
            raise ValueError(
                f"{self.name}: this plug-in family has no expert; pass expert=FACTORY to "
                "gym_task_family (FACTORY(task) -> an object with reset() and act(obs)) to use "
                "warm starts, DAgger or the scoreboard's oracle"
            )
        made = factory(task)
        missing = [m for m in ("reset", "act") if not callable(getattr(made, m, None))]
        if missing:
            raise ValueError(
                f"{self.name}: expert(task) returned a {type(made).__name__} without "
                f"{' or '.join(missing)}(); an expert needs reset() and act(obs) -> action"
            )
        return made


def gym_task_family(
    name: str,
    make_env: Callable[[], gymnasium.Env[Any, Any]],
    sample_tasks: TaskSampler,
    *,
    task_type: type,
    max_steps: int,
    success_rule: SuccessRule = "any",
    expert: Callable[[Any], Expert] | None = None,
) -> type[GymTaskFamily]:
    """A :class:`GymTaskFamily` subclass for ``make_env`` + ``sample_tasks``.

    Register it with ``register_family(name, cls)``. ``max_steps`` is the fixed episode length
    of the lockstep batches (the env may terminate earlier). ``success_rule``: an episode
    succeeded if ``info["success"]`` was true at ``any`` step (Meta-World's rule) or at its
    ``final`` one; training, evaluation, the scoreboard and deploy all count with it.
    ``expert``: optional ``expert(task)`` returning a controller told the task's true
    parameters (``reset()``, ``act(obs) -> action``; e.g. a wrapped Meta-World scripted
    policy), for warm starts, DAgger, ``adapt-robot experts`` and the scoreboard's oracle.
    """
    if expert is not None and not callable(expert):
        raise ValueError(f"expert: expected a callable expert(task), got {expert!r}")
    if success_rule not in ("any", "final"):
        raise ValueError(f"success_rule: expected 'any' or 'final', got {success_rule!r}")
    if max_steps < 1:
        raise ValueError(f"max_steps: expected an integer >= 1, got {max_steps}")
    probe = make_env()
    try:
        obs_spec = _box_spec(probe.observation_space, f"{name} observation", "obs")
        action_spec = _box_spec(probe.action_space, f"{name} action", "act")
        limit = _time_limit(probe)
    finally:
        probe.close()
    if limit is not None and max_steps > limit:
        raise ValueError(
            f"{name}: max_steps {max_steps} is longer than the env's own time limit of {limit} "
            f"steps (its TimeLimit / spec.max_episode_steps); use max_steps <= {limit}"
        )
    if (action_spec.low < -1).any() or (action_spec.high > 1).any():
        raise ValueError(f"{name}: actions must lie in [-1, 1] (rescale them inside the env)")
    attrs = {
        "name": name,
        "params_type": task_type,
        "obs_spec": obs_spec,
        "action_spec": action_spec,
        "max_steps": max_steps,
        "success_rule": success_rule,
        "make_env": staticmethod(make_env),
        "task_sampler": staticmethod(sample_tasks),
        "expert_factory": None if expert is None else staticmethod(expert),
        "__module__": __name__,
    }
    cls: type[GymTaskFamily] = type(f"{name.title()}GymFamily", (GymTaskFamily,), attrs)
    return cls


def _time_limit(env: gymnasium.Env[Any, Any]) -> int | None:
    """The env's own episode limit: its ``spec.max_episode_steps`` or a ``TimeLimit`` wrapper."""
    spec = getattr(env, "spec", None)
    limit = getattr(spec, "max_episode_steps", None)
    inner: Any = env
    while limit is None and isinstance(inner, gymnasium.Wrapper):
        if isinstance(inner, gymnasium.wrappers.TimeLimit):
            limit = inner._max_episode_steps
        inner = inner.env
    return int(limit) if limit is not None else None


def _rebuild(name: str, module: str) -> TaskFamily[Any]:
    """Unpickle a plug-in family: import its module (which registers it), then look it up."""
    import importlib

    from adapt_robot.sim.registry import get_family

    importlib.import_module(module)
    return get_family(name)
