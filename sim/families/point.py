"""``point``: a 2-D point mass reaching a hidden goal (the classic meta-RL sanity task).

Obs: position (x, y). Action: velocity command in [-1, 1]^2, scaled to ``STEP`` metres per
step. Reward: minus the distance to the hidden goal, so it needs the goal (``reward_context``)
and is not observation-based. Train goals lie within radius 0.5 of the origin, test goals in
the ring 0.5-0.8: a disjoint range never seen in training. A new task is found by exploring;
one gradient step on a few episodes is enough to head for it (Finn et al. 2017, sec. 5.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adapt_robot.sim.core.family import EpisodeState, Expert, Physics, Split, TaskFamily
from adapt_robot.sim.core.params import TaskParams, param
from adapt_robot.sim.core.spec import Field, VectorSpec

STEP = 0.1
"""Metres moved per control step at full action."""
ARENA = 1.0
"""Half-width of the square arena (positions are clipped to it)."""
TRAIN_RADIUS = (0.0, 0.5)
TEST_RADIUS = (0.5, 0.8)
SUCCESS_RADIUS = 0.05


@dataclass(frozen=True, kw_only=True)
class PointParams(TaskParams):
    """One point task: where the hidden goal is."""

    goal_x: float = param(doc="goal x (m)", low=-ARENA, high=ARENA, hidden=True)
    goal_y: float = param(doc="goal y (m)", low=-ARENA, high=ARENA, hidden=True)


class PointPhysics(Physics):
    """Kinematic point masses in numpy: position += velocity command, clipped to the arena."""

    sensor_dim = 2
    ctrl_dim = 2

    def __init__(self, batch: int) -> None:
        super().__init__(batch)
        self.pos = np.zeros((batch, 2))

    def set_tasks(self, tasks: Sequence[TaskParams]) -> None:
        """The goal does not change the physics."""

    def reset_envs(
        self,
        rng: np.random.Generator,
        indices: np.ndarray,
        tasks: Sequence[TaskParams] | None = None,
    ) -> np.ndarray:
        """Restart envs ``indices`` near the origin (uniform within 1 cm).

        The goal does not change the physics.
        """
        del tasks
        idx = np.asarray(indices, dtype=np.int64)
        self.pos[idx] = rng.uniform(-0.01, 0.01, size=(idx.size, 2))
        return self.pos.copy()

    def step(self, ctrl: np.ndarray) -> np.ndarray:
        """Integrate one step."""
        self.pos = np.clip(self.pos + ctrl, -ARENA, ARENA)
        return self.pos.copy()

    def render(self, index: int, width: int, height: int) -> np.ndarray:
        """Top view: a white arena with the point as a dark square."""
        img = np.full((height, width, 3), 255, dtype=np.uint8)
        x, y = self.pos[index]
        px = int((x + ARENA) / (2 * ARENA) * (width - 1))
        py = int((ARENA - y) / (2 * ARENA) * (height - 1))
        img[max(py - 3, 0) : py + 4, max(px - 3, 0) : px + 4] = (30, 30, 120)
        return img


class PointExpert:
    """Head straight for the (known) goal."""

    def __init__(self, task: PointParams) -> None:
        self.goal = np.array([task.goal_x, task.goal_y])

    def reset(self) -> None:
        """Stateless."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Full-speed step towards the goal, exact on the last step."""
        return np.clip((self.goal - obs[:2]) / STEP, -1.0, 1.0)


class PointFamily(TaskFamily[PointParams]):
    """2-D point mass, hidden goal."""

    name = "point"
    params_type = PointParams
    obs_spec = VectorSpec(
        (Field(name="pos", size=2, low=-ARENA, high=ARENA, unit="m", doc="point position"),)
    )
    action_spec = VectorSpec(
        (Field(name="vel", size=2, low=-1, high=1, unit="1", doc=f"velocity x {STEP} m/step"),)
    )
    control_hz = 10.0
    max_steps = 20
    engines = ("numpy",)
    observation_reward = False

    def sample_tasks(self, rng: np.random.Generator, n: int, split: Split) -> list[PointParams]:
        """Goals uniform in area within the split's radius band, any direction."""
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        lo, hi = TRAIN_RADIUS if split == "train" else TEST_RADIUS
        r = np.sqrt(rng.uniform(lo**2, hi**2, size=n))
        if split == "test":  # the boundary radius belongs to train
            r = np.maximum(r, np.nextafter(lo, np.inf))
        phi = rng.uniform(0, 2 * np.pi, size=n)
        return [
            PointParams(goal_x=float(ri * np.cos(pi)), goal_y=float(ri * np.sin(pi)))
            for ri, pi in zip(r, phi, strict=True)
        ]

    def in_split(self, task: PointParams) -> Split:
        """Train inside radius 0.5, test strictly outside it (up to 0.8)."""
        r = float(np.hypot(task.goal_x, task.goal_y))
        if r <= TRAIN_RADIUS[1]:
            return "train"
        if r <= TEST_RADIUS[1]:
            return "test"
        raise ValueError(f"goal radius {r:.3f} is outside both splits (max {TEST_RADIUS[1]})")

    def make_physics(self, engine: str, batch: int) -> Physics:
        """Only the numpy engine: the point has no contacts."""
        self.check_engine(engine)
        return PointPhysics(batch)

    def new_episode(self, tasks: Sequence[PointParams], sensors: np.ndarray) -> EpisodeState:
        """No memory needed."""
        return {"t": np.zeros(len(tasks))}

    def control(self, action: np.ndarray, state: EpisodeState) -> np.ndarray:
        """Velocity command in metres per step."""
        state["t"] += 1
        return action * STEP

    def observe(self, sensors: np.ndarray, state: EpisodeState) -> np.ndarray:
        """The position itself."""
        return sensors.copy()

    def reward_context(self, task: PointParams) -> np.ndarray:
        """The hidden goal (the reward is not observation-based)."""
        return np.array([task.goal_x, task.goal_y])

    def reward(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, ctx: np.ndarray
    ) -> np.ndarray:
        """Minus the distance from the new position to the goal."""
        return -np.linalg.norm(next_obs[..., :2] - ctx[..., :2], axis=-1)

    success_rule = "final"  # a reacher must end at its goal, not pass through it

    def success(self, next_obs: np.ndarray, ctx: np.ndarray) -> np.ndarray:
        """Within 5 cm of the goal."""
        return np.linalg.norm(next_obs[..., :2] - ctx[..., :2], axis=-1) < SUCCESS_RADIUS

    def expert(self, task: PointParams) -> Expert:
        """Straight-line controller."""
        return PointExpert(task)
