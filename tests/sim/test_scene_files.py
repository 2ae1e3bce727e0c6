"""Scene files on disk: they load, match the in-code scene, start where the engine starts."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from adapt_robot.cli import main
from adapt_robot.sim.engines.scene_files import KEYFRAME, sample_task, write_scene
from adapt_robot.sim.registry import get_family


@pytest.mark.parametrize("family_name", ["grasp", "door"])
@pytest.mark.parametrize("seed", [0, 1])
def test_written_scene_loads_matches_the_engine_and_steps_without_warnings(
    family_name: str, seed: int, tmp_path: Path
) -> None:
    family = get_family(family_name)
    task = sample_task(family, "test", seed, index=1)
    path = write_scene(family, task, tmp_path, seed=seed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gripper.xml", "scene.xml", "task.json"]
    assert json.loads((tmp_path / "task.json").read_text())["task"] == family.describe_task(task)

    model = mujoco.MjModel.from_xml_path(str(path))
    physics = family.make_physics("mujoco", 1)
    physics.set_tasks([task])
    physics.reset(np.random.default_rng(seed))
    engine = physics.models[0]  # type: ignore[attr-defined]
    for field in ("nq", "nv", "nu", "nbody", "ngeom", "nsensordata"):
        assert getattr(model, field) == getattr(engine, field), field
    np.testing.assert_allclose(model.body_mass, engine.body_mass)
    assert model.opt.timestep == engine.opt.timestep

    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key(KEYFRAME).id)
    np.testing.assert_allclose(data.qpos, physics.data_of(0).qpos)  # type: ignore[attr-defined]
    physics.close()
    mujoco.mj_step(model, data, nstep=400)
    assert np.isfinite(data.qpos).all()
    assert [w.number for w in data.warning] == [0] * len(data.warning)


def test_scene_command_writes_a_folder_and_refuses_a_family_without_mujoco(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["scene", "door", "--split", "train", "--seed", "2", "-o", str(tmp_path / "d")]) == 0
    )
    assert "mujoco.viewer --mjcf=" in capsys.readouterr().out
    assert (tmp_path / "d" / "scene.xml").is_file()
    assert main(["scene", "point", "-o", str(tmp_path / "p")]) == 2
    assert "no MuJoCo scene" in capsys.readouterr().err
