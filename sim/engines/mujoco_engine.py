"""MuJoCo physics for a family: one compiled model per task, one threaded rollout per step.

All envs advance through a single ``mujoco.rollout`` call per control step, so the Python per
step is one call whatever the batch size.

A family supplies :class:`MujocoScene`: the MJCF of a task (which may ``<include
file="gripper.xml"/>``) and the initial state noise. Sensors are the model's ``sensordata`` in
declaration order, which the family keeps identical to the PyBullet twin.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import mujoco
import numpy as np
from mujoco import rollout

from sim.core import gripper
from sim.core.family import Physics
from sim.core.params import TaskParams

ASSETS = Path(__file__).resolve().parent.parent / "assets"
STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


@cache
def asset_bytes(relpath: str) -> bytes:
    """Bytes of an asset file under ``sim/assets`` (cached)."""
    return (ASSETS / relpath).read_bytes()


def compile_model(xml: str, assets: dict[str, bytes]) -> mujoco.MjModel:
    """Compile MJCF, turning MuJoCo's error into one that says which scene failed."""
    try:
        return mujoco.MjModel.from_xml_string(xml, assets)
    except ValueError as err:
        raise ValueError(f"MuJoCo could not compile the scene: {err}") from err


class MujocoScene(ABC):
    """What a family tells the MuJoCo engine about its scene."""

    assets: tuple[str, ...] = ("gripper/gripper.xml",)
    """Asset files (relative to ``sim/assets``) made available to ``<include>`` by base name."""

    @abstractmethod
    def mjcf(self, task: TaskParams) -> str:
        """The MJCF of one task."""

    @abstractmethod
    def draw_initial(self, task: TaskParams, rng: np.random.Generator) -> np.ndarray:
        """Initial conditions of an episode (engine-agnostic; shared with the PyBullet twin)."""

    @abstractmethod
    def initial_qpos(self, model: mujoco.MjModel, task: TaskParams, init: np.ndarray) -> np.ndarray:
        """``qpos`` at reset for initial conditions ``init`` from :meth:`draw_initial`."""

    def camera(self) -> str | int:
        """Camera to render with (name or -1 for the free camera)."""
        return "overview"


class MujocoPhysics(Physics):
    """``batch`` MuJoCo envs of one scene type."""

    def __init__(self, scene: MujocoScene, batch: int, nthread: int | None = None) -> None:
        super().__init__(batch)
        self.scene = scene
        self.assets = {Path(a).name: asset_bytes(a) for a in scene.assets}
        if nthread is None:
            nthread = min(batch, os.cpu_count() or 1) if batch > 1 else 0
        self.nthread = nthread
        self._rollout = rollout.Rollout(nthread=nthread)
        self._model_cache: dict[TaskParams, mujoco.MjModel] = {}
        self.models: list[mujoco.MjModel] = []
        self.tasks: list[TaskParams] = []
        self._datas: list[mujoco.MjData] = []
        self._renderers: dict[tuple[int, int, int], mujoco.Renderer] = {}

    def _model(self, task: TaskParams) -> mujoco.MjModel:
        model = self._model_cache.get(task)
        if model is None:
            model = compile_model(self.scene.mjcf(task), self.assets)
            model.opt.timestep = gripper.TIMESTEP
            if len(self._model_cache) > 4096:
                self._model_cache.clear()
            self._model_cache[task] = model
        return model

    def set_tasks(self, tasks: Sequence[TaskParams]) -> None:
        """Compile (or reuse) one model per task; all must share a size signature."""
        if len(tasks) != self.batch:
            raise ValueError(f"tasks: expected {self.batch}, got {len(tasks)}")
        models = [self._model(t) for t in tasks]
        sig = {(m.nq, m.nv, m.nu, m.na, m.nsensordata) for m in models}
        if len(sig) != 1:
            raise ValueError(f"scene: tasks compile to models of different sizes {sig}")
        self.models, self.tasks = models, list(tasks)
        self.nstate = mujoco.mj_stateSize(models[0], STATE_SPEC)
        self.sensor_dim = models[0].nsensordata
        self.ctrl_dim = models[0].nu
        self._datas = [mujoco.MjData(models[0]) for _ in range(max(self.nthread, 1))]
        self.state = np.zeros((self.batch, self.nstate))
        self._out_state = np.zeros((self.batch, gripper.SUBSTEPS, self.nstate))
        self._out_sensors = np.zeros((self.batch, gripper.SUBSTEPS, self.sensor_dim))
        self._ctrl = np.zeros((self.batch, gripper.SUBSTEPS, self.ctrl_dim))

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Reset each env to its scene's initial state; return sensors."""
        if not self.models:
            raise RuntimeError("reset: no tasks set")
        sensors = np.zeros((self.batch, self.sensor_dim))
        data = self._datas[0]
        for i, (model, task) in enumerate(zip(self.models, self.tasks, strict=True)):
            mujoco.mj_resetData(model, data)
            init = self.scene.draw_initial(task, rng)
            data.qpos[:] = self.scene.initial_qpos(model, task, init)
            data.ctrl[:] = 0.0
            mujoco.mj_forward(model, data)
            mujoco.mj_getState(model, data, self.state[i], STATE_SPEC)
            sensors[i] = data.sensordata
        return sensors

    def step(self, ctrl: np.ndarray) -> np.ndarray:
        """One control period: ``SUBSTEPS`` physics steps per env with ``ctrl`` held."""
        self._ctrl[:] = ctrl[:, None, :]
        self._rollout.rollout(
            self.models,
            self._datas,
            self.state,
            self._ctrl,
            nstep=gripper.SUBSTEPS,
            state=self._out_state,
            sensordata=self._out_sensors,
            skip_checks=True,
        )
        self.state[:] = self._out_state[:, -1]
        return self._out_sensors[:, -1].copy()

    def data_of(self, index: int) -> mujoco.MjData:
        """A fresh MjData holding env ``index``'s current state (for rendering and tests)."""
        model = self.models[index]
        data = mujoco.MjData(model)
        mujoco.mj_setState(model, data, self.state[index], STATE_SPEC)
        mujoco.mj_forward(model, data)
        return data

    def render(self, index: int, width: int, height: int) -> np.ndarray:
        """Off-screen RGB frame (set ``MUJOCO_GL=osmesa`` on a machine with no display)."""
        model = self.models[index]
        key = (id(model), width, height)
        renderer = self._renderers.get(key)
        if renderer is None:
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, height)
            renderer = self._renderers[key] = mujoco.Renderer(model, height=height, width=width)
        renderer.update_scene(self.data_of(index), camera=self.scene.camera())
        return renderer.render().copy()

    def warnings(self) -> dict[str, int]:
        """MuJoCo warning counters of the step buffers (non-zero means unstable physics)."""
        names = [n for n in mujoco.mjtWarning.__members__ if n != "mjNWARNING"]
        out: dict[str, int] = {}
        for data in self._datas:
            for name, w in zip(names, data.warning, strict=False):
                if w.number:
                    out[name] = out.get(name, 0) + int(w.number)
        return out

    def close(self) -> None:
        """Stop the rollout threads and the renderer."""
        self._rollout.close()
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
