"""The plug-in protocol: a user's Gymnasium env with set_task is meta-trained like a built-in."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.config import ConfigError
from adapt_robot.jobs.train import run_train
from adapt_robot.meta.train_config import load_train_config
from sim.envs.vector import VectorTaskEnv
from sim.families.gym_family import gym_task_family
from sim.registry import get_family
from tests.meta import plugin_env
from tests.meta.test_trainer import SMOKE

PLUGIN = ["imports=[tests.meta.plugin_env]", "family=slider"]


def test_vector_env_steps_the_users_env_with_its_reward_and_success() -> None:
    family = get_family("slider")
    env = VectorTaskEnv(family, "gym", 2)
    env.set_tasks([plugin_env.SliderTask(goal=0.1), plugin_env.SliderTask(goal=-0.1)])
    obs = env.reset(np.random.default_rng(0))
    _, rew, _, _, info = env.step(np.array([[1.0], [1.0]]))
    x = obs[:, 0] + 0.1
    np.testing.assert_allclose(rew, -np.abs(x - np.array([0.1, -0.1])), atol=1e-6)
    assert info["success"].tolist() == [True, False]
    env.close()


def test_family_pickles_by_name_for_worker_processes() -> None:
    family = get_family("slider")
    again = pickle.loads(pickle.dumps(family))
    assert type(again) is type(family) and again.obs_spec == family.obs_spec


def test_bad_plugins_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match=r"actions must lie in \[-1, 1\]"):

        class Wide(plugin_env.SliderEnv):
            action_space = plugin_env.gymnasium.spaces.Box(-5.0, 5.0, (1,), np.float32)

        gym_task_family("wide", Wide, plugin_env.sample_slider_tasks, task_type=object, max_steps=5)
    with pytest.raises(ConfigError, match=r"imports\[0\]: cannot import 'no.such.module'"):
        load_train_config(SMOKE, ["imports=[no.such.module]"])


def test_meta_training_a_plugin_family_improves_with_adaptation(tmp_path: Path) -> None:
    over = [
        *PLUGIN,
        f"out_dir={tmp_path}",
        "budget.iterations=30",
        "eval.every=30",
        "eval.tasks=10",
        "algo.inner_lr=0.3",
        "algo.outer_lr=0.01",
    ]
    run = run_train(SMOKE, over, resume=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ev = rows[-1]["eval"]
    # Goals are on either side of the start: without adaptation the best is to stay put;
    # one inner step on the task's own episodes must move towards its goal.
    assert ev["post_return"] > ev["pre_return"] + 2.0


def test_worker_processes_find_the_plugin_family(tmp_path: Path) -> None:
    over = [
        *PLUGIN,
        f"out_dir={tmp_path}",
        "budget.iterations=1",
        "sampler.kind=process",
        "sampler.num_workers=2",
        "sampler.chunk_tasks=5",
    ]
    run = run_train(SMOKE, over, resume=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["env_steps"] == 2 * 10 * 10 * 15  # pre + post, 10 tasks x 10 episodes
