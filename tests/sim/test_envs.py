"""Generic behaviour of every (family, engine) in the registry."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import adapt_robot.sim  # noqa: F401  (registers the Gymnasium ids)
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.registry import GYM_IDS, family_engine_pairs, get_family, register_gym_envs

PAIRS = family_engine_pairs()
IDS = [f"{f}-{e}" for f, e in PAIRS]


def rollout(family_name: str, engine: str, seed: int, steps: int, batch: int = 2):
    family = get_family(family_name)
    env = VectorTaskEnv(family, engine, batch)
    rng = np.random.default_rng(seed)
    env.set_tasks(family.sample_tasks(rng, batch, "train"))
    obs = [env.reset(rng)]
    acts, rews, live = [], [], []
    for _ in range(steps):
        a = rng.uniform(-1, 1, (batch, family.action_spec.dim))
        live.append(~env.done)
        o, r, *_ = env.step(a)
        obs.append(o)
        acts.append(a)
        rews.append(r)
    env.live = np.array(live)
    return env, np.array(obs), np.array(acts), np.array(rews)


@pytest.mark.parametrize(("family_name", "engine"), PAIRS, ids=IDS)
def test_same_seed_same_trajectory(family_name: str, engine: str) -> None:
    env1, obs1, _, rew1 = rollout(family_name, engine, seed=7, steps=15)
    env2, obs2, _, rew2 = rollout(family_name, engine, seed=7, steps=15)
    env3, obs3, _, _ = rollout(family_name, engine, seed=8, steps=15)
    for e in (env1, env2, env3):
        e.close()
    np.testing.assert_array_equal(obs1, obs2)
    np.testing.assert_array_equal(rew1, rew2)
    assert not np.array_equal(obs1, obs3)


@pytest.mark.parametrize(("family_name", "engine"), PAIRS, ids=IDS)
def test_spaces_respected_finite_and_reward_recomputed(family_name: str, engine: str) -> None:
    family = get_family(family_name)
    env, obs, acts, rews = rollout(family_name, engine, seed=3, steps=30)
    ctx = env._ctx
    env.close()
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rews))
    low, high = family.obs_spec.low, family.obs_spec.high
    assert np.all(obs >= low - 1e-5), "observation below its documented bound"
    assert np.all(obs <= high + 1e-5), "observation above its documented bound"
    assert obs.shape[-1] == family.obs_spec.dim
    for t in range(acts.shape[0]):
        recomputed = family.reward(obs[t], np.clip(acts[t], -1, 1), obs[t + 1], ctx)
        expected = np.where(env.live[t], recomputed, 0.0)
        np.testing.assert_array_equal(expected, rews[t])


@pytest.mark.parametrize(("family_name", "engine"), PAIRS, ids=IDS)
def test_bad_actions_rejected_before_physics(family_name: str, engine: str) -> None:
    family = get_family(family_name)
    env = VectorTaskEnv(family, engine, 1)
    env.set_tasks(family.sample_tasks(np.random.default_rng(0), 1, "train"))
    env.reset(np.random.default_rng(0))
    before = env.physics.step
    calls = []
    env.physics.step = lambda ctrl: calls.append(ctrl) or before(ctrl)  # type: ignore[method-assign]
    dim = family.action_spec.dim
    bad = np.zeros((1, dim))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        env.step(bad)
    with pytest.raises(ValueError, match="expected shape"):
        env.step(np.zeros((1, dim + 1)))
    assert calls == []
    env.close()


@pytest.mark.parametrize(("family_name", "engine"), PAIRS, ids=IDS)
def test_splits_disjoint_and_classified(family_name: str, engine: str) -> None:
    family = get_family(family_name)
    train = family.sample_tasks(np.random.default_rng(1), 300, "train")
    test = family.sample_tasks(np.random.default_rng(1), 300, "test")
    assert {family.in_split(t) for t in train} == {"train"}
    assert {family.in_split(t) for t in test} == {"test"}
    assert not set(train) & set(test)


@pytest.mark.parametrize(("family_name", "engine"), PAIRS, ids=IDS)
def test_gymnasium_make_set_task_and_render(family_name: str, engine: str) -> None:
    register_gym_envs()
    env = gymnasium.make(
        GYM_IDS[family_name], engine=engine, render_mode="rgb_array", width=64, height=48
    )
    family = get_family(family_name)
    task = family.sample_tasks(np.random.default_rng(5), 1, "test")[0]
    env.unwrapped.set_task(task)
    obs, info = env.reset(seed=1)
    assert info["task"] == task
    assert env.observation_space.contains(obs)
    obs, rew, _term, _trunc, info = env.step(env.action_space.sample())
    assert isinstance(rew, float) and isinstance(info["success"], bool)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert frame.std() > 0, "rendered an empty image"
    env.close()


@pytest.mark.parametrize(("family_name", "engine"), PAIRS, ids=IDS)
def test_mujoco_steps_without_warnings(family_name: str, engine: str) -> None:
    if engine != "mujoco":
        pytest.skip("MuJoCo warning counters")
    env, _obs, _, _ = rollout(family_name, engine, seed=11, steps=40, batch=3)
    warnings = env.physics.warnings()
    env.close()
    assert warnings == {}


def test_unknown_family_and_engine_named_in_error() -> None:
    with pytest.raises(ValueError, match="unknown task family 'drawer'"):
        get_family("drawer")
    family = get_family("point")
    with pytest.raises(ValueError, match="engine: family 'point' supports"):
        VectorTaskEnv(family, "bullet3", 1)


def test_wrong_task_type_rejected() -> None:
    env = VectorTaskEnv(get_family("point"), "numpy", 1)
    with pytest.raises(TypeError, match=r"tasks\[0\]: expected PointParams"):
        env.set_tasks(["goal"])  # type: ignore[list-item]


def test_gym_env_draws_a_task_per_reset_until_one_is_set() -> None:
    env = gymnasium.make(GYM_IDS["point"], engine="numpy", split="test")
    env.reset(seed=0)
    first = env.unwrapped.task
    env.reset()
    second = env.unwrapped.task
    assert first != second
    assert get_family("point").in_split(second) == "test"
    env.unwrapped.set_task(first)
    env.reset()
    env.reset()
    assert env.unwrapped.task == first


def test_gymnasium_module_form_registers_the_ids_in_a_fresh_process() -> None:
    # "adapt_robot.sim:adapt_robot/Grasp-v0": Gymnasium imports adapt_robot.sim (which
    # registers the ids) before making the env.
    import subprocess
    import sys

    code = (
        "import gymnasium\n"
        "assert 'adapt_robot/Grasp-v0' not in gymnasium.registry\n"
        "env = gymnasium.make('adapt_robot.sim:adapt_robot/Grasp-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(obs.shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(38,)"


@pytest.mark.parametrize(
    ("family_name", "engine"), [("grasp", "mujoco"), ("door", "mujoco"), ("point", "numpy")]
)
def test_gymnasiums_own_env_checker_passes(family_name: str, engine: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make(GYM_IDS[family_name], engine=engine)
    try:
        check_env(env.unwrapped, skip_render_check=True)  # raises on a broken API contract
    finally:
        env.close()
