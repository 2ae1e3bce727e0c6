"""The Gymnasium vector env over the batched engine: make_vec, NEXT_STEP autoreset, tasks."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import adapt_robot.sim  # noqa: F401  (registers the adapt_robot/* ids)
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.envs.vector_gym import TaskVectorEnv
from adapt_robot.sim.registry import get_family


def test_make_vec_builds_one_batched_env_not_a_sync_vector_env() -> None:
    env = gymnasium.make_vec("adapt_robot/Grasp-v0", num_envs=4)
    try:
        assert isinstance(env, TaskVectorEnv) and env.num_envs == 4
        assert env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
        obs, _ = env.reset(seed=0)
        assert obs.shape == (4, 38) and env.observation_space.contains(obs)
        obs, rew, term, trunc, info = env.step(env.action_space.sample())
        assert obs.shape == (4, 38) and rew.shape == term.shape == trunc.shape == (4,)
        assert info["success"].shape == (4,) and info["_success"].all()
    finally:
        env.close()


def test_next_step_autoreset_resets_only_the_env_that_ended() -> None:
    family = get_family("point")
    horizon = family.max_steps
    env = TaskVectorEnv("point", num_envs=2, engine="numpy")
    env.reset(seed=0)
    zero = np.zeros((2, 2), dtype=np.float32)
    push = np.full((2, 2), 0.5, dtype=np.float32)
    for _ in range(3):
        env.step(push)
    obs, _ = env.reset(options={"reset_mask": np.array([False, True])})  # env 1 starts over
    assert np.abs(obs[1]).max() <= 0.01 < np.abs(obs[0]).max()
    for t in range(4, horizon):
        _, _, term, trunc, _ = env.step(push)
        assert not term.any() and not trunc.any(), t
    obs, _, _, trunc, _ = env.step(push)  # env 0's last step; env 1 is 3 steps behind
    assert trunc.tolist() == [True, False]
    before = obs[1].copy()
    ignored = push.copy()
    ignored[0] = np.nan  # env 0 resets: its action is ignored, whatever it holds
    obs, rew, term, trunc, info = env.step(ignored)
    assert np.abs(obs[0]).max() <= 0.01 and rew[0] == 0.0
    assert not term[0] and not trunc[0] and not info["episode_success"][0]
    assert not np.allclose(obs[1], before)  # env 1 moved on
    for _ in range(2):
        _, _, _, trunc, _ = env.step(zero)
    assert trunc.tolist() == [False, True]
    env.close()


@pytest.mark.parametrize("engine", ["mujoco", "pybullet"])
def test_resetting_one_env_on_a_new_task_leaves_the_others_untouched(engine: str) -> None:
    family = get_family("grasp")
    tasks = family.sample_tasks(np.random.default_rng(0), 3, "train")
    other = family.sample_tasks(np.random.default_rng(1), 1, "test")[0]
    actions = np.random.default_rng(2).uniform(-1, 1, size=(12, 2, family.action_spec.dim))

    def run(reset_at: int | None) -> np.ndarray:
        env = VectorTaskEnv(family, engine, 2)
        env.set_tasks(tasks[:2])
        env.reset(np.random.default_rng(3))
        seen = []
        for t, a in enumerate(actions):
            if t == reset_at:
                env.reset_envs(np.random.default_rng(4), [0], [other])
                assert env.tasks[0] == other and env.elapsed.tolist() == [0, t]
            obs, *_ = env.step(a)
            seen.append(obs[1].copy())
        env.close()
        return np.stack(seen)

    np.testing.assert_array_equal(run(None), run(5))


def test_fixed_tasks_are_kept_and_the_others_drawn_at_every_reset() -> None:
    family = get_family("point")
    fixed = family.sample_tasks(np.random.default_rng(0), 1, "test")[0]
    env = TaskVectorEnv("point", num_envs=3, engine="numpy", split="train")
    env.set_task(1, fixed)
    env.reset(seed=0)
    first = env.tasks
    env.reset()
    second = env.tasks
    assert first[1] == second[1] == fixed
    assert first[0] != second[0] and family.in_split(second[0]) == "train"
    env.set_task(1, None)
    env.reset()
    assert env.tasks[1] != fixed
    with pytest.raises(IndexError, match="index"):
        env.set_task(3, fixed)
    with pytest.raises(TypeError, match="expected PointParams"):
        env.set_task(0, get_family("grasp").sample_tasks(np.random.default_rng(0), 1, "train")[0])
    env.close()


def test_same_seed_same_actions_same_trajectories() -> None:
    def run() -> np.ndarray:
        env = gymnasium.make_vec("adapt_robot/Door-v0", num_envs=3)
        obs, _ = env.reset(seed=7)
        seen = [obs]
        rng = np.random.default_rng(0)
        for _ in range(70):  # past the 64-step horizon: through an autoreset
            obs, *_ = env.step(rng.uniform(-1, 1, size=(3, 4)).astype(np.float32))
            seen.append(obs)
        env.close()
        return np.stack(seen)

    np.testing.assert_array_equal(run(), run())
