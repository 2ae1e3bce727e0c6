"""Importing the user's plug-in modules (task families registered on import).

One function for every command that names a family: ``train`` (a launch file's ``imports:``),
``export`` and ``eval`` (the run's recorded config), ``deploy --import``. A module is looked up
on ``sys.path`` first, then in the given folders (for a launch file: its own folder, then the
working directory). A folder that had to be added is put on ``sys.path`` and on ``PYTHONPATH``
(so worker processes started later find the module too) and returned, so a run can record it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from adapt_robot.config import ConfigError


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _found_in(folder: Path, module: str) -> bool:
    top = _top(module)
    return (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()


def _add_to_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.append(folder)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([*parts, folder])


def import_plugins(
    modules: Sequence[str], folders: Sequence[str | Path] = (), where: str = "imports"
) -> tuple[str, ...]:
    """Import ``modules``; return the folders of ``folders`` that had to be searched.

    Errors are :class:`ConfigError` naming ``where[i]``, the module, what was searched and what
    to do. An error raised inside a module that was found is reported as such (with its type),
    not as a missing module.
    """
    added: list[str] = []
    for i, module in enumerate(modules):
        if not isinstance(module, str) or not module.strip():
            raise ConfigError(f"{where}[{i}]: expected a module name, got {module!r}")
        if importlib.util.find_spec(_top(module)) is None:
            hit = next((Path(f) for f in folders if _found_in(Path(f), module)), None)
            if hit is None:
                searched = ", ".join(str(f) for f in folders) or "nothing else"
                raise ConfigError(
                    f"{where}[{i}]: cannot import {module!r}: no module named {_top(module)!r} "
                    f"on sys.path, nor in {searched}; put the folder that holds it on "
                    "PYTHONPATH (or beside the launch file)"
                )
            folder = str(hit.resolve())
            _add_to_path(folder)
            if folder not in added:
                added.append(folder)
        try:
            importlib.import_module(module)
        except Exception as err:  # the user's module: any error at import is theirs to see
            raise ConfigError(
                f"{where}[{i}]: importing {module!r} failed inside the module "
                f"({type(err).__name__}: {err})"
            ) from err
    return tuple(added)
