"""The launch config of ``adapt-robot train``: a frozen ``TrainConfig`` with nested sections.

``algo.name`` picks the algorithm and therefore which frozen config class validates the rest of
the ``algo`` section. Everything (unknown algorithm or key, bad values, an unknown family or an
engine the family lacks) is rejected before any work, with the key path in the message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from adapt_robot.config import ConfigError, apply_overrides, build, load_yaml, setting
from adapt_robot.meta.algorithms import ALGORITHMS, AlgoConfig, MAMLConfig
from adapt_robot.meta.policy import PolicyConfig
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.warm_start import WarmStartConfig


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """When training stops (whichever limit is reached first)."""

    env_steps: int = setting(2_000_000, doc="Environment steps (live transitions) in total.", gt=0)
    iterations: int = setting(500, doc="Training iterations in total.", gt=0)
    minutes: float = setting(
        0.0,
        doc="Wall-clock limit of this process's training, in minutes (0: none), counted from "
        "the start of the run (set-up and any warm start included) and checked after each "
        "iteration: the iteration that crosses it, its evaluation and the checkpoint finish "
        "past it. A run stopped by it depends on the machine's speed, so it is not "
        "reproducible iteration for iteration; the other limits are.",
        ge=0,
    )


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Periodic pre/post-adaptation evaluation on a fixed set of tasks."""

    every: int = setting(10, doc="Evaluate every this many iterations (and at the end).", ge=1)
    split: Literal["train", "test"] = setting("test", doc="Task split evaluated (test: held out).")
    tasks: int = setting(20, doc="Number of evaluation tasks (fixed for the whole run).", ge=1)
    episodes_per_task: int = setting(10, doc="Episodes per task, before and after adapting.", ge=1)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Launch settings of ``adapt-robot train``."""

    imports: tuple[str, ...] = setting(
        (),
        doc="Python modules imported first: they register plug-in task families "
        "(adapt_robot.sim.registry.register_family; see adapt_robot.sim.families.gym_family). "
        "Looked up on sys.path, "
        "then in import_paths, then beside the launch file, then in the working directory.",
    )
    import_paths: tuple[str, ...] = setting(
        (),
        doc="Folders searched for imports after sys.path. The folder where a module was found "
        "beside the launch file or in the working directory is added here, so the run's saved "
        "config finds it again (export, eval).",
    )
    family: str = setting("point", doc="Task family (see adapt_robot.sim.registry).")
    seed: int = setting(0, doc="Seed of everything: init, tasks, noise.", ge=0)
    out_dir: str = setting("runs/train", doc="Run directory: config, metrics, checkpoints.")
    threads: int = setting(1, doc="torch CPU threads (small MLPs run fastest on one).", ge=1)
    checkpoint_every: int = setting(10, doc="Write a checkpoint every this many iterations.", ge=1)
    loggers: tuple[Literal["csv", "tensorboard", "wandb"], ...] = setting(
        (),
        doc="Metric sinks besides metrics.jsonl (always written; resume reads it): csv "
        "(metrics.csv), tensorboard (RUN_DIR/tensorboard; needs the tensorboard package), "
        "wandb (offline, RUN_DIR/wandb; needs wandb). See adapt_robot.reporting.loggers.",
    )
    # Nested sections: frozen dataclass instances, safe as shared defaults.
    algo: AlgoConfig = setting(  # noqa: RUF009
        MAMLConfig(), doc="Algorithm section; algo.name selects it."
    )
    policy: PolicyConfig = setting(PolicyConfig(), doc="Policy network.")  # noqa: RUF009
    sampler: SamplerConfig = setting(  # noqa: RUF009
        SamplerConfig(), doc="Rollouts and advantages."
    )
    warm_start: WarmStartConfig = setting(  # noqa: RUF009
        WarmStartConfig(), doc="Behaviour cloning of the scripted experts before training."
    )
    budget: BudgetConfig = setting(BudgetConfig(), doc="Training budget.")  # noqa: RUF009
    eval: EvalConfig = setting(EvalConfig(), doc="Evaluation.")  # noqa: RUF009


def build_train_config(data: Mapping[str, Any], search: Sequence[str | Path] = ()) -> TrainConfig:
    """Validate a raw mapping (file contents with overrides applied) into a TrainConfig.

    ``imports`` are looked up on ``sys.path``, then in ``import_paths``, then in ``search``; a
    folder of ``search`` that held one is added to the returned config's ``import_paths``.
    """
    raw = dict(data)
    algo_raw = raw.pop("algo", {})
    if not isinstance(algo_raw, Mapping):
        raise ConfigError(f"algo: expected a mapping, got {type(algo_raw).__name__} {algo_raw!r}")
    name = algo_raw.get("name", "maml")
    if name not in ALGORITHMS:
        raise ConfigError(f"algo.name: expected one of {sorted(ALGORITHMS)}, got {name!r}")
    algo: AlgoConfig = build(ALGORITHMS[name][0], dict(algo_raw), "algo")
    cfg = dataclasses.replace(build(TrainConfig, raw), algo=algo)
    if cfg.warm_start.tasks > 0 and not ALGORITHMS[name][1].warm_startable:
        raise ConfigError(
            f"warm_start.tasks: {name} has no parameters to clone the experts into (its policy "
            "is the expert's own control law); set warm_start.tasks: 0"
        )
    cfg = _check_family(cfg, search)
    if cfg.policy.module:
        from adapt_robot.meta.module_policy import load_factory

        load_factory(cfg.policy.module)  # importable now, not after the first iteration
    return cfg


def check_loggers(cfg: TrainConfig) -> None:
    """The sinks of ``loggers:`` can be opened on this machine.

    Checked when training starts, not when a finished run's config is read back (export or
    evaluation on another machine).
    """
    from adapt_robot.reporting.loggers import loggers_problem

    problem = loggers_problem(cfg.loggers)
    if problem is not None:
        raise ConfigError(problem)


def _check_family(cfg: TrainConfig, search: Sequence[str | Path] = ()) -> TrainConfig:
    from adapt_robot.plugins import import_plugins
    from adapt_robot.sim.registry import get_family

    added = import_plugins(cfg.imports, [*cfg.import_paths, *search])
    new = tuple(p for p in added if p not in cfg.import_paths)
    if new:
        cfg = dataclasses.replace(cfg, import_paths=(*cfg.import_paths, *new))
    try:
        family = get_family(cfg.family)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.sampler.address is not None and cfg.sampler.kind != "ray":
        raise ConfigError(
            f"sampler.address: only used with sampler.kind: ray, got kind {cfg.sampler.kind!r}"
        )
    if cfg.sampler.kind == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("sampler.kind: ray needs Ray: pip install 'adapt-robot[ray]'")
    if cfg.sampler.engine is not None:
        try:
            family.check_engine(cfg.sampler.engine)
        except ValueError as err:
            raise ConfigError(f"sampler.{err}") from None
    for engine in getattr(cfg.algo, "engines", ()):
        try:
            family.check_engine(engine)
        except ValueError as err:
            raise ConfigError(f"algo.engines: {err}") from None
    return cfg


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a launch file with ``key.path=value`` overrides; errors name file and key path."""
    data = apply_overrides(load_yaml(path), overrides)
    try:
        cfg = build_train_config(data, search=(Path(path).resolve().parent, Path.cwd()))
        check_loggers(cfg)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return cfg
