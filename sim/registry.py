"""Registry of task families and engines; every env test is parameterised over it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from adapt_robot.errors import UnknownName
from adapt_robot.sim.core.family import TaskFamily

ENGINES: tuple[str, ...] = ("mujoco", "pybullet", "numpy", "gym")

_FACTORIES: dict[str, Callable[[], TaskFamily[Any]]] = {}
_BUILTIN: dict[str, str] = {
    "point": "adapt_robot.sim.families.point:PointFamily",
    "grasp": "adapt_robot.sim.families.grasp:GraspFamily",
    "door": "adapt_robot.sim.families.door:DoorFamily",
}
GYM_IDS: dict[str, str] = {
    "point": "adapt_robot/Point-v0",
    "grasp": "adapt_robot/Grasp-v0",
    "door": "adapt_robot/Door-v0",
}


def register_family(name: str, factory: Callable[[], TaskFamily[Any]]) -> None:
    """Add a user task family (a zero-argument factory returning a :class:`TaskFamily`)."""
    if name in _BUILTIN or name in _FACTORIES:
        raise ValueError(f"family {name!r} is already registered")
    _FACTORIES[name] = factory


def family_names() -> tuple[str, ...]:
    """All registered family names, built-in first."""
    return (*_BUILTIN, *_FACTORIES)


def get_family(name: str) -> TaskFamily[Any]:
    """Instantiate a family by name; unknown names get an error listing the known ones."""
    if name in _FACTORIES:
        return _FACTORIES[name]()
    if name not in _BUILTIN:
        raise UnknownName(f"family: unknown task family {name!r}; known: {list(family_names())}")
    module, cls = _BUILTIN[name].split(":")
    family: TaskFamily[Any] = getattr(importlib.import_module(module), cls)()
    return family


def family_engine_pairs(include_gym_plugins: bool = False) -> list[tuple[str, str]]:
    """Every supported (family, engine) pair of the registered families.

    Gymnasium plug-ins (engine ``gym``, :mod:`adapt_robot.sim.families.gym_family`) are left out
    unless asked for: they follow the smaller plug-in protocol (the env computes the reward, the
    sampler alone knows the split), so the full family contract in ``tests/sim`` does not apply.
    """
    return [
        (f, e)
        for f in family_names()
        for e in get_family(f).engines
        if include_gym_plugins or e != "gym"
    ]


def register_gym_envs() -> None:
    """Register the built-in families with Gymnasium.

    Then ``gymnasium.make("adapt_robot/Grasp-v0", engine="pybullet")`` works, and
    ``gymnasium.make_vec("adapt_robot/Grasp-v0", num_envs=64)`` builds one
    :class:`adapt_robot.sim.envs.vector_gym.TaskVectorEnv` over the batched engine. Called on
    ``import adapt_robot.sim``, so ``gymnasium.make("adapt_robot.sim:adapt_robot/Grasp-v0")``
    (Gymnasium's ``module:id`` form, which imports the module first) works without importing
    anything.
    (Gymnasium 1.x loads no ``gymnasium.envs`` entry points, so none is declared.)
    """
    import gymnasium

    for family, env_id in GYM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="adapt_robot.sim.envs.gym_env:TaskEnv",
                vector_entry_point="adapt_robot.sim.envs.vector_gym:TaskVectorEnv",
                kwargs={"family": family},
                max_episode_steps=None,
            )
