"""A frozen policy graph: observation -> ``actions``, every parameter inside (Isaac Lab style).

``policy.onnx`` takes the parameters as named inputs, so the runtime can swap in adapted ones.
Tools that only want inference (an rsl_rl / Isaac Lab deployment, a C++ controller, a viewer)
take one graph with one input instead: :func:`freeze_policy` turns ``policy.onnx`` and a set of
parameters (the bundle's meta-parameters at export, as ``policy_frozen.onnx``; the adapted ones
on the robot, :meth:`adapt_robot.runtime.OnlineAdapter.snapshot`) into that graph:

- input ``obs [batch, O]`` (float32, batch dimension dynamic); output ``actions [batch, A]``:
  the deterministic action (the policy's mean, normaliser and squash inside), clamped to the
  action bounds;
- ``metadata_props`` (``adapt_robot.*``): observation and action names, bounds, family, the
  control rate when known, the sha256 of the ``policy.onnx`` it was frozen from and whether the
  parameters were the bundle's own or adapted ones.

It is plain inference: unlike :meth:`OnlineAdapter.act`, nothing repairs a non-finite
observation or action. Freezing edits the graph with the ``onnx`` package (``pip install
onnx``); the rest of the runtime does not need it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

OBS_INPUT = "obs"
ACTIONS_OUTPUT = "actions"
MEAN_OUTPUT = "action_mean"


def freeze_policy(
    policy_onnx: bytes,
    params: Mapping[str, np.ndarray],
    low: np.ndarray,
    high: np.ndarray,
    metadata: Mapping[str, Any],
) -> bytes:
    """The frozen graph (serialised) of ``policy_onnx`` with ``params`` inside.

    ``low``/``high``: the action bounds the output is clamped to; ``metadata``: values for
    ``metadata_props`` (lists and numbers are written as JSON). Raises ValueError when the
    graph does not take every parameter, or has inputs other than ``obs`` and the parameters.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as err:
        raise RuntimeError(
            "freezing a policy graph needs the onnx package (pip install onnx); the adapter "
            "itself runs without it"
        ) from err
    model = onnx.load_from_string(policy_onnx)
    graph = model.graph
    names = [i.name for i in graph.input]
    missing = sorted(set(params) - set(names))
    extra = [n for n in names if n != OBS_INPUT and n not in params]
    if missing or extra or OBS_INPUT not in names:
        raise ValueError(
            f"policy graph: expected inputs 'obs' and the parameters; parameters not taken "
            f"{missing}, inputs without a value {extra}"
        )
    if MEAN_OUTPUT not in [o.name for o in graph.output]:
        raise ValueError(f"policy graph: no {MEAN_OUTPUT!r} output")
    used = {name for node in graph.node for name in node.input}
    obs = next(i for i in graph.input if i.name == OBS_INPUT)
    del graph.input[:]
    graph.input.append(obs)
    for name, value in params.items():
        if name in used:
            graph.initializer.append(
                numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)
            )
    a = int(np.asarray(low).size)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(low, dtype=np.float32).reshape(a), "frozen.low"),
            numpy_helper.from_array(np.asarray(high, dtype=np.float32).reshape(a), "frozen.high"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Max", [MEAN_OUTPUT, "frozen.low"], ["frozen.above_low"]),
            helper.make_node("Min", ["frozen.above_low", "frozen.high"], [ACTIONS_OUTPUT]),
        ]
    )
    batch = obs.type.tensor_type.shape.dim[0]
    out = helper.make_tensor_value_info(
        ACTIONS_OUTPUT, TensorProto.FLOAT, [batch.dim_param or batch.dim_value or "batch", a]
    )
    del graph.output[:]
    graph.output.append(out)
    del model.metadata_props[:]
    meta = {
        **metadata,
        "adapt_robot.graph": "policy_frozen",
        "adapt_robot.frozen_from_sha256": hashlib.sha256(policy_onnx).hexdigest(),
        "adapt_robot.inputs": [OBS_INPUT],
        "adapt_robot.outputs": [ACTIONS_OUTPUT],
    }
    helper.set_model_props(
        model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    )
    onnx.checker.check_model(model)
    frozen: bytes = model.SerializeToString()
    return frozen


def frozen_parity(
    policy_onnx: bytes,
    frozen_onnx: bytes,
    params: Mapping[str, np.ndarray],
    low: np.ndarray,
    high: np.ndarray,
    obs: np.ndarray,
) -> float:
    """Largest ``|frozen(obs) - clip(policy(obs, params).mean)|`` over ``obs [N, O]``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    full = ort.InferenceSession(policy_onnx, opts, providers=cpu)
    feeds = {OBS_INPUT: obs.astype(np.float32)}
    feeds.update({k: np.asarray(v, dtype=np.float32) for k, v in params.items()})
    mean = full.run([MEAN_OUTPUT], feeds)[0]
    want = np.minimum(np.maximum(mean, low), high)
    got = ort.InferenceSession(frozen_onnx, opts, providers=cpu).run(
        [ACTIONS_OUTPUT], {OBS_INPUT: obs.astype(np.float32)}
    )[0]
    return float(np.max(np.abs(got - want))) if got.size else 0.0
