"""The on-device side: numpy, onnxruntime and pyyaml only (never torch).

The bundle reader (manifest, hashes, parameters) lives here so that a robot can verify a
bundle without the training stack. Returns and advantages live here because the robot
computes them on-line and the trainer must compute exactly the same numbers.
"""

from adapt_robot.runtime.bundle_format import (
    FORMAT_VERSION,
    BundleError,
    Manifest,
    load_bundle,
    load_manifest,
    sha256_file,
)
from adapt_robot.runtime.returns import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    linear_baseline,
    normalize_advantages,
)

__all__ = [
    "FORMAT_VERSION",
    "BundleError",
    "Manifest",
    "baseline_features",
    "discounted_returns",
    "fit_linear_baseline",
    "gae",
    "linear_baseline",
    "load_bundle",
    "load_manifest",
    "normalize_advantages",
    "sha256_file",
]
