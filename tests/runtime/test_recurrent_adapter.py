"""An RL² bundle on the robot: the adapter carries the recurrent state, and keeps it safe.

The state goes back to zeros at a new task (``reset_to_meta``) and never at an episode end;
ONNX Runtime and torch agree over a whole multi-episode trial with the state fed back more
than 500 times; a bad reward or a graph whose state blows up never reaches the policy's
memory or the robot; the manifest describes the state and refuses inconsistent memory fields.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.meta.algorithms.rl2 import play_trials
from adapt_robot.meta.policy import detach
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import Bundle, OnlineAdapter
from adapt_robot.runtime.bundle_format import BundleError
from adapt_robot.sim.envs.vector import VectorTaskEnv
from tests.runtime.conftest import edit_params, read_manifest, write_manifest

EPISODES = 26
"""Point episodes are 20 steps: 26 of them feed the state back 520 times."""


def _obs(adapter: OnlineAdapter, seed: int = 0) -> np.ndarray:
    dim = adapter.bundle.manifest.observation.dim
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32) * 0.1


def test_the_manifest_describes_the_state_and_the_bundle_has_no_inner_step(
    rl2_bundle: Path,
) -> None:
    m = Bundle.load(rl2_bundle).manifest
    assert m.memory.recurrent and m.memory.state_dim == 16
    assert m.memory.feedback == ["prev_action", "prev_reward", "episode_start"]
    assert set(m.graphs) == {"policy"}  # no adapt_step.onnx, no policy_frozen.onnx
    assert m.inner_loop.loss == "none" and m.adapted_names() == []
    assert m.graphs["policy"].inputs[:5] == [
        "obs",
        "prev_action",
        "prev_reward",
        "episode_start",
        "state",
    ]
    assert m.graphs["policy"].outputs == ["action_mean", "action_log_std", "next_state"]
    assert m.parity["policy"] <= 1e-5


def test_onnx_and_torch_agree_over_a_whole_multi_episode_trial(
    rl2_run: Path, rl2_bundle: Path
) -> None:
    _, learner, _ = load_run(rl2_run)
    family = learner.sampler.family
    task = family.sample_tasks(np.random.default_rng(3), 1, "test")
    env = VectorTaskEnv(family, "numpy", 1)
    ref = play_trials(
        learner.gru,  # type: ignore[attr-defined]
        detach(learner.params),
        env,
        task,
        EPISODES,
        np.random.default_rng(5),
        deterministic=True,
    )
    assert ref.mask.sum() >= 500
    adapter = OnlineAdapter(rl2_bundle, deterministic=True)
    rng = np.random.default_rng(5)
    env.set_tasks(task)
    got = []
    for _ in range(EPISODES):
        obs = env.reset(rng)
        while not env.done[0]:
            action = adapter.act(obs[0])
            got.append(action)
            obs, reward, *_ = env.step(action[None].astype(np.float64))
            adapter.observe(float(reward[0]), bool(env.done[0]))
    want = ref.act[ref.mask > 0]
    assert len(got) == len(want)
    np.testing.assert_allclose(np.stack(got), want, atol=2e-5)
    assert adapter.stats()["episodes"] == EPISODES
    assert adapter.stats()["resets"] == 0


def test_the_state_is_kept_at_an_episode_end_and_reset_for_a_new_task(rl2_bundle: Path) -> None:
    fresh = OnlineAdapter(rl2_bundle, deterministic=True)
    obs = _obs(fresh)
    first = fresh.act(obs)
    ad = OnlineAdapter(rl2_bundle, deterministic=True)
    for t in range(5):
        ad.act(obs + 0.05 * t)
        ad.observe(-0.3, done=t == 4)
    # The next episode starts with the same feedback as a new task (no action, no reward,
    # episode_start 1): only the carried state tells them apart.
    carried = ad.act(obs)
    assert not np.allclose(carried, first, atol=1e-4)
    ad.observe(-0.3, done=False)
    ad.reset_to_meta()
    np.testing.assert_array_equal(ad.act(obs), first)
    stats = ad.stats()
    assert stats["adapts_in_state"] == 1 and stats["adapt_attempts"] == 0
    assert stats["resets"] == 1


def test_no_gradient_step_and_no_frozen_snapshot(rl2_bundle: Path, tmp_path: Path) -> None:
    ad = OnlineAdapter(rl2_bundle)
    ad.act(_obs(ad))
    ad.observe(0.1, done=True)  # auto_adapt: nothing starts
    assert not ad.adapting and ad.stats()["adapt_attempts"] == 0
    with pytest.raises(RuntimeError, match="adapts in its recurrent state"):
        ad.adapt()
    with pytest.raises(RuntimeError, match="adapts in its recurrent state"):
        ad.adapt_async()
    with pytest.raises(ValueError, match="is recurrent"):
        ad.snapshot(tmp_path / "frozen.onnx")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e12, "x"])
def test_a_bad_reward_never_enters_the_state(rl2_bundle: Path, bad: object) -> None:
    clean = OnlineAdapter(rl2_bundle, deterministic=True)
    poisoned = OnlineAdapter(rl2_bundle, deterministic=True)
    obs = _obs(clean)
    for ad, reward in ((clean, 0.0), (poisoned, bad)):
        ad.act(obs)
        ad.observe(reward, done=False)  # type: ignore[arg-type]
    # The bad reading enters as 0, exactly as a reward of 0 does.
    np.testing.assert_array_equal(poisoned.act(obs), clean.act(obs))
    assert poisoned.stats()["reward_faults"] == 1
    assert np.isfinite(poisoned._memory.state).all()  # type: ignore[union-attr]


def test_a_graph_whose_state_blows_up_gets_the_safe_action(
    rl2_bundle: Path, tmp_path: Path
) -> None:
    bundle = Path(shutil.copytree(rl2_bundle, tmp_path / "b"))

    def huge(arrays: dict[str, np.ndarray]) -> None:
        w = arrays["gru.w_ih"]
        arrays["gru.w_ih"] = np.where(np.arange(w.size).reshape(w.shape) % 2, 3e38, -3e38).astype(
            np.float32
        )
        arrays["gru.w_hh"] = np.full_like(arrays["gru.w_hh"], 3e38)

    edit_params(bundle, huge)
    ad = OnlineAdapter(bundle)
    obs = np.full(ad.bundle.manifest.observation.dim, 5.0, dtype=np.float32)  # inf - inf: NaN
    for _ in range(3):
        action = ad.act(obs)
        assert np.isfinite(action).all()
        np.testing.assert_array_equal(action, ad._zero)  # the safe action
        ad.observe(0.0, done=False)
    stats = ad.stats()
    assert stats["state_faults"] == 3
    assert np.isfinite(ad._memory.state).all()  # type: ignore[union-attr]


def test_inconsistent_memory_fields_are_refused(rl2_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(rl2_bundle, tmp_path / "b"))
    data = read_manifest(bundle)
    data["memory"]["state_dim"] = 0
    write_manifest(bundle, data)
    with pytest.raises(BundleError, match=r"memory\.state_dim"):
        Bundle.load(bundle)
    data["memory"]["state_dim"] = 17  # the graph's state is 16 wide
    write_manifest(bundle, data)
    with pytest.raises(BundleError, match="state"):
        Bundle.load(bundle)
    data["memory"]["state_dim"] = 16
    data["memory"]["kind"] = "none"  # a memoryless bundle must carry adapt_step.onnx
    write_manifest(bundle, data)
    with pytest.raises(BundleError, match="memory"):
        Bundle.load(bundle)
    data["memory"]["kind"] = "recurrent"
    data["policy"]["type"] = "gaussian_mlp"  # an MLP carries no state
    write_manifest(bundle, data)
    with pytest.raises(BundleError, match=r"policy\.type gaussian_mlp carries no recurrent state"):
        Bundle.load(bundle)


def test_the_gru_cell_is_pytorchs(rl2_run: Path) -> None:
    """The exported cell is the standard GRU (PyTorch's gate layout), on fresh inputs."""
    from adapt_robot.meta.recurrent_policy import gru_cell

    _, learner, _ = load_run(rl2_run)
    params = detach(learner.params)
    h_dim = params["gru.w_hh"].shape[1]
    cell = torch.nn.GRUCell(params["gru.w_ih"].shape[1], h_dim)
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(
                cell, f"weight_{name[2:]}" if name.startswith("w") else f"bias_{name[2:]}"
            ).copy_(params[f"gru.{name}"])
        x = torch.randn(7, params["gru.w_ih"].shape[1])
        h = torch.randn(7, h_dim)
        torch.testing.assert_close(gru_cell(params, x, h), cell(x, h))


def test_an_episode_start_survives_a_faulted_first_tick(rl2_bundle: Path) -> None:
    """A bad first observation: the first good tick is still fed as the episode's start."""
    clean = OnlineAdapter(rl2_bundle, deterministic=True)
    faulted = OnlineAdapter(rl2_bundle, deterministic=True)
    obs = _obs(clean)
    bad = np.full_like(obs, np.nan)
    faulted.act(bad)  # the policy does not run: the state and the start flag stay
    faulted.observe(0.0, done=False)
    assert faulted._memory.episode_start[0, 0] == 1.0  # type: ignore[union-attr]
    assert faulted.stats()["obs_faults"] == 1
    got = faulted.act(obs)
    want = clean.act(obs)
    # Same state (zeros) and same start flag; only the fed-back action differs (the safe
    # action sent on the faulted tick is zero, as at a start), so the actions agree.
    np.testing.assert_array_equal(got, want)


def test_a_missing_observe_is_recorded_as_a_tick(rl2_bundle: Path) -> None:
    """act() twice without observe() (a failed send): the second sees a non-start tick."""
    ad = OnlineAdapter(rl2_bundle, deterministic=True)
    obs = _obs(ad)
    ad.act(obs)
    ad.act(obs)
    mem = ad._memory
    assert mem is not None and mem.episode_start[0, 0] == 0.0
    assert mem.prev_reward[0, 0] == 0.0


def test_memory_refuses_a_memoryless_spec_and_an_infinite_limit_still_blocks_inf() -> None:
    from adapt_robot.runtime.bundle_format import MemorySpec
    from adapt_robot.runtime.memory import RecurrentMemory

    none = MemorySpec(
        kind="none",
        state_dim=0,
        state_input="",
        state_output="",
        feedback=[],
        reward_scale=0.1,
        reset="new_task",
    )
    with pytest.raises(ValueError, match="not recurrent"):
        RecurrentMemory(none, 2, 1.0)
    spec = MemorySpec(
        kind="recurrent",
        state_dim=3,
        state_input="state",
        state_output="next_state",
        feedback=["prev_action", "prev_reward", "episode_start"],
        reward_scale=0.1,
        reset="new_task",
    )
    mem = RecurrentMemory(spec, 2, float("inf"))
    for reward in (float("inf"), 1e300, float("nan")):
        mem.record(reward, done=False)
        assert mem.prev_reward[0, 0] == 0.0
    mem.record(2.5, done=False)
    assert mem.prev_reward[0, 0] == 2.5


def test_the_jobs_that_time_an_adaptation_step_refuse_a_recurrent_bundle(
    rl2_bundle: Path, point_bundle: Path
) -> None:
    from adapt_robot.bench.runtime_bench import run_runtime_bench

    Bundle.load(point_bundle).require_adaptation_step("deploy")  # a gradient bundle passes
    with pytest.raises(BundleError, match=r"adapts in its recurrent state.*scoreboard"):
        Bundle.load(rl2_bundle).require_adaptation_step("adapt-robot deploy")
    with pytest.raises(BundleError, match="adapt-robot bench runtime"):
        run_runtime_bench(rl2_bundle)


def test_the_bridge_serves_a_recurrent_bundle_unchanged(rl2_bundle: Path) -> None:
    """Two episodes through the UDP bridge: the same actions as the adapter driven directly."""
    from adapt_robot.runtime.bridge.client import BridgeClient
    from adapt_robot.runtime.bridge.server import BridgeServer, BridgeServerConfig

    served = OnlineAdapter(rl2_bundle, deterministic=True)
    direct = OnlineAdapter(rl2_bundle, deterministic=True)
    m = served.bundle.manifest
    rng = np.random.default_rng(9)
    episodes = [rng.normal(size=(6, m.observation.dim)).astype(np.float32) * 0.1 for _ in range(2)]
    cfg = BridgeServerConfig(obs_dim=m.observation.dim, act_dim=m.action.dim)
    server = BridgeServer(served, cfg).start()
    got, want = [], []
    try:
        with BridgeClient(server.address, act_dim=m.action.dim, timeout_s=5.0) as client:
            for ep in episodes:
                got.append(client.act(ep[0]))
                for t in range(1, len(ep)):
                    got.append(client.act(ep[t], reward=-0.1 * t, done=False))
                client.act(ep[-1], reward=-1.0, done=True)  # the episode's end: zeros back
    finally:
        server.stop()
    for ep in episodes:
        want.append(direct.act(ep[0]))
        for t in range(1, len(ep)):
            direct.observe(-0.1 * t, False)
            want.append(direct.act(ep[t]))
        direct.observe(-1.0, True)
    np.testing.assert_allclose(np.stack(got), np.stack(want), atol=1e-6)
    assert served.stats()["episodes"] == 2 and served.stats()["resets"] == 0
