"""torch -> ONNX bundle export: the policy, the inner-loop step and the reward, with parity checks.

:func:`export_bundle` writes a bundle directory (format: :mod:`adapt_robot.runtime.bundle_format`,
``docs/bundle_format.md``); ``adapt-robot bench export``
(:mod:`adapt_robot.bench.export_bench`) times the exported inner step.
"""

from adapt_robot.export.bundle import ExportError, export_bundle
from adapt_robot.export.parity import ParityError

__all__ = ["ExportError", "ParityError", "export_bundle"]
