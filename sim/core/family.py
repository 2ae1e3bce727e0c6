"""The task-family contract: physics moves bodies, the family turns sensors into obs and reward.

A family is engine-agnostic. Each engine provides a :class:`Physics` for the family that consumes
the family's control vector and produces the family's raw sensor vector, with the same layout in
every engine. The family maps (action, episode state) -> control and (sensors, episode state) ->
observation, and scores transitions with pure numpy functions of observations and actions.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np

from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.core.spec import VectorSpec

Split = Literal["train", "test"]
SuccessRule = Literal["any", "final"]
"""When an episode counts as a success: ``any`` step succeeded, or its ``final`` live step."""
SPLITS: tuple[Split, ...] = ("train", "test")

P = TypeVar("P", bound=TaskParams)
EpisodeState = dict[str, np.ndarray]
"""Per-episode, per-env memory kept by the family (arrays with a leading batch axis)."""


class PhysicsFaultWarning(RuntimeWarning):
    """The engine failed to step an env (e.g. a MuJoCo error); that env was stopped.

    Issued by engines that stop a failing env instead of letting the error end the process
    (see :attr:`Physics.faulted`); the message names the env and its task.
    """


class Physics(ABC):
    """``batch`` environments of one family in one engine, each with its own task."""

    sensor_dim: int
    ctrl_dim: int

    def __init__(self, batch: int) -> None:
        if batch < 1:
            raise ValueError(f"batch: expected an integer >= 1, got {batch}")
        self.batch = batch
        self.faulted = np.zeros(batch, dtype=bool)
        """Envs the engine failed to step since their last reset (a physics fault). A faulted
        env no longer moves: :meth:`step` returns its last sensors until :meth:`reset`.
        Engines that never fault leave it all False."""
        self.fault_count = 0
        """Physics faults since this object was made (each is also a
        :class:`PhysicsFaultWarning`)."""

    @abstractmethod
    def set_tasks(self, tasks: Sequence[TaskParams]) -> None:
        """Rebuild the scenes for new tasks (one per env)."""

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Reset every env (initial-pose noise drawn from ``rng``); return sensors ``[B, S]``.

        :meth:`reset_envs` over all of them, in order: one reset path per engine.
        """
        return self.reset_envs(rng, np.arange(self.batch))

    @abstractmethod
    def reset_envs(
        self,
        rng: np.random.Generator,
        indices: np.ndarray,
        tasks: Sequence[TaskParams] | None = None,
    ) -> np.ndarray:
        """Reset only the envs ``indices`` (to ``tasks``, one per index, when given).

        The other envs keep their state mid-episode (a Gymnasium vector env's autoreset).
        Returns the sensors ``[B, S]`` of every env. Engines walk :meth:`reset_plan`.
        """

    @staticmethod
    def reset_plan(
        indices: np.ndarray, tasks: Sequence[TaskParams] | None
    ) -> list[tuple[int, TaskParams | None]]:
        """``(env, its new task or None)`` for each index of a :meth:`reset_envs` call."""
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        if tasks is None:
            return [(i, None) for i in idx]
        if len(tasks) != len(idx):
            raise ValueError(f"tasks: expected {len(idx)} (one per index), got {len(tasks)}")
        return list(zip(idx, tasks, strict=True))

    @abstractmethod
    def step(self, ctrl: np.ndarray) -> np.ndarray:
        """Advance one control period with ``ctrl [B, C]`` held; return sensors ``[B, S]``."""

    @abstractmethod
    def render(self, index: int, width: int, height: int) -> np.ndarray:
        """RGB image ``[H, W, 3]`` uint8 of env ``index``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources."""


class Expert(Protocol):
    """A scripted controller that is told the true task parameters."""

    def reset(self) -> None:
        """Start a new episode."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action for one observation."""


class TaskFamily(ABC, Generic[P]):
    """A distribution of tasks whose hidden parameters change the right behaviour."""

    name: ClassVar[str]
    params_type: ClassVar[type[TaskParams]]
    obs_spec: ClassVar[VectorSpec]
    action_spec: ClassVar[VectorSpec]
    control_hz: ClassVar[float]
    """Control (policy) rate; physics sub-steps run in between."""
    max_steps: ClassVar[int]
    """Episode length in control steps (truncation)."""
    engines: ClassVar[tuple[str, ...]]
    success_rule: ClassVar[SuccessRule] = "any"
    """When an episode succeeded (:func:`episode_success`), the one rule that training,
    evaluation, the scoreboard, the experts and deploy count with (through
    :attr:`adapt_robot.sim.envs.vector.VectorTaskEnv.episode_success`): ``any`` step (an object
    lifted and held, a door opened, as Meta-World counts) or the ``final`` live step (a reacher
    that must stay at its goal)."""
    observation_reward: ClassVar[bool] = True
    """True when reward and success need nothing but observations and actions (a robot can
    compute them on-line). False for teaching tasks whose reward uses the hidden goal."""

    @abstractmethod
    def sample_tasks(self, rng: np.random.Generator, n: int, split: Split) -> list[P]:
        """Draw ``n`` tasks of ``split``; ``train`` and ``test`` never share a task."""

    @abstractmethod
    def in_split(self, task: P) -> Split:
        """Which split a task belongs to (raises if it belongs to neither)."""

    @abstractmethod
    def make_physics(self, engine: str, batch: int) -> Physics:
        """Physics for ``batch`` envs in ``engine``."""

    @abstractmethod
    def new_episode(self, tasks: Sequence[P], sensors: np.ndarray) -> EpisodeState:
        """Episode memory after reset (e.g. rest heights, controller targets)."""

    @abstractmethod
    def control(self, action: np.ndarray, state: EpisodeState) -> np.ndarray:
        """Map validated actions ``[B, A]`` in [-1, 1] to the engine control vector ``[B, C]``."""

    @abstractmethod
    def observe(self, sensors: np.ndarray, state: EpisodeState) -> np.ndarray:
        """Observation ``[B, O]`` from raw sensors; may update ``state``."""

    @abstractmethod
    def reward(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, ctx: np.ndarray
    ) -> np.ndarray:
        """Shaped reward ``[B]`` of a transition. ``ctx`` is :meth:`reward_context` per env."""

    @abstractmethod
    def success(self, next_obs: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        """Boolean ``[B]``: the task is achieved in ``next_obs``."""

    def outcome(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        ctx: np.ndarray,
        state: EpisodeState,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reward ``[B]``, success ``[B]`` and termination ``[B]`` of a transition.

        By default the pure functions :meth:`reward`, :meth:`success` and :meth:`terminated`
        (what a robot recomputes on-line). A family wrapping whole environments that report
        their own reward (:class:`adapt_robot.sim.families.gym_family.GymTaskFamily`) reads it from
        ``state`` instead.
        """
        del state
        return (
            self.reward(obs, action, next_obs, ctx),
            self.success(next_obs, ctx),
            self.terminated(next_obs),
        )

    def terminated(self, next_obs: np.ndarray) -> np.ndarray:
        """Boolean ``[B]``: the episode cannot continue (e.g. the object broke)."""
        return np.zeros(next_obs.shape[0], dtype=bool)

    def describe_task(self, task: P) -> dict[str, Any]:
        """``task`` as a JSON-ready dict, for evaluation, scoreboard and deploy reports.

        A plug-in family's tasks are its own objects; override this to choose what reports
        show. The default is :func:`task_record`.
        """
        return task_record(task)

    def reward_context(self, task: P) -> np.ndarray:
        """Task data the reward needs beyond observations; empty for observation rewards."""
        del task
        return np.zeros(0)

    @abstractmethod
    def expert(self, task: P) -> Expert:
        """Scripted controller tuned with the true parameters of ``task``."""

    law_params: ClassVar[tuple[str, ...]] = ()
    """Names of the expert's behaviour parameters ``theta``, through which alone the hidden
    parameters reach its actions; ``()`` when the family has no control law (its expert is
    stateful, or not written as one)."""

    def _no_law(self) -> ValueError:
        return ValueError(
            f"family {self.name!r} has no control law (law_params is empty); use a policy of "
            "type gaussian_mlp"
        )

    def law_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest ``theta`` ``[P]`` of :meth:`control_law`."""
        raise self._no_law()

    def expert_law_params(self, task: P) -> np.ndarray:
        """The ``theta [P]`` the expert uses for ``task`` (privileged: training only)."""
        raise self._no_law()

    def law_window(self, task: P) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest ``theta [P]`` with which the law still solves ``task`` (privileged).

        The identifying learners move ``theta`` from the robot's first setting to the nearest
        point of this window, not to the expert's own value: a setting that already works is
        then left alone. The default is the expert's value alone (a window of one point).
        """
        theta = self.expert_law_params(task)
        return theta, theta

    def control_law(self, obs: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The expert's memoryless control law: actions ``[B, A]``.

        ``obs [B, O]``, ``theta [B, P]``; branch-free numpy (TorchDynamo traces it into
        ``policy.onnx``).
        """
        raise self._no_law()

    def check_engine(self, engine: str) -> None:
        """Raise a clear error for an engine this family does not support."""
        if engine not in self.engines:
            raise ValueError(
                f"engine: family {self.name!r} supports {list(self.engines)}, got {engine!r}"
            )


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` with numpy scalars and arrays, tuples and mappings made JSON-ready."""
    if depth > 8:
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array{tuple(value.shape)}"
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    return repr(value)


def task_record(task: Any) -> dict[str, Any]:
    """A JSON-ready dict of any task object, never assuming a method on it.

    A dataclass (e.g. :class:`~adapt_robot.sim.core.params.TaskParams`) gives its fields, a mapping
    its items, an object with attributes its public ones, anything else ``{"repr": repr(task)}``.
    Numpy values become numbers and lists (an array of more than 64 entries its shape).
    """
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        fields = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
        return {k: _plain(v) for k, v in fields.items()}
    if isinstance(task, Mapping):
        return {str(k): _plain(v) for k, v in task.items()}
    attrs = getattr(task, "__dict__", None)
    if isinstance(attrs, dict) and attrs:
        return {k: _plain(v) for k, v in attrs.items() if not k.startswith("_")}
    return {"repr": repr(task)}


def episode_success(
    rule: SuccessRule, so_far: np.ndarray, step: np.ndarray, live: np.ndarray
) -> np.ndarray:
    """Episode success ``[B]`` after a step: ``so_far`` updated with this ``step``'s success.

    ``live`` marks the envs that took the step (an ended episode keeps its outcome).
    """
    if rule == "any":
        return np.asarray(so_far | (step & live))
    if rule == "final":
        return np.where(live, step, so_far)
    raise ValueError(f"success_rule: expected 'any' or 'final', got {rule!r}")
