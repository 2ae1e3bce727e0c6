"""The project's own errors: a user mistake or bad input, reported in one line.

``adapt-robot`` prints an :class:`AdaptRobotError` as ``adapt-robot COMMAND: error: MESSAGE``
and exits with status 2; any other exception is a bug and shows its traceback. Each project
error type also inherits the built-in type it stood for before (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` code keeps working. The message says what
is wrong and what to do.

Standard library only: every layer (``sim``, the torch-free runtime, export) may import it.
"""

from __future__ import annotations


class AdaptRobotError(Exception):
    """The project's own errors: a user mistake or bad input, reported in one line."""


class UsageError(AdaptRobotError, ValueError):
    """Command-line arguments that do not go together (a flag another subcommand reads, ...)."""


class InputNotFound(AdaptRobotError, FileNotFoundError):
    """A file or directory the user named (run directory, checkpoint, bundle) is not there."""


class OutputExists(AdaptRobotError, FileExistsError):
    """An output directory already holds a run that would be overwritten."""


class UnknownName(AdaptRobotError, ValueError):
    """A name that is not registered (a task family, an engine, a sampler kind)."""


class UnsupportedInput(AdaptRobotError, ValueError):
    """Well-formed input that this command cannot handle (a policy type a benchmark lacks)."""


class CheckpointError(AdaptRobotError, ValueError):
    """A checkpoint that cannot be used (another format, a config that does not match it)."""


class BundleError(AdaptRobotError, ValueError):
    """A bundle is missing, malformed or does not match its manifest (the message names where).

    Defined here so that every runtime module can raise it; re-exported by
    ``adapt_robot.runtime.bundle_format``.
    """
