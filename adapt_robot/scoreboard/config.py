"""The launch config of ``adapt-robot scoreboard``: a frozen ``ScoreboardConfig``.

``arms`` is a list of mappings, each validated by the spec class of its ``type``
(:data:`adapt_robot.scoreboard.arms.ARM_TYPES`), so every arm type has its own options. All of
it (unknown types or keys, a kind the type cannot be, duplicate names, a missing oracle or
robust arm, an engine the family lacks, a bundle of another family or too small a batch) is
refused before any work, with the key path in the message (``arms[2].kind: ...``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from adapt_robot.config import ConfigError, apply_overrides, build, load_yaml, setting
from adapt_robot.scoreboard.arms import ARM_TYPES, ArmSpec, ScoreSettings


@dataclass(frozen=True, kw_only=True)
class EpisodesConfig:
    """How many episodes each stage scores (the same budget for every arm)."""

    post_episodes: int = setting(
        3,
        doc="Episodes scored per task per stage (after_k: after its k adaptation episodes).",
        ge=1,
    )


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    """Statistics of the report."""

    bootstrap: int = setting(
        2000, doc="Paired bootstrap resamples (over tasks) of each gap_closed interval.", ge=100
    )
    min_headroom: float = setting(
        25.0,
        doc="Headroom (oracle - best robust, points) below which a family does not test "
        "adaptation (flagged).",
        ge=0,
        le=100,
    )


@dataclass(frozen=True, kw_only=True)
class ScoreboardConfig:
    """Launch settings of ``adapt-robot scoreboard``."""

    imports: tuple[str, ...] = setting(
        (),
        doc="Python modules imported first: they register plug-in task families (as in a "
        "training launch file). Looked up on sys.path, then beside the launch file, then in the "
        "working directory.",
    )
    family: str = setting(doc="Task family (see adapt_robot.sim.registry).")
    engines: tuple[str, ...] = setting(
        ("mujoco", "pybullet"), doc="Engines every arm is scored in (each one the family has)."
    )
    split: Literal["train", "test"] = setting("test", doc="Split of the scored tasks (held out).")
    tasks: int = setting(48, doc="Scored tasks (the same for every arm and engine).", ge=1)
    seed: int = setting(0, doc="Seed of the tasks, the rollouts and the bootstrap.", ge=0)
    episodes: EpisodesConfig = setting(  # noqa: RUF009
        EpisodesConfig(), doc="Episodes per stage."
    )
    report: ReportConfig = setting(ReportConfig(), doc="Statistics.")  # noqa: RUF009
    out_dir: str = setting(
        "runs/scoreboard", doc="Directory for scoreboard.md/.json/.png and the config."
    )
    loggers: tuple[Literal["csv", "tensorboard", "wandb"], ...] = setting(
        (),
        doc="Also send the figures to scoreboard.csv, TensorBoard (OUT/tensorboard) or an "
        "offline W&B run (adapt_robot.reporting.loggers); the last two need their package.",
    )
    arms: tuple[ArmSpec, ...] = setting(
        (), doc="Arms: mappings with name, kind (oracle|robust|adaptive), type and its options."
    )
    only: tuple[str, ...] = setting(
        (),
        doc="Score only the arms of these names (in the file's order; the others are not "
        "validated, so their bundles need not exist), e.g. --set 'only=[expert, door_pearl]'; "
        "empty: every arm.",
    )

    def settings(self) -> ScoreSettings:
        """What the arms take from this config."""
        return ScoreSettings(split=self.split, post_episodes=self.episodes.post_episodes)


def build_arm(raw: Any, where: str, family: str) -> ArmSpec:
    """Validate one arm mapping with its type's spec class and the type's allowed kinds."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with name, kind and type, got {raw!r}")
    kind = raw.get("type")
    if kind not in ARM_TYPES:
        raise ConfigError(f"{where}.type: expected one of {sorted(ARM_TYPES)}, got {kind!r}")
    arm_type = ARM_TYPES[kind]
    spec = build(arm_type.spec, dict(raw), where)
    if spec.kind not in arm_type.kinds:
        raise ConfigError(
            f"{where}.kind: a {kind} arm ({arm_type.doc}) is {' or '.join(arm_type.kinds)}, got "
            f"{spec.kind!r}"
        )
    try:
        spec.validate(family)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None
    return spec


def chosen(raw_arm: Any, only: Sequence[str]) -> bool:
    """Whether an arm mapping is scored under ``only`` (every arm when ``only`` is empty)."""
    return not only or (isinstance(raw_arm, Mapping) and raw_arm.get("name") in only)


def build_scoreboard_config(
    data: Mapping[str, Any], search: Sequence[str | Path] = ()
) -> ScoreboardConfig:
    """Validate a raw mapping (file contents with overrides applied) into a ScoreboardConfig.

    ``imports`` are looked up on ``sys.path``, then in the folders of ``search``.
    """
    from adapt_robot.plugins import import_plugins
    from adapt_robot.reporting.loggers import loggers_problem
    from adapt_robot.sim.registry import get_family

    raw = dict(data)
    arms_raw = raw.pop("arms", None)
    cfg = build(ScoreboardConfig, raw)
    import_plugins(cfg.imports, search)
    problem = loggers_problem(cfg.loggers)
    if problem is not None:
        raise ConfigError(problem)
    try:
        family = get_family(cfg.family)
    except ValueError as err:
        raise ConfigError(f"family: {err}") from None
    for i, engine in enumerate(cfg.engines):
        if engine not in family.engines:
            raise ConfigError(
                f"engines[{i}]: family {family.name!r} runs in {list(family.engines)}, got "
                f"{engine!r}"
            )
    if not cfg.engines:
        raise ConfigError(f"engines: expected at least one of {list(family.engines)}")
    if not isinstance(arms_raw, list) or not arms_raw:
        raise ConfigError(
            f"arms: expected a list of arm mappings (name, kind, type), got {arms_raw!r}"
        )
    picked = [(i, a) for i, a in enumerate(arms_raw) if chosen(a, cfg.only)]
    names = [a.get("name") for a in arms_raw if isinstance(a, Mapping)]
    unknown = [n for n in cfg.only if n not in names]
    if unknown:
        raise ConfigError(f"only: no arm named {unknown} in arms (names: {names})")
    arms = tuple(build_arm(a, f"arms[{i}]", family.name) for i, a in picked)
    seen: dict[str, int] = {}
    for i, arm in enumerate(arms):
        if arm.name in seen:
            raise ConfigError(
                f"arms[{i}].name: {arm.name!r} is already the name of arms[{seen[arm.name]}]"
            )
        seen[arm.name] = i
    for needed in ("oracle", "robust"):
        if not any(a.kind == needed for a in arms):
            raise ConfigError(
                f"arms: no {needed} arm; gap_closed needs an oracle and a robust reference "
                "(e.g. type: expert as oracle, type: fixed_expert as robust)"
            )
    return dataclasses.replace(cfg, arms=arms)


def load_scoreboard_config(path: str | Path, overrides: Sequence[str] = ()) -> ScoreboardConfig:
    """Load a launch file with ``key.path=value`` overrides; errors name file and key path."""
    data = apply_overrides(load_yaml(path), overrides)
    try:
        return build_scoreboard_config(data, [Path(path).resolve().parent, Path.cwd()])
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
