"""Record a scripted expert episode as frames (for eyeballing the physics).

:func:`adapt_robot.reporting.gif.write_gif` turns the frames into a GIF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv


@dataclass(frozen=True)
class Episode:
    """A recorded episode."""

    frames: list[np.ndarray]
    success: bool
    ret: float
    steps: int


def record_expert(
    family: TaskFamily[Any],
    engine: str,
    task: TaskParams,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
) -> Episode:
    """Run the expert for ``task`` and keep a frame after every control step."""
    env = VectorTaskEnv(family, engine, 1)
    try:
        env.set_tasks([task])
        expert = family.expert(task)
        expert.reset()
        obs = env.reset(np.random.default_rng(seed))
        frames = [env.render(0, width, height)]
        ok, ret, steps = False, 0.0, 0
        while not env.done[0]:
            obs, rew, _, _, info = env.step(expert.act(obs[0])[None])
            ok = bool(info["episode_success"][0])
            ret += float(rew[0])
            steps += 1
            frames.append(env.render(0, width, height))
    finally:
        env.close()
    return Episode(frames, ok, ret, steps)
