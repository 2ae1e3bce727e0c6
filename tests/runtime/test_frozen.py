"""The frozen policy graph: one input, the runtime's own actions, adapted parameters kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from adapt_robot.deploy.sim_robot import SimRobot, SimRobotConfig
from adapt_robot.runtime import Bundle, EpisodicMode, OnlineAdapter
from adapt_robot.runtime.bundle_format import POLICY_FROZEN_ONNX
from adapt_robot.runtime.frozen import freeze_policy
from adapt_robot.scoreboard.arms.episodes import run_episode


def _actions(path: Path | bytes, obs: np.ndarray) -> np.ndarray:
    source = str(path) if isinstance(path, Path) else path
    sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(["actions"], {"obs": obs.astype(np.float32)})[0]
    return out


def _fresh_obs(bundle: Bundle, n: int, seed: int) -> np.ndarray:
    m = bundle.manifest.observation
    low = np.maximum(np.asarray(m.low), -2.0)
    high = np.minimum(np.asarray(m.high), 2.0)
    return np.random.default_rng(seed).uniform(low, high, size=(n, m.dim))


def test_export_writes_a_hash_checked_frozen_graph_acting_as_the_runtime(
    law_bundle: Path,
) -> None:
    bundle = Bundle.load(law_bundle)
    m = bundle.manifest
    assert POLICY_FROZEN_ONNX in m.files and POLICY_FROZEN_ONNX not in m.graphs
    assert m.parity["policy_frozen"] < 1e-5
    model = onnx.load(str(law_bundle / POLICY_FROZEN_ONNX))
    assert [i.name for i in model.graph.input] == ["obs"]
    assert [o.name for o in model.graph.output] == ["actions"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["adapt_robot.family"] == m.family and meta["adapt_robot.params"] == "meta"
    assert json.loads(meta["adapt_robot.action_names"]) == list(m.action.names)
    assert float(meta["adapt_robot.control_hz"]) == 20.0
    adapter = OnlineAdapter(bundle, deterministic=True, auto_adapt=False)
    try:
        for n in (1, 7):  # the batch dimension is dynamic
            obs = _fresh_obs(bundle, n, seed=n)
            got = _actions(law_bundle / POLICY_FROZEN_ONNX, obs)
            want = np.stack([adapter.act(o) for o in obs])
            np.testing.assert_allclose(got, want, atol=1e-5)
    finally:
        adapter.close()


def test_snapshot_keeps_what_the_robot_adapted(law_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(law_bundle)
    adapter = OnlineAdapter(
        bundle, mode=EpisodicMode(episodes=1), deterministic=True, auto_adapt=False, seed=0
    )
    robot = SimRobot(SimRobotConfig(family="grasp", engine="mujoco", split="test", seed=3))
    try:
        robot.set_task(robot.new_task())
        run_episode(robot, adapter)
        assert adapter.adapt().accepted
        assert not np.array_equal(adapter.params["context"], adapter.meta_params["context"])
        path = adapter.snapshot(tmp_path / "adapted.onnx", control_hz=20.0)
        obs = np.stack([robot.reset(), *_fresh_obs(bundle, 15, seed=0)])
        got = _actions(path, obs)
        want = np.stack([adapter.act(o) for o in obs])
        np.testing.assert_allclose(got, want, atol=1e-5)  # the adapted policy, not the meta one
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["adapt_robot.params"] == "adapted" and meta["adapt_robot.params_version"] == "1"
        assert meta["adapt_robot.export_id"] == bundle.manifest.producer["export_id"]
        frozen = onnx.load(str(path))
        context = next(t for t in frozen.graph.initializer if t.name == "context")
        np.testing.assert_array_equal(
            onnx.numpy_helper.to_array(context), adapter.params["context"]
        )
    finally:
        adapter.close()
        robot.close()


def test_freezing_refuses_a_graph_missing_parameters(law_bundle: Path) -> None:
    bundle = Bundle.load(law_bundle)
    source = bundle.graph_bytes("policy")
    assert isinstance(source, bytes)
    params = dict(bundle.params)
    params.pop("context")
    with pytest.raises(ValueError, match=r"inputs without a value \['context'\]"):
        freeze_policy(source, params, bundle.action_low, bundle.action_high, {})
