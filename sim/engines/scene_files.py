"""Scene files on disk, laid out as MuJoCo Menagerie lays them out (``adapt-robot scene``).

The in-code MJCF builders (``sim/families/*/mujoco_scene.py``) stay the source of truth; this
writes what they build for one sampled task into a folder: ``scene.xml`` (the task's scene, with
a ``start`` keyframe: the initial pose the engine draws for that seed), every file it includes
(``gripper.xml``), and ``task.json`` (the task's parameters). ``python -m mujoco.viewer
--mjcf=DIR/scene.xml`` shows it; ``mujoco.MjModel.from_xml_path("DIR/scene.xml")`` loads it. The
simulated robot additionally computes, outside MJCF, what the family does each step (the door's
latch command and protective stop, the grasp's break check): those are not in the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from adapt_robot.sim.core.family import Split, TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.engines.mujoco_engine import MujocoPhysics, compile_model

SCENE = "scene.xml"
TASK = "task.json"
KEYFRAME = "start"
"""Name of the keyframe holding the initial pose."""


def sample_task(family: TaskFamily[Any], split: Split, seed: int, index: int = 0) -> TaskParams:
    """Task ``index`` of ``split`` as ``family.sample_tasks`` draws it from ``seed``."""
    if index < 0:
        raise ValueError(f"index: expected an integer >= 0, got {index}")
    tasks = family.sample_tasks(np.random.default_rng(seed), index + 1, split)
    task: TaskParams = tasks[index]
    return task


def write_scene(
    family: TaskFamily[Any], task: TaskParams, out_dir: str | Path, seed: int = 0
) -> Path:
    """Write ``task``'s MuJoCo scene into ``out_dir``; returns the path of ``scene.xml``.

    Raises ValueError for a family without a MuJoCo scene. The written files are compiled back
    from disk before returning, so a returned scene always loads.
    """
    if "mujoco" not in family.engines:
        raise ValueError(
            f"{family.name}: no MuJoCo scene (engines {list(family.engines)}); "
            "scene files exist for the MuJoCo families"
        )
    physics = family.make_physics("mujoco", 1)
    try:
        if not isinstance(physics, MujocoPhysics):
            raise ValueError(f"{family.name}: its mujoco physics is not MJCF-based")
        scene, assets = physics.scene, physics.assets
    finally:
        physics.close()
    xml = scene.mjcf(task)
    model = compile_model(xml, assets)
    qpos = scene.initial_qpos(model, task, scene.draw_initial(task, np.random.default_rng(seed)))
    if "<keyframe" in xml:
        raise ValueError(f"{family.name}: the scene already has a keyframe section")
    key = f'  <keyframe>\n    <key name="{KEYFRAME}" qpos="{_numbers(qpos)}"/>\n  </keyframe>\n'
    end = xml.rindex("</mujoco>")
    xml = xml[:end] + key + xml[end:]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in assets.items():
        (out / name).write_bytes(data)
    path = out / SCENE
    path.write_text(xml)
    record = {"family": family.name, "seed": seed, "task": family.describe_task(task)}
    (out / TASK).write_text(json.dumps(record, indent=2) + "\n")
    mujoco.MjModel.from_xml_path(str(path))  # what a user does with it
    return path


def _numbers(values: np.ndarray) -> str:
    return " ".join(f"{float(v):.9g}" for v in np.ravel(values))
