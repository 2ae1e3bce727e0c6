"""``adapt-robot deploy BUNDLE``: the real control loop on a simulated robot, adapting on-line.

For each of ``objects`` held-out objects or doors (drawn as ``adapt-robot eval`` draws them, so
the same seed and count give the same tasks), with one torch-free
:class:`~adapt_robot.runtime.adapter.OnlineAdapter` and one
:class:`~adapt_robot.deploy.sim_robot.SimRobot` in the chosen engine:

1. ``robot.set_task(task)``, ``adapter.reset_to_meta()``;
2. one :class:`~adapt_robot.runtime.loop.ControlLoop` at ``rate_hz`` runs ``K`` exploration
   episodes with the meta-parameters (scored **before**). At the end of the ``K``-th episode the
   controller starts the adaptation on the adapter's worker thread (``adapt_async``) and the
   loop goes on without waiting: episodes that start before the new parameters are in are
   **transition** episodes (not scored). Once the adaptation has finished (``params_version``
   bumped, or the update rolled back by the safety checks: then the post episodes run with the
   meta-parameters and the report says so), ``post_episodes`` episodes are scored **after**,
   and the controller stops the loop.

Scoring matches the offline protocol (see :mod:`adapt_robot.jobs.deploy_report`). With ``gif``,
after every timed loop has finished, one episode of the first object is replayed with the
meta-parameters and one with its adapted parameters (same task, same seed), rendered and
captioned. Nothing here imports torch: this is what a robot runs, plus a simulator.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from adapt_robot import BLAS_THREAD_VARS
from adapt_robot.config import ConfigError
from adapt_robot.deploy.scoring import AFTER, BEFORE, TRANSITION, ScoredController
from adapt_robot.errors import UnknownName
from adapt_robot.jobs.deploy_output import render_table, write_report
from adapt_robot.jobs.deploy_report import DeployReport, LoopSummary, ObjectResult, percentiles_us
from adapt_robot.plugins import import_plugins
from adapt_robot.runtime.adaptation import KEPT_SUCCESS
from adapt_robot.runtime.adapter import OnlineAdapter
from adapt_robot.runtime.bundle import Bundle
from adapt_robot.runtime.loop import MAX_RATE_HZ, MIN_RATE_HZ, ControlLoop, LoopAborted, LoopConfig
from adapt_robot.runtime.modes import EpisodicMode, experience_mode
from adapt_robot.runtime.sessions import resolve_providers

if TYPE_CHECKING:
    import argparse

    from adapt_robot.deploy.sim_robot import SimRobot
    from adapt_robot.sim.core.family import TaskFamily
    from adapt_robot.sim.core.params import TaskParams

__all__ = ["DeployConfig", "DeployReport", "ObjectResult", "default_out_dir", "run_deploy"]

TASK_STREAM = 101
"""Second seed word of the held-out task draw: the value ``adapt_robot.meta.evaluation`` uses,
so ``deploy --seed S --objects M`` runs on the tasks ``eval --seed S --tasks M`` scores."""
TRANSITION_LIMIT = 10
"""Most episodes a run may spend waiting for its adaptation before the loop is stopped."""
"""Set to 1 by the CLI before numpy is imported (see :mod:`adapt_robot.runtime.adapter`)."""
_FLAGS = {
    "bundle": "BUNDLE",
    "robot": "--robot",
    "split": "--task-split",
    "rate_hz": "--rate",
    "objects": "--objects",
    "episodes": "--episodes",
    "post_episodes": "--post-episodes",
    "steps": "--steps",
    "sequential": "--sequential",
    "seed": "--seed",
    "providers": "--providers",
    "verify_key": "--verify-key",
    "gif": "--gif",
    "out_dir": "--out",
}
"""Config field -> the ``adapt-robot deploy`` argument that sets it (for error messages)."""


@dataclass(frozen=True, kw_only=True)
class DeployConfig:
    """Settings of ``adapt-robot deploy`` (checked on construction; errors name the field)."""

    bundle: Path | str
    """Bundle directory written by ``adapt-robot export``."""
    robot: str = "sim:pybullet"
    """``sim:ENGINE``: a simulated robot in an engine of the bundle's family (``sim:pybullet``
    or ``sim:mujoco`` for grasp and door, ``sim:numpy`` for point)."""
    split: str = "test"
    """Task split of the objects: ``test`` (held out from training) or ``train``."""
    rate_hz: float = 100.0
    """Control-loop rate (the loop's range, 100 to 1000 Hz)."""
    objects: int = 20
    """Held-out objects or doors, each adapted to from the meta-parameters."""
    episodes: int | None = None
    """Exploration episodes ``K`` per object (None: the bundle's ``inner_loop.episodes``)."""
    post_episodes: int = 3
    """Episodes scored after the adaptation, per object."""
    steps: int | None = None
    """Inner steps ``n`` of the adaptation (None: the bundle's ``inner_loop.steps``)."""
    keep_on_success: bool = False
    """Skip an adaptation when the episode before it succeeded
    (``EpisodicMode(keep_on_success=True)``): the parameters it acted with are kept."""
    sequential: bool = False
    """Adapt after each of the ``K`` exploration episodes, on all of them so far, each acting
    with the last result (``EpisodicMode(episodes=1, once=False, history=K)``, the
    scoreboard's ``experience: sequential``); only the first is scored as before. Otherwise one
    adaptation on ``K`` episodes played with the meta-parameters."""
    seed: int = 0
    """Seed of the task draw, the robot and the action noise."""
    providers: tuple[str, ...] = ("cpu",)
    """ONNX Runtime execution providers, in order of preference (CPU is always the fallback)."""
    gif: Path | None = None
    """Write a before/after GIF of the first object here (rendered after the timed loops)."""
    out_dir: Path | None = None
    """Write ``deploy.json``, ``table.md`` and ``deploy.png`` here (None: write nothing)."""
    progress: bool = True
    """One line per object on stderr."""
    imports: tuple[str, ...] = ()
    """Modules imported first (``--import``): they register a plug-in task family. The bundle
    never makes the robot import anything: the operator names the modules."""
    verify_key: Path | None = None
    """A signing key file (``--verify-key``): only a bundle signed with it is loaded."""

    def __post_init__(self) -> None:
        if not isinstance(self.bundle, str | Path) or not str(self.bundle):
            raise ConfigError(f"bundle: expected a bundle directory, got {self.bundle!r}")
        kind, _, engine = self.robot.partition(":") if isinstance(self.robot, str) else ("", "", "")
        if kind != "sim" or not engine:
            raise ConfigError(
                f"robot: expected 'sim:ENGINE' (a simulated robot, e.g. sim:pybullet), got "
                f"{self.robot!r}; a real robot connects through adapt_robot.runtime.bridge"
            )
        if self.split not in ("train", "test"):
            raise ConfigError(f"split: expected 'train' or 'test', got {self.split!r}")
        rate = self.rate_hz
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ConfigError(f"rate_hz: expected a number of Hz, got {rate!r}")
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise ConfigError(
                f"rate_hz: expected {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz (the control loop's "
                f"range), got {rate!r}"
            )
        for name, optional, low in (
            ("objects", False, 1),
            ("episodes", True, 1),
            ("post_episodes", False, 1),
            ("steps", True, 1),
            ("seed", False, 0),
        ):
            value = getattr(self, name)
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                what = f"an integer >= {low}" + (" or None" if optional else "")
                raise ConfigError(f"{name}: expected {what}, got {value!r}")
        p = self.providers
        if not isinstance(p, tuple) or not p or not all(isinstance(x, str) and x for x in p):
            raise ConfigError(f"providers: expected a non-empty tuple of names, got {p!r}")
        if self.gif is not None and Path(self.gif).suffix.lower() != ".gif":
            raise ConfigError(f"gif: expected a path ending in .gif, got {str(self.gif)!r}")

    @property
    def engine(self) -> str:
        """The simulator engine of ``robot``."""
        return self.robot.partition(":")[2]


def default_out_dir(bundle: str | Path) -> Path:
    """Where the CLI writes the report without ``--out``: ``deploy/`` beside the bundle."""
    return Path(bundle).resolve().parent / "deploy"


def held_out_tasks(family: TaskFamily[Any], n: int, split: str, seed: int) -> list[TaskParams]:
    """The ``n`` tasks of ``split`` that ``adapt-robot eval --seed seed --tasks n`` scores."""
    rng = np.random.default_rng([seed, TASK_STREAM])
    return list(family.sample_tasks(rng, n, cast(Any, split)))


# ---------------------------------------------------------------------- the job
def _resolve(cfg: DeployConfig) -> tuple[Bundle, TaskFamily[Any], int, int]:
    """The bundle, its family, ``K`` and ``n``; configuration errors before any work."""
    from adapt_robot.sim.registry import get_family

    root = Path(cfg.bundle)
    if not (root / "manifest.yaml").is_file():
        raise ConfigError(
            f"bundle: {root}: not a bundle directory (no manifest.yaml); pass the directory "
            "written by `adapt-robot export`"
        )
    key = None
    if cfg.verify_key is not None:
        from adapt_robot.runtime.signing import read_key

        key = read_key(cfg.verify_key)
    bundle = Bundle.load(root, key=key)
    bundle.require_adaptation_step("adapt-robot deploy")
    import_plugins(cfg.imports, [Path.cwd()], where="--import")
    try:
        family = get_family(bundle.manifest.family)
    except UnknownName as err:
        trained = bundle.manifest.training.get("config", {})
        used = trained.get("imports") if isinstance(trained, dict) else None
        hint = (
            f"; the bundle was trained with imports: {list(used)}: pass --import "
            f"{' --import '.join(str(m) for m in used)} (the module's folder on PYTHONPATH)"
            if used
            else "; a plug-in family needs --import MODULE"
        )
        raise ConfigError(f"family: {err}{hint}") from None
    if cfg.engine not in family.engines:
        choices = " or ".join(f"sim:{e}" for e in family.engines)
        raise ConfigError(
            f"robot: {cfg.robot!r}: family {family.name!r} runs in {list(family.engines)}; "
            f"use {choices}"
        )
    resolve_providers(cfg.providers)  # unknown names: "providers: ..." before any work
    k, n = EpisodicMode(episodes=cfg.episodes, steps=cfg.steps).resolve(bundle.manifest.inner_loop)
    if bundle.manifest.memory.posterior and n != 1:
        raise ConfigError(
            f"steps: bundle {root} adapts by its posterior (memory.kind posterior: one "
            f"encoder.onnx pass per adaptation); leave --steps out or pass 1, got {n}"
        )
    return bundle, family, k, n


def deploy_mode(cfg: DeployConfig, k: int, n: int) -> EpisodicMode:
    """The adapter's mode for ``K`` exploration episodes and ``n`` inner steps."""
    return experience_mode(
        k, sequential=cfg.sequential, keep_on_success=cfg.keep_on_success, steps=n
    )


def _trained_engine(bundle: Bundle, family: TaskFamily[Any]) -> str:
    sampler = bundle.manifest.training.get("config", {}).get("sampler", {})
    engine = sampler.get("engine") if isinstance(sampler, Mapping) else None
    return str(engine or family.engines[0])


def run_deploy(cfg: DeployConfig) -> DeployReport:
    """Run the deployment (see the module docstring); writes files when ``cfg.out_dir`` is set."""
    from adapt_robot.deploy.sim_robot import SimRobot, SimRobotConfig
    from adapt_robot.jobs.deploy_figures import write_before_after_gif

    t_start = time.perf_counter()
    bundle, family, k, n = _resolve(cfg)
    tasks = held_out_tasks(family, cfg.objects, cfg.split, cfg.seed)
    mode = deploy_mode(cfg, k, n)
    robot_cfg = SimRobotConfig(
        family=family.name, engine=cfg.engine, split=cast(Any, cfg.split), seed=cfg.seed
    )
    results: list[ObjectResult] = []
    pooled: dict[str, list[np.ndarray]] = {"jitter": [], "compute": [], "act": []}
    first_adapted: dict[str, np.ndarray] | None = None
    adapter = OnlineAdapter(
        bundle,
        providers=cfg.providers,
        mode=mode,
        deterministic=False,
        seed=cfg.seed,
        auto_adapt=False,
    )
    robot = SimRobot(robot_cfg)
    try:
        for i, task in enumerate(tasks):
            result, samples = _run_object(cfg, adapter, robot, family, i, task, k)
            results.append(result)
            for key, value in samples.items():
                pooled[key].append(value)
            if i == 0:
                first_adapted = dict(adapter.params)
            if cfg.progress:
                print(_progress_line(result, len(tasks), k), file=sys.stderr, flush=True)
    finally:
        adapter.close()
        robot.close()
    gif = None
    if cfg.gif is not None and first_adapted is not None:
        gif = write_before_after_gif(
            bundle,
            robot_cfg,
            tasks[0],
            first_adapted,
            results[0].adapted,
            Path(cfg.gif),
            providers=cfg.providers,
            seed=cfg.seed,
        )
    runs = [r.loop for r in results]
    report = DeployReport(
        bundle=str(cfg.bundle),
        family=family.name,
        robot=cfg.robot,
        engine=cfg.engine,
        trained_engine=_trained_engine(bundle, family),
        split=cfg.split,
        rate_hz=float(cfg.rate_hz),
        episodes=k,
        sequential=cfg.sequential,
        steps=n,
        post_episodes=cfg.post_episodes,
        horizon=int(family.max_steps),
        capacity=bundle.manifest.inner_loop.capacity,
        seed=cfg.seed,
        providers=tuple(adapter.providers),
        objects=tuple(results),
        loop=LoopSummary.merge(
            runs,
            np.concatenate(pooled["jitter"]),
            np.concatenate(pooled["compute"]),
            np.concatenate(pooled["act"]),
            rate_hz=float(cfg.rate_hz),
        ),
        safety=adapter.counters.as_dict(),
        seconds=time.perf_counter() - t_start,
        gif=None if gif is None else str(gif),
        environment={v: os.environ.get(v, "") for v in BLAS_THREAD_VARS},
    )
    if cfg.out_dir is not None:
        write_report(report, cfg.out_dir)
    return report


def _run_object(
    cfg: DeployConfig,
    adapter: OnlineAdapter,
    robot: SimRobot,
    family: TaskFamily[Any],
    index: int,
    task: TaskParams,
    k: int,
) -> tuple[ObjectResult, dict[str, np.ndarray]]:
    """One object: K + transition + post episodes in one control loop."""
    robot.set_task(task)
    while adapter.adapting:  # a previous object's adaptation must not be taken for this one's
        time.sleep(0.001)
    adapter.reset_to_meta()
    counters = adapter.counters.as_dict()
    max_episodes = k + cfg.post_episodes + TRANSITION_LIMIT * (k if cfg.sequential else 1)
    ctrl = ScoredController(
        adapter,
        robot.success,
        episodes=k,
        post_episodes=cfg.post_episodes,
        max_ticks=max_episodes * int(robot.family.max_steps),
        sequential=cfg.sequential,
    )
    loop = ControlLoop(robot, ctrl, LoopConfig(rate_hz=cfg.rate_hz, max_episodes=max_episodes))
    ctrl.attach(loop.stop)
    try:
        stats = loop.run()
    except LoopAborted as err:
        raise RuntimeError(f"object {index + 1}: the control loop stopped: {err}") from err
    outcome = ctrl.outcome()
    trace = loop.trace()
    act_ns = ctrl.act_ns()
    res = outcome.result
    nan = math.nan
    ran = res is not None and res.reason != KEPT_SUCCESS  # a kept success computed nothing
    after = adapter.counters.as_dict()
    result = ObjectResult(
        index=index,
        task=family.describe_task(task),
        episodes=tuple(ctrl.records),
        adapt_reason=outcome.reason,
        adaptations=ctrl.adaptations_started,
        adapt_ms=res.duration_ms if ran and res is not None else nan,
        adapt_wall_ms=outcome.wall_ms,
        loss_before=res.loss_before if res is not None else nan,
        loss_after=res.loss_after if res is not None else nan,
        update_norm=res.update_norm if res is not None else nan,
        batch_rows=res.rows if res is not None else 0,
        dropped_rows=res.dropped_rows if res is not None else 0,
        safety={key: after[key] - counters.get(key, 0) for key in after},
        loop=stats,
        act_us=percentiles_us(act_ns),
    )
    samples = {
        "jitter": trace.start_ns - trace.deadline_ns,
        "compute": trace.end_ns - trace.start_ns,
        "act": act_ns,
    }
    return result, samples


def _progress_line(r: ObjectResult, total: int, k: int) -> str:
    before, after = r.phase(BEFORE), r.phase(AFTER)
    k = k if r.adaptations <= 1 else 1  # sequential: one before episode, then k adaptations
    line = (
        f"object {r.index + 1}/{total}: before {r.successes(BEFORE)}/{len(before)} "
        f"after {r.successes(AFTER)}/{len(after)}, "
        + (f"adapt {r.adapt_ms:.1f} ms" if math.isfinite(r.adapt_ms) else "last adaptation not run")
    )
    if r.adaptations > 1:
        line += f" ({r.adaptations} sequential adaptations, last {r.adapt_reason})"
    elif not r.adapted:
        line += f" ({r.adapt_reason}: post episodes on the meta-parameters)"
    if len(before) < k:
        line += f" (only {len(before)} of {k} exploration episodes ran)"
    if r.phase(TRANSITION):
        line += f", {len(r.phase(TRANSITION))} transition episode(s)"
    return line


# ---------------------------------------------------------------------- CLI
def deploy_main(args: argparse.Namespace) -> str:
    """``adapt-robot deploy``: build the config from the flags, run, write; return the text."""
    out = Path(args.out) if args.out else default_out_dir(args.bundle)
    providers = tuple(p.strip() for p in str(args.providers).split(",") if p.strip())
    try:
        cfg = DeployConfig(
            bundle=args.bundle,
            robot=args.robot,
            split=args.task_split,
            rate_hz=args.rate,
            objects=args.objects,
            episodes=args.episodes,
            post_episodes=args.post_episodes,
            steps=args.steps,
            keep_on_success=bool(getattr(args, "keep_on_success", False)),
            sequential=bool(getattr(args, "sequential", False)),
            seed=args.seed,
            providers=providers,
            gif=None if args.gif is None else Path(args.gif),
            out_dir=out,
            imports=tuple(getattr(args, "imports", None) or ()),
            verify_key=None if args.verify_key is None else Path(args.verify_key),
        )
        report = run_deploy(cfg)
    except ValueError as err:
        msg = _flag_message(str(err))
        if msg == str(err):
            raise
        raise ConfigError(msg) from err
    files = f"deploy.json, table.md and deploy.png in {out}/"
    gif = f"\nbefore/after GIF: {report.gif}" if report.gif else ""
    return f"{render_table(report)}\n\n{files}{gif}"


def _flag_message(msg: str) -> str:
    """``field: ...`` as ``--flag (field): ...``, for errors of the command line."""
    for name, flag in _FLAGS.items():
        if msg.startswith(f"{name}:"):
            return f"{flag} ({name}){msg[len(name) :]}"
    return msg
