"""The on-device side: numpy, onnxruntime and pyyaml only (never torch, mujoco or pybullet).

- :class:`Bundle` loads and verifies an exported bundle (manifest, hashes, parameter shapes,
  every graph's declared inputs and outputs).
- :class:`OnlineAdapter` acts with the bundle's policy and adapts it on-line with
  ``adapt_step.onnx`` (:class:`EpisodicMode`, :class:`SlidingWindowMode`), off the control
  thread, under :class:`SafetyConfig`.
- Returns and advantages live here because the robot computes them on-line and the trainer
  must compute exactly the same numbers (:func:`task_advantages`).
"""

try:
    import onnxruntime as _onnxruntime  # noqa: F401  (either package provides this module)
except ImportError as _err:
    raise ImportError(
        "adapt_robot.runtime needs ONNX Runtime, which adapt-robot does not install by itself: "
        "pip install 'adapt-robot[cpu]' (onnxruntime), 'adapt-robot[gpu]' (onnxruntime-gpu: "
        "CUDA and TensorRT), or on a Jetson NVIDIA's onnxruntime-gpu wheel for your JetPack "
        "(never both packages: they are the same module)"
    ) from _err

from adapt_robot.runtime.adaptation import AdaptResult
from adapt_robot.runtime.adapter import OnlineAdapter
from adapt_robot.runtime.advantages import AdvantageSettings, task_advantages
from adapt_robot.runtime.bundle import Bundle
from adapt_robot.runtime.bundle_format import (
    FORMAT_VERSION,
    BundleError,
    Manifest,
    load_bundle,
    load_manifest,
    sha256_file,
)
from adapt_robot.runtime.modes import EpisodicMode, SlidingWindowMode
from adapt_robot.runtime.returns import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    linear_baseline,
    normalize_advantages,
)
from adapt_robot.runtime.safety import SafetyConfig, SafetyCounters
from adapt_robot.runtime.sessions import SessionSettings, resolve_providers

__all__ = [
    "FORMAT_VERSION",
    "AdaptResult",
    "AdvantageSettings",
    "Bundle",
    "BundleError",
    "EpisodicMode",
    "Manifest",
    "OnlineAdapter",
    "SafetyConfig",
    "SafetyCounters",
    "SessionSettings",
    "SlidingWindowMode",
    "baseline_features",
    "discounted_returns",
    "fit_linear_baseline",
    "gae",
    "linear_baseline",
    "load_bundle",
    "load_manifest",
    "normalize_advantages",
    "resolve_providers",
    "sha256_file",
    "task_advantages",
]
