"""One success rule per family, counted once by the vector env for every consumer."""

from __future__ import annotations

import numpy as np
import pytest

from adapt_robot.sim.core.family import episode_success
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.families.gym_family import gym_task_family
from tests.meta import plugin_env


def test_any_and_final_rules_by_hand() -> None:
    live = np.array([True, True, False])
    so_far = np.array([True, False, True])
    step = np.array([False, True, False])
    assert episode_success("any", so_far, step, live).tolist() == [True, True, True]
    assert episode_success("final", so_far, step, live).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="success_rule"):
        episode_success("last", so_far, step, live)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rule", "want"), [("any", True), ("final", False)])
def test_an_episode_that_passes_its_goal_counts_by_the_familys_rule(rule: str, want: bool) -> None:
    # The slider starts near 0; a goal at +0.3 is passed at x = 0.3 and left behind.
    fam = gym_task_family(
        f"slider_{rule}",
        plugin_env.make_slider_env,
        plugin_env.sample_slider_tasks,
        task_type=plugin_env.SliderTask,
        max_steps=6,
        success_rule=rule,  # type: ignore[arg-type]
    )()
    env = VectorTaskEnv(fam, "gym", 1)
    env.set_tasks([plugin_env.SliderTask(goal=0.3)])
    env.reset(np.random.default_rng(0))
    env.physics.envs[0].x = 0.0  # type: ignore[attr-defined]
    seen = []
    for _ in range(6):
        _, _, _, _, info = env.step(np.ones((1, 1)))
        seen.append(bool(info["success"][0]))
    env.close()
    assert any(seen) and not seen[-1]
    assert bool(env.episode_success[0]) is want
