"""The on-device side: numpy, onnxruntime and pyyaml only (never torch).

Returns and advantages live here because the robot computes them on-line and the trainer must
compute exactly the same numbers.
"""

from adapt_robot.runtime.returns import (
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    linear_baseline,
    normalize_advantages,
)

__all__ = [
    "baseline_features",
    "discounted_returns",
    "fit_linear_baseline",
    "gae",
    "linear_baseline",
    "normalize_advantages",
]
