"""ONNX Runtime sessions for the robot: providers by name, quiet threads, bound buffers.

- Execution providers are asked for by short name (``"cpu"``, ``"cuda"``, ``"tensorrt"``) or by
  their full ONNX Runtime name (``"CUDAExecutionProvider"``). Providers this onnxruntime build
  does not have are dropped with one logged warning, and the CPU provider is always last, so a
  session always runs (:func:`resolve_providers`).
- Sessions default to one intra-op and one inter-op thread and to no spinning
  (``session.intra_op.allow_spinning = 0``): ONNX Runtime then shares a core with the control
  loop instead of burning it between calls (:class:`SessionSettings`).
- :class:`BoundRunner` binds inputs and outputs to preallocated numpy buffers once
  (``IOBinding`` over ``OrtValue`` views of the arrays), so a call writes its results in place
  and allocates nothing on the Python side.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}
"""Short provider names accepted besides the full ONNX Runtime names."""
OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True, kw_only=True)
class SessionSettings:
    """How every session of an adapter is created."""

    intra_op_threads: int = 1
    """Threads inside one operator (1: share a core with the control loop)."""
    inter_op_threads: int = 1
    """Threads running independent operators in parallel."""
    allow_spinning: bool = False
    """Let idle ONNX Runtime threads spin (lower latency, but a busy core); off on a robot."""
    optimization: str = "all"
    """Graph optimisation level: ``disable``, ``basic``, ``extended`` or ``all``."""
    provider_options: Mapping[str, Mapping[str, str | int | float | bool]] = field(
        default_factory=dict
    )
    """Options per execution provider (short or full name), as ONNX Runtime takes them, e.g.
    ``{"tensorrt": {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
    "trt_engine_cache_path": "/var/cache/adapt_robot/trt"}, "cuda": {"device_id": 0}}``.
    Booleans are passed as ``"1"``/``"0"``, other values as strings. Options of a provider
    that is not used (not requested, or dropped because this build lacks it) are ignored."""

    def __post_init__(self) -> None:
        if self.intra_op_threads < 1 or self.inter_op_threads < 1:
            raise ValueError(
                "intra_op_threads, inter_op_threads: expected integers >= 1, got "
                f"{self.intra_op_threads}, {self.inter_op_threads}"
            )
        for name, options in self.provider_options.items():
            provider_name(name)  # an unknown provider is refused here, naming the known ones
            if not isinstance(options, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str | int | float | bool)
                for k, v in options.items()
            ):
                raise ValueError(
                    f"provider_options[{name!r}]: expected a mapping of option names to "
                    f"strings, numbers or booleans, got {options!r}"
                )
        if self.optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(
                f"optimization: expected one of {list(OPTIMIZATION_LEVELS)}, "
                f"got {self.optimization!r}"
            )

    def providers_with_options(
        self, providers: Sequence[str]
    ) -> list[str | tuple[str, dict[str, str]]]:
        """``providers`` (full names) paired with their :attr:`provider_options`, if any."""
        by_full = {provider_name(k): v for k, v in self.provider_options.items()}
        out: list[str | tuple[str, dict[str, str]]] = []
        for p in providers:
            options = by_full.get(p)
            if options is None:
                out.append(p)
            else:
                out.append((p, {k: _option_text(v) for k, v in options.items()}))
        return out

    def session_options(self) -> ort.SessionOptions:
        """The ``SessionOptions`` these settings describe."""
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.graph_optimization_level = OPTIMIZATION_LEVELS[self.optimization]
        opts.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.allow_spinning else "0"
        )
        opts.add_session_config_entry(
            "session.inter_op.allow_spinning", "1" if self.allow_spinning else "0"
        )
        return opts


def provider_name(name: str) -> str:
    """The full ONNX Runtime name of a provider given by short or full name."""
    if name.lower() in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[name.lower()]
    if name in ort.get_all_providers():
        return name
    raise ValueError(
        f"providers: unknown execution provider {name!r}; use one of "
        f"{sorted(set(PROVIDER_ALIASES))} or a full ONNX Runtime name "
        f"({', '.join(ort.get_all_providers())})"
    )


def resolve_providers(
    requested: Sequence[str], available: Sequence[str] | None = None
) -> list[str]:
    """Full names of the requested providers this build has, in order, CPU last.

    Unknown names raise ``ValueError``. Known providers missing from ``available`` (default:
    ``onnxruntime.get_available_providers()``) are dropped with **one** warning naming all of
    them; the CPU provider is appended when not requested, so the list is never empty.
    """
    if isinstance(requested, str) or not requested:
        raise ValueError(
            f"providers: expected a non-empty sequence of names such as ('cuda', 'cpu'), "
            f"got {requested!r}"
        )
    have = list(ort.get_available_providers() if available is None else available)
    wanted: list[str] = []
    for name in requested:
        full = provider_name(name)
        if full not in wanted:
            wanted.append(full)
    missing = [p for p in wanted if p not in have and p != CPU]
    chosen = [p for p in wanted if p in have or p == CPU]
    if CPU not in chosen:
        chosen.append(CPU)
    if missing:
        logger.warning(
            "execution providers %s are not available in this onnxruntime (available: %s); "
            "running on %s. Install the matching onnxruntime build (e.g. onnxruntime-gpu) to "
            "use them.",
            missing,
            have,
            chosen,
        )
    return chosen


def create_session(
    model: str | Path | bytes, providers: Sequence[str], settings: SessionSettings
) -> ort.InferenceSession:
    """An inference session of ``model`` (a path, or the graph's bytes) on ``providers``.

    ``providers`` are full names (see above). Bytes are what :class:`Bundle` verified: a file
    replaced after the load is never opened.
    """
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(
        source, settings.session_options(), providers=settings.providers_with_options(providers)
    )


def _option_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class BoundRunner:
    """Runs one session with every input and output bound to a numpy buffer.

    The buffers are wrapped as ``OrtValue`` views (no copy on the CPU provider): writing into
    an input buffer changes the next call's input, and :meth:`run` writes the outputs into the
    output buffers. Buffers must be C-contiguous with the graph's dtype and stay alive while
    bound (the runner keeps a reference). Not thread-safe: one runner per calling thread.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        self.session = session
        self._binding = session.io_binding()
        self._keep: dict[str, tuple[np.ndarray, ort.OrtValue]] = {}
        for name, array in inputs.items():
            self.bind_input(name, array)
        for name, array in outputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(_contiguous(name, array))
            self._binding.bind_ortvalue_output(name, value)
            self._keep["out:" + name] = (array, value)

    def bind_input(self, name: str, array: np.ndarray) -> None:
        """(Re)bind input ``name`` to ``array`` (e.g. a new parameter after adaptation)."""
        value = ort.OrtValue.ortvalue_from_numpy(_contiguous(name, array))
        self._binding.bind_ortvalue_input(name, value)
        self._keep["in:" + name] = (array, value)

    def run(self) -> None:
        """One call; results land in the output buffers."""
        self.session.run_with_iobinding(self._binding)
        self._binding.synchronize_outputs()


def _contiguous(name: str, array: np.ndarray) -> np.ndarray:
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise ValueError(f"{name}: a bound buffer must be a C-contiguous numpy array")
    return array
