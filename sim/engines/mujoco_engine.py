"""MuJoCo physics for a family: one compiled model per task, threaded rollouts per step.

All envs advance through ``mujoco.rollout`` calls of ``SUBSTEPS`` steps per control step, so the
Python per step is a few calls whatever the batch size.

A family supplies :class:`MujocoScene`: the MJCF of a task (which may ``<include
file="gripper.xml"/>``) and the initial state noise. Sensors are the model's ``sensordata`` in
declaration order, which the family keeps identical to the PyBullet twin.

Data layouts. An ``MjData`` is laid out for the sizes of the model it was made from, and a
rollout steps every model of a call with the data it is handed, unchecked. Tasks of one family
may compile to models whose states have the same size but whose data do not (a grasp mug or
L-block has one geom more than a box): stepping a mug with a box's data writes the extra geom's
pose over other arrays (the handle's rotation over the site positions), and a box-box contact in
that corrupt frame ends in ``mju_makeFrame: xaxis of contact frame undefined``. So envs are
grouped by :func:`data_layout`, and each group steps with data made from its own models.

Threads and errors. A MuJoCo error in a thread of ``mujoco.rollout``'s own pool does not become a
Python exception: MuJoCo's default handler prints it and exits the process (MuJoCo 4.0; see
google-deepmind/mujoco#2704). So the threads here are Python threads, each running a
calling-thread rollout over a contiguous share of a group; the bindings turn an error there into
``mujoco.FatalError`` and release the GIL while stepping, so the shares still run in parallel.
The envs of a failed share are stepped again one by one: one that fails alone is stopped where
the step began and reported (:attr:`adapt_robot.sim.core.family.Physics.faulted`, a
:class:`~adapt_robot.sim.core.family.PhysicsFaultWarning` and :attr:`MujocoPhysics.fault_log`); the
others continue.
"""

from __future__ import annotations

import itertools
import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import mujoco
import numpy as np
from mujoco import rollout

from adapt_robot.sim.core import gripper
from adapt_robot.sim.core.family import Physics, PhysicsFaultWarning
from adapt_robot.sim.core.params import TaskParams

ASSETS = Path(__file__).resolve().parent.parent / "assets"
STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS
FAULT_LOG_SIZE = 16
"""Most recent physics faults kept (with the state and control that reproduce them)."""
SHARES_PER_THREAD = 4
"""Rollout calls per stepping thread and control step: the threads take the next share when
they finish one, which evens out envs of different cost (contacts)..."""
MIN_SHARE = 4
"""... as long as a share keeps at least this many envs (each call costs some Python)."""


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


@cache
def _data_array_names() -> tuple[str, ...]:
    """Names of the array fields of ``MjData`` (the same for every model of this MuJoCo)."""
    data = mujoco.MjData(mujoco.MjModel.from_xml_string("<mujoco/>"))
    return tuple(
        name
        for name in dir(data)
        if not name.startswith("_") and isinstance(getattr(data, name), np.ndarray)
    )


def data_layout(model: mujoco.MjModel) -> Hashable:
    """The memory layout of an ``MjData`` for ``model``: models with equal layouts can share data.

    Made of the sizes of the data's buffer and arena and the shape of every array it holds (the
    model sizes that matter, whatever this MuJoCo version's data holds).
    """
    data = mujoco.MjData(model)
    shapes = tuple(getattr(data, name).shape for name in _data_array_names())
    return (int(data.nbuffer), int(data.narena), shapes)


@dataclass(frozen=True)
class PhysicsFault:
    """One env that MuJoCo failed to step, with what reproduces the failure."""

    index: int
    """Env index in the batch."""
    task: TaskParams
    message: str
    """MuJoCo's error."""
    state: np.ndarray
    """``mjSTATE_FULLPHYSICS`` state the failed step began from."""
    ctrl: np.ndarray
    """Control held during the failed step."""


@dataclass(eq=False)
class _Group:
    """Envs whose models share one ``MjData`` layout, and the buffers their rollouts use."""

    index: np.ndarray
    """Env indices (ascending)."""
    models: list[mujoco.MjModel]
    state0: np.ndarray
    """[n, nstate] initial states of a step (the first rows are used when envs are stopped)."""
    ctrl: np.ndarray
    """[n, SUBSTEPS, nu]"""
    state: np.ndarray
    """[n, SUBSTEPS, nstate]"""
    sensors: np.ndarray
    """[n, SUBSTEPS, nsensordata]"""
    datas: list[mujoco.MjData] = field(default_factory=list)
    runners: list[rollout.Rollout] = field(default_factory=list)

    def slot(self, k: int) -> tuple[rollout.Rollout, mujoco.MjData]:
        """Runner and data of thread ``k`` (made on first use, from this group's own models)."""
        while len(self.datas) <= k:
            self.datas.append(mujoco.MjData(self.models[0]))
            self.runners.append(rollout.Rollout(nthread=0))
        return self.runners[k], self.datas[k]

    def close(self) -> None:
        for runner in self.runners:
            runner.close()
        self.runners.clear()
        self.datas.clear()


@dataclass(frozen=True)
class _Share:
    """Rows ``lo:hi`` of a group's buffers (one rollout call)."""

    group: _Group
    envs: np.ndarray
    """Env index of each used buffer row."""
    models: list[mujoco.MjModel]
    """Model of each used buffer row."""
    lo: int
    hi: int


def _splits(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` in ``min(parts, n)`` contiguous near-equal pieces."""
    parts = max(1, min(parts, n))
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


class MujocoPhysics(Physics):
    """``batch`` MuJoCo envs of one scene type."""

    def __init__(self, scene: MujocoScene, batch: int, nthread: int | None = None) -> None:
        super().__init__(batch)
        self.scene = scene
        self.assets = {Path(a).name: asset_bytes(a) for a in scene.assets}
        if nthread is None:
            nthread = min(batch, os.cpu_count() or 1) if batch > 1 else 0
        self.nthread = nthread
        """Threads stepping the batch (0 or 1: the calling thread); read at every step."""
        self._rollout = rollout.Rollout(nthread=0)
        """Kept for callers that replace it to set threads; stepping uses :attr:`nthread`."""
        self._model_cache: dict[TaskParams, tuple[mujoco.MjModel, Hashable]] = {}
        self.models: list[mujoco.MjModel] = []
        self.tasks: list[TaskParams] = []
        self._groups: list[_Group] = []
        self._group_of: list[_Group] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._local = threading.local()
        """``slot``: which data of a group the current stepping thread uses (0 if unset)."""
        self.fault_log: list[PhysicsFault] = []
        """The last ``FAULT_LOG_SIZE`` physics faults, oldest first."""
        self._renderers: dict[tuple[int, int, int], mujoco.Renderer] = {}

    def _model(self, task: TaskParams) -> tuple[mujoco.MjModel, Hashable]:
        cached = self._model_cache.get(task)
        if cached is None:
            model = compile_model(self.scene.mjcf(task), self.assets)
            model.opt.timestep = gripper.TIMESTEP
            if len(self._model_cache) > 4096:
                self._model_cache.clear()
            cached = self._model_cache[task] = (model, data_layout(model))
        return cached

    def set_tasks(self, tasks: Sequence[TaskParams]) -> None:
        """Compile (or reuse) one model per task; all must share a state size signature.

        Envs whose models need differently laid out ``MjData`` step in separate rollouts.
        """
        if len(tasks) != self.batch:
            raise ValueError(f"tasks: expected {self.batch}, got {len(tasks)}")
        compiled = [self._model(t) for t in tasks]
        models = [m for m, _ in compiled]
        sig = {
            (m.nq, m.nv, m.nu, m.na, m.nsensordata, mujoco.mj_stateSize(m, STATE_SPEC))
            for m in models
        }
        if len(sig) != 1:
            raise ValueError(f"scene: tasks compile to models of different sizes {sig}")
        self.models, self.tasks = models, list(tasks)
        self.nstate = mujoco.mj_stateSize(models[0], STATE_SPEC)
        self.sensor_dim = models[0].nsensordata
        self.ctrl_dim = models[0].nu
        members: dict[Hashable, list[int]] = {}
        for i, (_, layout) in enumerate(compiled):
            members.setdefault(layout, []).append(i)
        for group in self._groups:
            group.close()
        self._groups = [
            _Group(
                index=np.array(index),
                models=[models[i] for i in index],
                state0=np.zeros((len(index), self.nstate)),
                ctrl=np.zeros((len(index), gripper.SUBSTEPS, self.ctrl_dim)),
                state=np.zeros((len(index), gripper.SUBSTEPS, self.nstate)),
                sensors=np.zeros((len(index), gripper.SUBSTEPS, self.sensor_dim)),
            )
            for index in members.values()
        ]
        owner = {int(i): group for group in self._groups for i in group.index}
        self._group_of = [owner[i] for i in range(self.batch)]
        self.state = np.zeros((self.batch, self.nstate))
        self._sensors = np.zeros((self.batch, self.sensor_dim))
        self.faulted[:] = False

    def reset_envs(
        self,
        rng: np.random.Generator,
        indices: np.ndarray,
        tasks: Sequence[TaskParams] | None = None,
    ) -> np.ndarray:
        """Reset envs ``indices`` (to new ``tasks`` if given); the others keep their state."""
        if not self.models:
            raise RuntimeError("reset: no tasks set")
        plan = self.reset_plan(indices, tasks)
        changed = [(i, task) for i, task in plan if task is not None and task != self.tasks[i]]
        if changed:
            new = list(self.tasks)
            for i, task in changed:
                new[i] = task
            # set_tasks regroups the envs by model layout and clears every state: keep the
            # running envs' states (every task's state has the same size).
            state, sensors, faulted = self.state.copy(), self._sensors.copy(), self.faulted.copy()
            self.set_tasks(new)
            self.state[:], self._sensors[:], self.faulted[:] = state, sensors, faulted
        for i, _ in plan:
            self._reset_env(i, rng)
            self.faulted[i] = False
        return self._sensors.copy()

    def _reset_env(self, i: int, rng: np.random.Generator) -> None:
        """Env ``i`` to its scene's initial state (initial-pose noise from ``rng``)."""
        model, task = self.models[i], self.tasks[i]
        _, data = self._group_of[i].slot(0)
        mujoco.mj_resetData(model, data)
        init = self.scene.draw_initial(task, rng)
        data.qpos[:] = self.scene.initial_qpos(model, task, init)
        data.ctrl[:] = 0.0
        try:
            mujoco.mj_forward(model, data)
        except mujoco.FatalError as err:
            raise RuntimeError(f"reset: MuJoCo failed on env {i} ({task}): {err}") from err
        mujoco.mj_getState(model, data, self.state[i], STATE_SPEC)
        self._sensors[i] = data.sensordata

    def step(self, ctrl: np.ndarray) -> np.ndarray:
        """One control period: ``SUBSTEPS`` physics steps per env with ``ctrl`` held.

        Stopped (faulted) envs stay where they are; an env MuJoCo fails to step is stopped
        (see the module docstring). Raises ValueError for a wrong shape or a non-finite control.
        """
        if not self.models:
            raise RuntimeError("step: no tasks set")
        ctrl = np.asarray(ctrl, dtype=np.float64)
        if ctrl.shape != (self.batch, self.ctrl_dim):
            raise ValueError(
                f"ctrl: expected shape {(self.batch, self.ctrl_dim)}, got {ctrl.shape}"
            )
        bad = ~np.isfinite(ctrl).all(axis=1)
        if bad.any():
            raise ValueError(f"ctrl: non-finite values for envs {np.flatnonzero(bad).tolist()}")
        workers = max(1, self.nthread)
        shares: list[_Share] = []
        for group in self._groups:
            envs = group.index[~self.faulted[group.index]]
            n = envs.size
            if n == 0:
                continue
            group.slot(workers - 1)  # make the data of every thread here, not in the threads
            group.state0[:n] = self.state[envs]
            group.ctrl[:n] = ctrl[envs][:, None, :]
            models = group.models if n == group.index.size else [self.models[i] for i in envs]
            parts = 1
            if workers > 1:
                parts = max(workers, min(workers * SHARES_PER_THREAD, n // MIN_SHARE))
            shares.extend(_Share(group, envs, models, lo, hi) for lo, hi in _splits(n, parts))
        if len(shares) > 1 and workers > 1:
            errors = list(self._executor(workers).map(self._run, shares))
        else:
            errors = [self._run(share) for share in shares]
        for share, error in zip(shares, errors, strict=True):
            if error is not None:
                self._retry_alone(share)
        for share in shares:
            rows = np.arange(share.lo, share.hi)
            envs = share.envs[rows]
            ok = ~self.faulted[envs]
            self.state[envs[ok]] = share.group.state[rows[ok], -1]
            self._sensors[envs[ok]] = share.group.sensors[rows[ok], -1]
        return self._sensors.copy()

    def _executor(self, workers: int) -> ThreadPoolExecutor:
        """The stepping threads; thread ``k`` steps with the ``k``-th data of each group."""
        if self._pool is None or self._pool_size != workers:
            if self._pool is not None:
                self._pool.shutdown()
            slots = itertools.count()

            def number_thread() -> None:
                self._local.slot = next(slots)

            self._pool = ThreadPoolExecutor(
                workers, thread_name_prefix="mujoco-step", initializer=number_thread
            )
            self._pool_size = workers
        return self._pool

    def _rollout_rows(self, share: _Share, lo: int, hi: int) -> None:
        """Step rows ``lo:hi`` of ``share``'s group on the calling thread (may raise FatalError).

        One ``MjData`` per call: the rollout then runs on the calling thread, whose MuJoCo
        errors the bindings raise as ``mujoco.FatalError``.
        """
        group = share.group
        runner, data = group.slot(getattr(self._local, "slot", 0))
        runner.rollout(
            share.models[lo:hi],
            [data],
            group.state0[lo:hi],
            group.ctrl[lo:hi],
            nstep=gripper.SUBSTEPS,
            state=group.state[lo:hi],
            sensordata=group.sensors[lo:hi],
            skip_checks=True,
        )

    def _run(self, share: _Share) -> str | None:
        """Step one share; MuJoCo's error message if it failed."""
        try:
            self._rollout_rows(share, share.lo, share.hi)
        except mujoco.FatalError as err:
            return str(err)
        return None

    def _retry_alone(self, share: _Share) -> None:
        """Step the envs of a failed share one by one; stop those that fail alone."""
        for row in range(share.lo, share.hi):
            try:
                self._rollout_rows(share, row, row + 1)
            except mujoco.FatalError as err:
                self._fault(
                    int(share.envs[row]),
                    str(err),
                    share.group.state0[row],
                    share.group.ctrl[row, 0],
                )

    def _fault(self, index: int, message: str, state: np.ndarray, ctrl: np.ndarray) -> None:
        """Stop env ``index`` where its step began, and report it."""
        self.faulted[index] = True
        self.fault_count += 1
        task = self.tasks[index]
        self.fault_log.append(PhysicsFault(index, task, message, state.copy(), ctrl.copy()))
        del self.fault_log[:-FAULT_LOG_SIZE]
        warnings.warn(
            PhysicsFaultWarning(
                f"MuJoCo failed to step env {index} ({task}): {message}; the env is stopped "
                "until the next reset (fault_log holds the state and control that reproduce it)"
            ),
            stacklevel=4,
        )

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
        for group in self._groups:
            for data in group.datas:
                for name, w in zip(names, data.warning, strict=False):
                    if w.number:
                        out[name] = out.get(name, 0) + int(w.number)
        return out

    def close(self) -> None:
        """Stop the stepping threads and the renderer."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._rollout.close()
        for group in self._groups:
            group.close()
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
