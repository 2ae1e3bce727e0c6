"""The ``latent_oracle`` arm: the latent learner's own policy given each task's TRUE latent.

The second oracle of the scoreboard (beside the scripted expert): the exported bundle of a
``latent_id`` run, with its ``context`` replaced per task by ``mu(hidden)``, the encoder of the
true hidden parameters learned in training (privileged: simulation only). It runs through the
robot's code path (the torch-free ``OnlineAdapter`` on a ``SimRobot``) without adapting, stage
``fixed``. The gap between it and the adaptive stages is what identification leaves; the gap
between it and the scripted expert is what imitation leaves.
"""

from __future__ import annotations

import dataclasses
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapt_robot.config import ConfigError, setting
from adapt_robot.scoreboard.arms.base import ArmSpec, ScoreSettings
from adapt_robot.scoreboard.arms.bundle import _StageRun
from adapt_robot.scoreboard.results import FIXED, ArmResult
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams


@dataclass(frozen=True, kw_only=True)
class LatentOracleSpec(ArmSpec):
    """``type: latent_oracle``: a latent run's bundle acting with the true latent of each task."""

    run: str = setting(doc="Training run directory of a latent_id learner (has its encoder).")
    bundle: str = setting(doc="That run's bundle (`adapt-robot export RUN -o BUNDLE`).")
    deterministic: bool = setting(
        False, doc="Act with the policy mean instead of sampling (the deploy job samples)."
    )
    providers: tuple[str, ...] = setting(("cpu",), doc="ONNX Runtime providers, in order.")

    def validate(self, family: str) -> None:
        """The run is a latent_id run and the bundle an identification bundle of ``family``."""
        from adapt_robot.runtime.bundle import Bundle

        if not (Path(self.run) / "checkpoint.pt").is_file():
            raise ConfigError(f"run: {self.run}: no checkpoint.pt (not a training run directory)")
        try:
            manifest = Bundle.load(self.bundle).manifest
        except ValueError as err:
            raise ConfigError(f"bundle: {err}") from None
        if manifest.family != family or manifest.inner_loop.loss != "identification":
            raise ConfigError(
                f"bundle: {self.bundle} is a {manifest.family!r} bundle with inner loss "
                f"{manifest.inner_loop.loss!r}; latent_oracle needs a {family!r} bundle of a "
                "latent_id run (inner_loop.loss: identification)"
            )


class LatentOracleArm:
    """Scores :class:`LatentOracleSpec` (see the module docstring)."""

    def __init__(self, spec: LatentOracleSpec, settings: ScoreSettings) -> None:
        self.spec = spec
        self.settings = settings

    def score(
        self, family: TaskFamily[Any], engine: str, tasks: Sequence[TaskParams], seed: int
    ) -> ArmResult:
        """Each task with its true latent, ``post_episodes`` episodes, no adaptation."""
        from adapt_robot.deploy.sim_robot import SimRobot, SimRobotConfig
        from adapt_robot.meta.algorithms.latent import LatentID
        from adapt_robot.meta.trainer import load_run
        from adapt_robot.runtime.adapter import OnlineAdapter
        from adapt_robot.runtime.bundle import Bundle
        from adapt_robot.runtime.modes import EpisodicMode

        t0 = time.perf_counter()
        _, learner, _ = load_run(self.spec.run)
        if not isinstance(learner, LatentID):
            raise ConfigError(
                f"run: {self.spec.run} is a {learner.name!r} run; latent_oracle needs latent_id"
            )
        latents = learner.true_latents(list(tasks)).numpy().astype(np.float32)
        bundle = Bundle.load(self.spec.bundle)
        robot = SimRobot(
            SimRobotConfig(family=family.name, engine=engine, split=self.settings.split, seed=seed)
        )
        run = _StageRun(FIXED)
        try:
            for task, z in zip(tasks, latents, strict=True):
                robot.set_task(task)
                context = np.ascontiguousarray(z)
                context.flags.writeable = False
                params = types.MappingProxyType({**bundle.params, "context": context})
                told = dataclasses.replace(bundle, params=params)
                with OnlineAdapter(
                    told,
                    providers=self.spec.providers,
                    mode=EpisodicMode(episodes=1),
                    deterministic=self.spec.deterministic,
                    seed=seed,
                    auto_adapt=False,
                ) as adapter:
                    run.add_task([run.run(robot, adapter, self.settings.post_episodes)])
        finally:
            robot.close()
        return ArmResult(
            arm=self.spec.name,
            kind=self.spec.kind,
            type=self.spec.type,
            engine=engine,
            stages={FIXED: run.result()},
            notes=(f"{self.spec.name}: the bundle's policy told mu(true hidden) per task",),
            seconds=time.perf_counter() - t0,
        )
