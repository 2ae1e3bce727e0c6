"""RL² training: trials carry the state across episodes, PPO scores what the rollout fed.

The trial input the rollout feeds (previous action sent, previous reward, episode start) is
checked by hand; the state is carried across an episode end and reset for a new task; the
compact trial unrolled from the initial state gives back the rollout's actions exactly (so the
PPO ratio is computed on what was played); DAgger labels are the experts' actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from adapt_robot.meta.algorithms.rl2 import RL2, TrialRollouts, play_trials
from adapt_robot.meta.policy import PolicyConfig, detach
from adapt_robot.meta.policy_protocol import unroll
from adapt_robot.meta.recurrent_policy import GRUPolicy, trial_input
from adapt_robot.meta.trainer import load_run
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.registry import get_family


def _learner(rl2_run: Path) -> RL2:
    _, learner, _ = load_run(rl2_run)
    assert isinstance(learner, RL2)
    return learner


def _trial(
    learner: RL2, tasks: list[TaskParams], episodes: int, seed: int, **kw: Any
) -> TrialRollouts:
    """One trial per task in a fresh numpy env batch, acting with the learner's params."""
    env = VectorTaskEnv(learner.sampler.family, "numpy", len(tasks))
    return play_trials(
        learner.gru, detach(learner.params), env, tasks, episodes, np.random.default_rng(seed), **kw
    )


def test_the_trial_input_feeds_back_the_action_sent_and_its_reward(rl2_run: Path) -> None:
    learner = _learner(rl2_run)
    family = learner.sampler.family
    tasks = family.sample_tasks(np.random.default_rng(1), 3, "train")
    roll = _trial(learner, tasks, 2, 2)
    o, a = family.obs_spec.dim, family.action_spec.dim
    low, high = family.action_spec.low, family.action_spec.high
    horizon = family.max_steps
    for i in range(3):
        n = int(roll.mask[i].sum())
        assert n == 2 * horizon  # point episodes run to the horizon
        x, act, rew, ep = roll.x[i, :n], roll.act[i, :n], roll.rew[i, :n], roll.episode[i, :n]
        starts = np.flatnonzero(x[:, o + a + 1] == 1.0)
        np.testing.assert_array_equal(starts, [0, horizon])
        np.testing.assert_array_equal(ep, np.repeat([0, 1], horizon))
        for t in range(1, n):
            if t in starts:  # a new episode: nothing fed back, the state carried
                np.testing.assert_array_equal(x[t, o:], [0.0] * (a + 1) + [1.0])
                continue
            np.testing.assert_allclose(x[t, o : o + a], np.clip(act[t - 1], low, high), rtol=1e-6)
            assert x[t, o + a] == pytest.approx(rew[t - 1], rel=1e-6)


def test_the_compact_trial_unrolls_to_the_actions_played(rl2_run: Path) -> None:
    learner = _learner(rl2_run)
    family = learner.sampler.family
    tasks = family.sample_tasks(np.random.default_rng(3), 4, "train")
    params = detach(learner.params)
    roll = _trial(learner, tasks, 3, 4, deterministic=True)
    with torch.no_grad():
        mean, _, _ = unroll(learner.gru, params, torch.as_tensor(roll.x))
    live = roll.mask > 0
    np.testing.assert_allclose(mean.numpy()[live], roll.act[live], atol=1e-6)
    # The state is carried into episode 2: replaying its inputs from a fresh state differs.
    horizon = family.max_steps
    with torch.no_grad():
        fresh, _, _ = unroll(learner.gru, params, torch.as_tensor(roll.x[:, horizon : 2 * horizon]))
    assert not np.allclose(fresh.numpy(), roll.act[:, horizon : 2 * horizon], atol=1e-4)


def test_a_new_trial_starts_from_the_initial_state(rl2_run: Path) -> None:
    """Same task, same seed: a second trial repeats the first (nothing leaks between tasks)."""
    learner = _learner(rl2_run)
    family = learner.sampler.family
    tasks = family.sample_tasks(np.random.default_rng(5), 2, "train")
    env = VectorTaskEnv(family, "numpy", 2)
    params = detach(learner.params)
    a = play_trials(learner.gru, params, env, tasks, 2, np.random.default_rng(6))
    b = play_trials(learner.gru, params, env, tasks, 2, np.random.default_rng(6))
    np.testing.assert_array_equal(a.act, b.act)
    np.testing.assert_array_equal(a.x, b.x)


def test_dagger_labels_are_the_experts_actions_and_beta_one_executes_them(
    rl2_run: Path,
) -> None:
    learner = _learner(rl2_run)
    family = learner.sampler.family
    tasks = family.sample_tasks(np.random.default_rng(7), 2, "train")
    experts = [family.expert(t) for t in tasks]
    roll = _trial(learner, tasks, 1, 8, experts=experts, beta=1.0)
    assert roll.label is not None
    live = roll.mask > 0
    np.testing.assert_allclose(roll.act[live], roll.label[live], atol=1e-6)
    # Labelling the first visited state by hand: the expert told the true task.
    expert = family.expert(tasks[0])
    expert.reset()
    o = family.obs_spec.dim
    want = np.clip(expert.act(roll.x[0, 0, :o]), family.action_spec.low, family.action_spec.high)
    np.testing.assert_allclose(roll.label[0, 0], want, atol=1e-6)


def test_the_trial_input_layout_is_obs_action_reward_start() -> None:
    x = trial_input(
        torch.tensor([[1.0, 2.0]]),
        torch.tensor([[3.0]]),
        torch.tensor([[4.0]]),
        torch.tensor([[1.0]]),
    )
    assert x.tolist() == [[1.0, 2.0, 3.0, 4.0, 1.0]]
    pol = GRUPolicy(2, 1, PolicyConfig(hidden=(4,), reward_scale=0.5, normalize_obs=False))
    # The network reads the reward scaled, the rest as fed (no normaliser here).
    assert pol.normalize(x).tolist() == [[1.0, 2.0, 3.0, 2.0, 1.0]]
    assert pol.obs_dim == 5 and pol.state_dim == 4


def test_rl2_refuses_a_network_of_yours() -> None:
    family = get_family("point")
    with pytest.raises(ValueError, match="rl2 trains its own GRU"):
        RL2.make_policy(family, PolicyConfig(module="tests.meta.policies:mean_net"))
