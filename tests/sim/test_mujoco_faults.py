"""MuJoCo stepping survives mixed scene layouts and physics errors.

Regression: a grasp batch mixing one-part objects (box, ...) with two-part ones (mug, L-block)
stepped every env with ``MjData`` made from the first env's model. A mug stepped with a box's
data wrote its handle's pose over other arrays; a finger-handle box contact in that corrupt frame
then raised ``mju_makeFrame: xaxis of contact frame undefined`` inside a rollout thread, where
MuJoCo's default handler ended the whole process. The state below is the one captured right
before such a crash (a policy cloned from the grasp expert, acting with sampled actions on
held-out tasks). Before the fix, stepping it next to a box raised ``mujoco.FatalError`` on the
calling thread and ended the process from the rollout's threads.

Tests that would end the process if the fix regressed run in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.family import PhysicsFaultWarning
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.mujoco_engine import MujocoPhysics, MujocoScene, data_layout
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.families.grasp import GraspFamily, GraspParams
from adapt_robot.sim.families.grasp.mujoco_scene import GraspMujocoScene

ROOT = Path(__file__).resolve().parents[2]

BOX = GraspParams(
    shape="box",
    half_width=0.026760534537716416,
    half_depth=0.030003657963701944,
    half_height=0.020265089500029566,
    mass=0.2056600562075962,
    friction=0.24084732054199987,
    com_x=-0.009094496121951097,
    com_z=-0.009024845785456639,
    break_force=1000.0,
)
MUG = GraspParams(
    shape="mug",
    half_width=0.02380847813001179,
    half_depth=0.02380847813001179,
    half_height=0.056980763682612096,
    mass=1.3315825600878886,
    friction=0.8766012199753757,
    com_x=-0.0009048036283483742,
    com_z=0.0033398608770776137,
    break_force=1000.0,
)
# mjSTATE_FULLPHYSICS of the mug env (time, qpos[12], qvel[11]): the left finger pad is pressed
# into the handle.
MUG_STATE = np.array(
    [
        5.6499999999996,
        -0.07688879179855435,
        0.05486770006268781,
        0.15471356620528898,
        0.028403574095384142,
        0.03301746196594126,
        -0.048470874970590425,
        0.05954598109935749,
        0.14562064413909473,
        -0.4763319825422612,
        -0.560147712592576,
        -0.42969288040820847,
        -0.5241244232156721,
        0.0016542355207597149,
        0.009349891939528,
        0.1443331446036688,
        0.007695364284818082,
        0.37486529714685124,
        -0.0710635350634389,
        -0.11955896047630352,
        0.13764453680482505,
        -0.47097423256550547,
        -2.608885623589902,
        0.16467243221386402,
    ]
)
MUG_CTRL = np.array(
    [
        -0.08252736946610321,
        0.06252553507403713,
        0.17366236794365464,
        5.449268759230374,
        5.449268759230374,
    ]
)


def _step_crash_state(nthread: int) -> dict[str, object]:
    """Step the captured state in a [box, mug] batch and the mug alone; compare."""
    batch = MujocoPhysics(GraspMujocoScene(), 2, nthread=nthread)
    alone = MujocoPhysics(GraspMujocoScene(), 1, nthread=0)
    try:
        batch.set_tasks([BOX, MUG])
        alone.set_tasks([MUG])
        batch.reset(np.random.default_rng(0))
        alone.reset(np.random.default_rng(0))
        batch.state[1] = MUG_STATE
        alone.state[0] = MUG_STATE
        ctrl = np.array([[0.0, 0.0, 0.1, 0.0, 0.0], MUG_CTRL])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mixed = batch.step(ctrl)[1]
        single = alone.step(MUG_CTRL[None])[0]
        return {
            "faults": batch.fault_count,
            "warnings": [str(w.message) for w in caught],
            "same_as_alone": bool(np.array_equal(batch.state[1], alone.state[0])),
            "sensors_same": bool(np.array_equal(mixed, single)),
            "finite": bool(np.isfinite(batch.state).all()),
        }
    finally:
        batch.close()
        alone.close()


def _in_subprocess(call: str, cwd: Path) -> dict[str, object]:
    """Run ``tests.sim.test_mujoco_faults.<call>`` in a fresh interpreter; its JSON result.

    It runs in ``cwd`` so that a MuJoCo error handled by MuJoCo's default handler leaves its
    ``MUJOCO_LOG.TXT`` there, not in the repository.
    """
    code = f"import json, tests.sim.test_mujoco_faults as t; print(json.dumps(t.{call}))"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"the process died (rc={proc.returncode}): {proc.stderr[-2000:]}{proc.stdout[-2000:]}"
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_box_and_mug_need_different_data() -> None:
    """The premise: a mug's MjData does not fit a box's (one geom more)."""
    scene = GraspMujocoScene()
    box = mujoco.MjModel.from_xml_string(scene.mjcf(BOX), {"gripper.xml": _gripper_xml()})
    mug = mujoco.MjModel.from_xml_string(scene.mjcf(MUG), {"gripper.xml": _gripper_xml()})
    assert mug.ngeom == box.ngeom + 1
    assert data_layout(box) != data_layout(mug)
    assert mujoco.mj_stateSize(box, mujoco.mjtState.mjSTATE_FULLPHYSICS) == MUG_STATE.size


def _gripper_xml() -> bytes:
    return (ROOT / "sim/assets/gripper/gripper.xml").read_bytes()


def test_crash_state_steps_in_a_mixed_batch_like_alone() -> None:
    result = _step_crash_state(nthread=0)
    assert result["faults"] == 0, result["warnings"]
    assert result["finite"]
    assert result["same_as_alone"]
    assert result["sensors_same"]


def test_crash_state_in_rollout_threads_keeps_the_process_alive(tmp_path: Path) -> None:
    result = _in_subprocess("_step_crash_state(nthread=2)", tmp_path)
    assert result["faults"] == 0, result["warnings"]
    assert result["same_as_alone"] and result["sensors_same"] and result["finite"]


def test_mixed_test_batch_steps_each_env_as_if_alone() -> None:
    """Every env of a batch mixing one- and two-part objects moves exactly as it does alone."""
    family = GraspFamily()
    tasks = [BOX, MUG, *family.sample_tasks(np.random.default_rng(7), 5, "test")]
    assert {t.shape for t in tasks} >= {"box", "mug", "lblock"}
    steps = 6
    rng = np.random.default_rng(3)
    actions = rng.uniform(-1, 1, (steps, len(tasks), 4))
    actions[:, :, 2] = -1.0  # push down onto the object, so the extra parts touch something
    actions[:, :, 3] = np.abs(actions[:, :, 3])

    def run(physics: MujocoPhysics, which: slice) -> np.ndarray:
        physics.set_tasks(tasks[which])
        physics.reset(np.random.default_rng(0))
        physics.state[:] = start[which]
        target = physics.state[:, 1:4].copy()
        out = [physics.step(gripper.gripper_control(a[which].copy(), target)) for a in actions]
        physics.close()
        return np.stack(out, axis=1)

    # Shared start states (reset draws differ with the batch size).
    probe = MujocoPhysics(GraspMujocoScene(), len(tasks), nthread=0)
    probe.set_tasks(tasks)
    probe.reset(np.random.default_rng(1))
    start = probe.state.copy()
    probe.close()
    together = run(MujocoPhysics(GraspMujocoScene(), len(tasks), nthread=2), slice(None))
    for i in range(len(tasks)):
        alone = run(MujocoPhysics(GraspMujocoScene(), 1, nthread=0), slice(i, i + 1))
        np.testing.assert_array_equal(together[i], alone[0], err_msg=f"env {i} {tasks[i].shape}")


# --- a physics error stops one env, not the process ---------------------------------------


class _StarvedScene(MujocoScene):
    """A box over a floor with too little arena memory for contacts: stepping it in contact
    fails inside ``mj_step`` with ``mj_stackAlloc: out of memory``, a genuine MuJoCo error."""

    assets = ()

    def mjcf(self, task: TaskParams) -> str:
        return """<mujoco>
  <size memory="8K"/>
  <worldbody>
    <geom type="plane" size="1 1 0.1"/>
    <body name="box" pos="0 0 0.5"><freejoint/><geom type="box" size="0.1 0.1 0.1"/></body>
  </worldbody>
</mujoco>"""

    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(0)

    def initial_qpos(self, model: mujoco.MjModel, task: TaskParams, init: np.ndarray) -> np.ndarray:
        return model.qpos0.copy()


Z = 3  # index of the box height in an mjSTATE_FULLPHYSICS state (time, x, y, z, ...)


def _fault_scenario(nthread: int) -> dict[str, object]:
    """Three envs; env 1 starts in contact (its step fails). Step twice, then reset."""
    physics = MujocoPhysics(_StarvedScene(), 3, nthread=nthread)
    try:
        physics.set_tasks([TaskParams()] * 3)
        physics.reset(np.random.default_rng(0))
        physics.state[1, Z] = 0.09
        start = physics.state.copy()
        ctrl = np.zeros((3, 0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = physics.step(ctrl)
            after_first = physics.state.copy()
            second = physics.step(ctrl)
        log = physics.fault_log
        out: dict[str, object] = {
            "faulted": physics.faulted.tolist(),
            "fault_count": physics.fault_count,
            "warnings": [
                (type(w.message).__name__, str(w.message))
                for w in caught
                if issubclass(w.category, RuntimeWarning)
            ],
            "log": [(f.index, f.message, bool(np.array_equal(f.state, start[1]))) for f in log],
            "stopped_env_kept_its_state": bool(np.array_equal(physics.state[1], start[1])),
            "stopped_env_kept_its_sensors": bool(np.array_equal(first[1], second[1])),
            "others_fell": bool(
                (after_first[[0, 2], Z] < start[[0, 2], Z]).all()
                and (physics.state[[0, 2], Z] < after_first[[0, 2], Z]).all()
            ),
        }
        physics.reset(np.random.default_rng(0))
        out["faulted_after_reset"] = physics.faulted.tolist()
        physics.step(ctrl)
        out["faults_after_clean_step"] = physics.fault_count
        return out
    finally:
        physics.close()


def _check_fault_scenario(result: dict[str, object]) -> None:
    assert result["faulted"] == [False, True, False]
    assert result["fault_count"] == 1
    warned = result["warnings"]
    assert isinstance(warned, list) and len(warned) == 1
    name, message = warned[0]
    assert name == PhysicsFaultWarning.__name__
    assert "env 1" in message and "mj_stackAlloc" in message
    [(index, message, same_state)] = result["log"]  # type: ignore[misc]
    assert index == 1 and "mj_stackAlloc" in message and same_state
    assert result["stopped_env_kept_its_state"]
    assert result["stopped_env_kept_its_sensors"]
    assert result["others_fell"]
    assert result["faulted_after_reset"] == [False, False, False]
    assert result["faults_after_clean_step"] == 1


def test_physics_error_stops_only_that_env() -> None:
    _check_fault_scenario(_fault_scenario(nthread=0))


def test_physics_error_in_rollout_threads_stops_only_that_env(tmp_path: Path) -> None:
    _check_fault_scenario(_in_subprocess("_fault_scenario(nthread=2)", tmp_path))


def test_non_finite_control_is_rejected_before_stepping() -> None:
    physics = MujocoPhysics(GraspMujocoScene(), 2, nthread=0)
    try:
        physics.set_tasks([BOX, MUG])
        physics.reset(np.random.default_rng(0))
        before = physics.state.copy()
        ctrl = np.zeros((2, 5))
        ctrl[1, 3] = np.nan
        with pytest.raises(ValueError, match=r"non-finite values for envs \[1\]"):
            physics.step(ctrl)
        np.testing.assert_array_equal(physics.state, before)
    finally:
        physics.close()


def test_vector_env_terminates_a_faulted_env() -> None:
    """A physics fault ends that env's episode like a broken object: last obs, zero reward."""
    family = GraspFamily()
    env = VectorTaskEnv(family, "mujoco", 2)
    try:
        env.set_tasks([BOX, BOX])
        obs0 = env.reset(np.random.default_rng(0))
        inner = env.physics.step

        def faulting_step(ctrl: np.ndarray) -> np.ndarray:
            sensors = inner(ctrl)
            env.physics.faulted[1] = True  # what the engine does when env 1 fails
            return sensors

        env.physics.step = faulting_step  # type: ignore[method-assign]
        action = np.array([[0.0, 0.0, -1.0, -1.0], [0.0, 0.0, -1.0, -1.0]])
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["physics_fault"].tolist() == [False, True]
        assert terminated.tolist() == [False, True]
        assert not truncated.any()
        assert reward[1] == 0.0 and not info["success"][1]
        np.testing.assert_array_equal(obs[1], obs0[1])
        assert not np.array_equal(obs[0], obs0[0])
        assert env.done.tolist() == [False, True]
        obs, reward, terminated, _, info = env.step(action)
        assert info["physics_fault"].tolist() == [False, False]  # reported once
        assert reward[1] == 0.0 and not terminated[1]
        np.testing.assert_array_equal(obs[1], obs0[1])
    finally:
        env.close()
