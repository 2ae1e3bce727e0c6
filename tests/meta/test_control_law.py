"""The control-law policy and the law_id learner: the law is the expert's, theta is decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.meta.algorithms.law import LawID, mode_goal, window_goal
from adapt_robot.meta.control_law import ControlLawPolicy
from adapt_robot.meta.episodes import play_episodes
from adapt_robot.meta.policy import PolicyConfig
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import Bundle, EpisodicMode, OnlineAdapter
from adapt_robot.sim.core.family import Split, TaskFamily
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.families.grasp.expert import GraspExpert
from adapt_robot.sim.families.grasp.task import grip_window
from adapt_robot.sim.registry import get_family


@pytest.fixture(scope="module")
def grasp_law() -> ControlLawPolicy:
    cfg = PolicyConfig(hidden=(8,), adapt="context", context_dim=2, normalize_obs=False)
    return ControlLawPolicy(get_family("grasp"), cfg)


def test_the_policy_told_the_experts_theta_is_the_expert(grasp_law: ControlLawPolicy) -> None:
    family = get_family("grasp")
    tasks = family.sample_tasks(np.random.default_rng(0), 6, "train")
    rng = np.random.default_rng(1)
    lo, hi = family.obs_spec.low, family.obs_spec.high
    obs = rng.uniform(np.where(np.isfinite(lo), lo, -1), np.where(np.isfinite(hi), hi, 1), (50, 38))
    for task in tasks:
        theta = family.expert_law_params(task)
        want = np.stack([GraspExpert(task).act(o) for o in obs])
        got = family.control_law(obs, np.broadcast_to(theta, (50, 2)))
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_decoded_theta_stays_inside_the_law_bounds(grasp_law: ControlLawPolicy) -> None:
    params = grasp_law.init_params(torch.Generator().manual_seed(0))
    z = torch.linspace(-50, 50, 21).reshape(-1, 1).expand(-1, 2)
    theta = grasp_law.theta(params, z).numpy()
    low, high = get_family("grasp").law_bounds()
    assert np.all(theta >= low - 1e-6) and np.all(theta <= high + 1e-6)
    mid = grasp_law.theta(params, torch.zeros(2)).numpy()
    u = grasp_law.to_unit(mid)
    np.testing.assert_allclose(u, grasp_law.unit_theta(params, torch.zeros(2)).numpy(), atol=1e-6)


@pytest.mark.parametrize("split", ["train", "test"])
def test_grasp_working_window_lies_inside_the_safe_squeeze_window(split: Split) -> None:
    family = get_family("grasp")
    low, high = family.law_bounds()
    for task in family.sample_tasks(np.random.default_rng(3), 64, split):
        lo, hi = family.law_window(task)
        safe_lo, safe_hi = grip_window(task)
        assert safe_lo < lo[0] <= hi[0] < safe_hi, (task, lo, hi)
        assert lo[1] < task.com_x < hi[1] or task.com_x in (low[1], high[1])
        assert np.all(low <= lo) and np.all(hi <= high)


def test_grasp_law_lifts_train_objects_at_both_edges_of_the_working_window() -> None:
    family = get_family("grasp")
    tasks = family.sample_tasks(np.random.default_rng(5), 8, "train")
    windows = [family.law_window(t) for t in tasks]
    env = VectorTaskEnv(family, "mujoco", len(tasks))
    rng = np.random.default_rng(0)
    try:
        for edge in (0, 1):
            theta = np.stack([w[edge] for w in windows])

            def act(t: int, o: np.ndarray, th: np.ndarray = theta) -> np.ndarray:
                return family.control_law(o, th)

            played = play_episodes(env, tasks, rng, act)
            assert played.success.all(), (edge, played.success)
    finally:
        env.close()


def test_default_working_window_is_the_experts_theta_alone() -> None:
    family = get_family("grasp")
    task = family.sample_tasks(np.random.default_rng(0), 1, "train")[0]
    lo, hi = TaskFamily.law_window(family, task)
    np.testing.assert_array_equal(lo, family.expert_law_params(task))
    np.testing.assert_array_equal(hi, lo)


def test_window_goal_keeps_a_working_start_and_moves_a_failing_one_just_inside() -> None:
    window = torch.tensor([[[-0.5, 0.0], [0.2, 0.1]]]).expand(3, 2, 2)
    start = torch.tensor([[0.0, 0.05], [0.9, -1.0], [-0.7, 0.3]])
    want = torch.tensor([[0.0, 0.05], [0.2, 0.0], [-0.5, 0.1]])
    torch.testing.assert_close(window_goal(start, window), want)


def test_family_without_a_law_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs a family with a control law"):
        ControlLawPolicy(get_family("point"), PolicyConfig(adapt="context"))


def test_law_bundle_acts_like_the_torch_policy_and_adapts_only_z(
    law_run: Path, law_bundle: Path
) -> None:
    _, learner, _ = load_run(law_run)
    bundle = Bundle.load(law_bundle)
    assert bundle.manifest.policy.type == "control_law"
    assert bundle.manifest.inner_loop.loss == "identification"
    family = get_family("grasp")
    from adapt_robot.sim.envs.vector import VectorTaskEnv

    env = VectorTaskEnv(family, "mujoco", 1)
    env.set_tasks(family.sample_tasks(np.random.default_rng(2), 1, "test"))
    obs = env.reset(np.random.default_rng(3))
    params = {k: v.detach() for k, v in learner.params.items()}
    with OnlineAdapter(
        bundle, mode=EpisodicMode(episodes=1), deterministic=True, auto_adapt=False
    ) as adapter:
        for _ in range(family.max_steps):
            a = adapter.act(obs[0])
            want = learner.policy.forward(params, torch.as_tensor(obs))[0].numpy()[0]
            np.testing.assert_allclose(a, np.clip(want, -1, 1), atol=1e-5)
            obs, *_ = env.step(a[None])
            adapter.observe(None, done=bool(env.done[0]), next_obs=obs[0])
            if env.done[0]:
                break
        result = adapter.adapt()
        assert result.reason in ("accepted", "loss_increase", "update_norm"), result
        for p in bundle.manifest.parameters:
            if p.name != "context":
                assert np.array_equal(adapter.params[p.name], bundle.params[p.name])
    env.close()


def test_law_id_refuses_a_warm_start_with_the_key_path() -> None:
    from adapt_robot.config import ConfigError
    from adapt_robot.meta.train_config import load_train_config
    from tests.conftest import ROOT

    with pytest.raises(ConfigError, match=r"warm_start\.tasks: law_id"):
        load_train_config(ROOT / "launch" / "smoke_law.yaml", ["warm_start.tasks=4"])


def test_mode_goal_is_the_target_inside_the_most_windows_not_the_mean() -> None:
    # Two modes (a door opens one way or the other): +0.8 works for tasks 0 and 1, -0.8 only
    # for task 2, and the mean of the targets (0.27) is inside no window.
    targets = torch.tensor([[-0.8], [0.8], [0.9]])
    windows = torch.tensor([[[-1.0], [-0.5]], [[0.5], [1.0]], [[0.7], [1.0]]])
    torch.testing.assert_close(mode_goal(targets, windows), torch.tensor([0.8]))
    inside_mean = (targets.mean(0) >= windows[:, 0]) & (targets.mean(0) <= windows[:, 1])
    assert not inside_mean.any()


def _law_learner(launch: str, *overrides: str) -> LawID:
    from adapt_robot.meta.train_config import load_train_config
    from adapt_robot.meta.trainer import build_learner
    from tests.conftest import ROOT

    learner = build_learner(load_train_config(ROOT / "launch" / launch, list(overrides)))
    assert isinstance(learner, LawID)
    return learner


def test_sliding_window_prefixes_end_at_any_tick_from_the_first() -> None:
    # The robot adapts every few ticks from the start of an episode, on all it has seen: a
    # training prefix must be able to end at tick 1, and each end tick is equally likely.
    learner = _law_learner("smoke_law.yaml", "algo.window_p=1.0")
    t, o, a = learner.horizon, learner.policy.obs_dim, learner.policy.act_dim
    obs, act, mask = np.zeros((1, t, o)), np.zeros((1, t, a)), np.ones((1, t))
    rng = np.random.default_rng(0)
    rows = [int(learner.training_batch(obs, act, mask, 0, rng).mask.sum()) for _ in range(3000)]
    learner.close()
    assert min(rows) == 1 and max(rows) == t - 1  # t ticks hold t - 1 transitions
    short = sum(r <= 10 for r in rows) / len(rows)  # expected 10 / (t - 1)
    assert abs(short - 10 / (t - 1)) < 0.03, short


def test_door_normaliser_is_fitted_on_the_experts_episodes_too() -> None:
    # The first attempts barely move the door; the expert's episodes open it, so the angle's
    # spread (which the runtime's teleport check is scaled by) covers an opening door.
    from adapt_robot.sim.families.door import task as door_task

    spreads = []
    for with_expert in (False, True):
        learner = _law_learner(
            "door_law.yaml",
            "sampler.tasks_per_iter=4",
            "algo.explore_episodes=1",
            f"algo.normalizer_expert={str(with_expert).lower()}",
        )
        rng = np.random.default_rng(1)
        tasks = learner.train_tasks(rng)
        explore = learner.rollouts(learner.thetas(learner._z0(len(tasks))), tasks, rng, True)
        learner.fit_normalizer(explore, tasks, rng)
        norm = learner.policy.normalizer
        assert norm.frozen
        first_attempts = float(explore.mask.sum())
        assert norm.count > first_attempts if with_expert else norm.count == first_attempts
        spreads.append(float(np.sqrt(norm.var[door_task.ANGLE])))
        learner.close()
    assert spreads[1] > 2 * spreads[0], spreads


def test_interleave_puts_each_tasks_rounds_together() -> None:
    from adapt_robot.meta.episodes import Episodes, interleave

    def ep(tag: float) -> Episodes:  # 2 tasks, 1 step: obs = tag + task index
        obs = np.array([[[tag]], [[tag + 1]]], dtype=np.float32)
        return Episodes(obs, obs, obs[..., 0], np.ones((2, 1)), np.array([tag > 0, False]))

    out = interleave([ep(0.0), ep(10.0), ep(20.0)])
    assert out.obs[:, 0, 0].tolist() == [0, 10, 20, 1, 11, 21]
    assert out.success.tolist() == [False, True, True, False, False, False]


def test_sequential_exploration_acts_each_round_with_the_last_adaptation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adapt_robot.meta.identification import transition_batch

    learner = _law_learner(
        "smoke_law.yaml",
        "algo.explore=sequential",
        "algo.explore_episodes=2",
        "sampler.tasks_per_iter=3",
    )
    played: list[np.ndarray] = []
    real = learner.rollouts

    def spy(theta: np.ndarray, *args: object, **kw: object) -> object:
        played.append(theta.copy())
        return real(theta, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(learner, "rollouts", spy)
    rng = np.random.default_rng(0)
    tasks = learner.train_tasks(rng)
    out = learner.sequential_rollouts(tasks, rng)
    learner.close()
    assert out.obs.shape[0] == 2 * len(tasks)
    played = [played[0], played[-1]]  # between them: the expert's episodes, for the normaliser
    np.testing.assert_allclose(played[0], learner.thetas(learner._z0(len(tasks))), rtol=1e-6)
    first = [
        transition_batch(
            out.obs[2 * i : 2 * i + 1],
            out.act[2 * i : 2 * i + 1],
            out.mask[2 * i : 2 * i + 1],
            learner.capacity,
        )
        for i in range(len(tasks))
    ]
    want = learner.thetas(learner.adapt_batches(first)["context"])
    np.testing.assert_allclose(played[1], want, rtol=1e-5)
    assert not np.allclose(played[1], played[0])


def test_the_encoder_identifier_refuses_the_prior_term() -> None:
    with pytest.raises(ValueError, match="prior_w: the prior fit at z0 is a dynamics-model term"):
        _law_learner("smoke_law.yaml", "algo.identifier=encoder", "algo.prior_w=1.0")


def test_prior_term_fits_the_model_at_z0_and_holds_z0() -> None:
    # f is fitted at z0 too (the prior model): its gradient reaches f's weights, never z0.
    from adapt_robot.meta.identification import ID_PREFIX, model_fit
    from adapt_robot.meta.inner import stack_batches

    learner = _law_learner("smoke_law.yaml", "sampler.tasks_per_iter=3", "algo.prior_w=1.0")
    learner.iteration(np.random.default_rng(0))
    learner.close()
    units = [u for it in learner.replay for u in it]
    parts = learner.loss(units)
    batch = stack_batches([u.batch for u in units])
    z0 = learner.params["context"].detach().expand(len(units), -1)
    want = model_fit(learner.model, learner.params, z0, batch)
    torch.testing.assert_close(parts["prior_err"], want)
    grads = torch.autograd.grad(
        parts["prior_err"],
        [learner.params["context"], learner.params[f"{ID_PREFIX}l0.w"]],
        allow_unused=True,
    )
    assert grads[0] is None or float(grads[0].abs().max()) == 0.0
    assert grads[1] is not None and float(grads[1].abs().max()) > 0.0


def test_engines_take_turns_one_per_iteration() -> None:
    learner = _law_learner("smoke_law.yaml", "algo.engines=[mujoco, pybullet]")
    try:
        seen = []
        for it in range(3):
            learner.iterations_done = it
            seen.append((learner.engine(), learner.env(2).engine))
        assert seen == [("mujoco", "mujoco"), ("pybullet", "pybullet"), ("mujoco", "mujoco")]
    finally:
        learner.close()


def test_an_unknown_training_engine_is_refused_with_the_key_path() -> None:
    from adapt_robot.config import ConfigError

    with pytest.raises(ConfigError, match=r"algo\.engines: .*'gazebo'"):
        _law_learner("smoke_law.yaml", "algo.engines=[mujoco, gazebo]")
