"""reward.onnx equals each family's numpy reward and success (random and rollout observations)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from adapt_robot.export import graphs, parity
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.registry import family_names, get_family

OBS_REWARD_FAMILIES = [n for n in family_names() if get_family(n).observation_reward]


@pytest.fixture(scope="module", params=OBS_REWARD_FAMILIES)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    family = get_family(request.param)
    path = tmp_path_factory.mktemp(request.param) / "reward.onnx"
    graphs.export_reward(path, family)
    return family, path


def test_families_with_observation_reward_are_covered() -> None:
    assert {"grasp", "door"} <= set(OBS_REWARD_FAMILIES)
    assert "point" not in OBS_REWARD_FAMILIES


def test_reward_graph_is_valid_and_batch_is_dynamic(exported) -> None:
    family, path = exported
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = parity.session(path)
    assert [i.name for i in sess.get_inputs()] == ["obs", "action", "next_obs"]
    assert [o.name for o in sess.get_outputs()] == ["reward", "success"]
    for rows in (1, 17):
        o, a, n = parity.reward_inputs(family, rows, np.random.default_rng(rows))
        r, s = sess.run(None, {"obs": o, "action": a, "next_obs": n})
        assert r.shape == (rows,) and r.dtype == np.float32 and s.dtype == bool


def test_reward_matches_numpy_on_random_inputs(exported) -> None:
    family, path = exported
    o, a, n = parity.reward_inputs(family, 4000, np.random.default_rng(0))
    err, mismatches = parity.check_reward(path, family, o, a, n)
    assert err <= parity.RTOL_FP32 and mismatches == 0
    # The draws reach both outcomes of success, so the comparison is not vacuous.
    s = family.success(n.astype(np.float64), np.zeros(0))
    assert 0 < s.sum() < len(s)


def _expert_rollout(family, engine: str, n_tasks: int, seed: int):
    """Expert episodes; task 0 gets exploration noise (so both outcomes occur)."""
    rng = np.random.default_rng(seed)
    tasks = family.sample_tasks(rng, n_tasks, "train")
    env = VectorTaskEnv(family, engine, n_tasks)
    env.set_tasks(tasks)
    obs = env.reset(rng)
    experts = [family.expert(t) for t in tasks]
    for e in experts:
        e.reset()
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for t in range(family.max_steps):
        act = np.stack([e.act(o) for e, o in zip(experts, obs, strict=True)])
        if t % 3 == 0:
            act[0] = act[0] + rng.normal(0, 0.5, size=act.shape[1])
        act = np.clip(act, -1, 1).astype(np.float32)
        live = ~env.done
        nxt, rew, _, _, info = env.step(act)
        rows.append((obs[live], act[live], nxt[live], rew[live], info["success"][live]))
        obs = nxt
        if env.done.all():
            break
    env.close()
    return [np.concatenate(c) for c in zip(*rows, strict=True)]


@pytest.mark.parametrize("engine", ["mujoco"])
def test_reward_matches_env_on_real_rollouts(exported, engine: str) -> None:
    family, path = exported
    o, a, n, rew, success = _expert_rollout(family, engine, n_tasks=3, seed=0)
    err, mismatches = parity.check_reward(path, family, o, a, n)
    assert err <= parity.RTOL_FP32 and mismatches == 0
    r, s = parity.session(path).run(None, {"obs": o, "action": a, "next_obs": n})
    # The env's own (float32-input) reward and success, as the sampler records them.
    assert parity.rel_err(r, rew) <= parity.RTOL_FP32
    assert np.array_equal(s, success)
    assert 0 < success.sum() < len(success)
