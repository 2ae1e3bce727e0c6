"""The bundle format: manifest dataclasses, sha256 helpers, load and verify (numpy + pyyaml only).

A bundle is a directory written by ``export/`` and read on the robot::

    manifest.yaml      this module's :class:`Manifest`, as YAML
    policy.onnx        obs + params -> action mean, log std
    adapt_step.onnx    params + rates + batch -> new adapted params, loss, grad norm
    reward.onnx        obs, action, next_obs -> reward, success (observation-reward families)
    params.npz         meta-parameters (training names, training order) and inner rates
    policy_fp16.onnx   optional half-precision policy (same inputs and outputs)

Every field is documented in ``docs/bundle_format.md``. :func:`load_bundle` refuses a bundle whose
format version, file hashes or parameter shapes do not match, with an error naming the file and
the field. Export writes the manifest with :func:`write_manifest`; the runtime reads it with
:func:`load_bundle`. No torch or onnx import here: this runs on the robot.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

FORMAT_VERSION = 1
"""Bundle format version written by this code; a bundle with another version is refused."""
MANIFEST = "manifest.yaml"
POLICY_ONNX = "policy.onnx"
POLICY_FP16_ONNX = "policy_fp16.onnx"
ADAPT_STEP_ONNX = "adapt_step.onnx"
REWARD_ONNX = "reward.onnx"
PARAMS_NPZ = "params.npz"
LR_PREFIX = "lr."
"""Prefix of the inner rate of parameter ``p`` (``lr.p``: params.npz key, adapt_step input)."""
NEW_PREFIX = "new."
"""``adapt_step.onnx`` output of the updated adapted parameter ``p``: ``new.p``."""


class BundleError(ValueError):
    """A bundle is missing, malformed or does not match its manifest (the message names where)."""


@dataclass(frozen=True, kw_only=True)
class SpaceSpec:
    """A named, bounded vector space (observation or action)."""

    dim: int
    """Number of entries."""
    names: list[str]
    """One name per entry (``obj_pos[0]`` for multi-entry fields)."""
    low: list[float]
    """Lower bound per entry (``-.inf`` where unbounded)."""
    high: list[float]
    """Upper bound per entry (``.inf`` where unbounded)."""


@dataclass(frozen=True, kw_only=True)
class NormalizerSpec:
    """Frozen observation normaliser, applied inside the graphs (recorded here for reference)."""

    enabled: bool
    """Whether observations are normalised at all."""
    mean: list[float]
    """Per-entry mean subtracted."""
    var: list[float]
    """Per-entry variance; obs are divided by ``sqrt(var + eps)``."""
    eps: float
    """Added to the variance."""
    clip: float
    """Normalised observations are clipped to ``[-clip, clip]``."""
    count: float
    """Number of observations the statistics were computed from."""


@dataclass(frozen=True, kw_only=True)
class PolicySpec:
    """The exported policy network."""

    type: str
    """Policy class (``gaussian_mlp``)."""
    hidden: list[int]
    """Hidden layer widths."""
    activation: str
    """Hidden activation (``tanh`` or ``relu``)."""
    adapt: str
    """Adapted subset: ``all``, ``head`` or ``context``."""
    context_dim: int
    """Context vector size (``adapt: context`` only; otherwise unused)."""
    action_squash: str
    """How the mean is bounded: ``tanh`` then clipped to the action bounds."""


@dataclass(frozen=True, kw_only=True)
class ParamSpec:
    """One tensor of ``params.npz``."""

    name: str
    """Key in ``params.npz`` and ONNX input name."""
    shape: list[int]
    """Tensor shape."""
    dtype: str
    """numpy dtype name (``float32``)."""
    adapted: bool
    """Whether ``adapt_step.onnx`` updates it (then it has an ``lr.`` rate, a ``new.`` output)."""


@dataclass(frozen=True, kw_only=True)
class InnerLoopSpec:
    """How the robot adapts: everything it must not re-derive from code defaults."""

    algorithm: str
    """Meta-learner that produced the parameters (``maml``, ``reptile``, ``ppo_dr``)."""
    steps: int
    """Inner steps per adaptation (``adapt_step.onnx`` applied this many times)."""
    lr_mode: str
    """``scalar`` (one rate per tensor) or ``per_parameter`` (Meta-SGD, shaped as the tensor)."""
    lr_summary: dict[str, float]
    """Mean rate per adapted tensor (the exact rates are ``lr.*`` in ``params.npz``)."""
    capacity: int
    """Fixed batch rows ``N`` of ``adapt_step.onnx``; unused rows get ``mask = 0``."""
    episodes: int
    """Episodes per adaptation batch in training (``sampler.episodes_per_task``)."""
    horizon: int
    """Episode length in control steps (the family's ``max_steps``)."""
    gamma: float
    """Discount factor of the returns."""
    gae_lambda: float
    """GAE lambda (1 = returns minus baseline)."""
    baseline: str
    """``linear`` (ridge-fitted feature baseline) or ``none``."""
    baseline_reg: float
    """Ridge regularisation of the baseline fit."""
    normalize_adv: bool
    """Whether advantages are normalised per batch."""


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """One ONNX file: its fixed input and output names."""

    file: str
    """File name inside the bundle."""
    inputs: list[str]
    """Input names, in order."""
    outputs: list[str]
    """Output names, in order."""


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything a device needs to run and adapt the policy (``manifest.yaml``)."""

    format_version: int
    """Bundle format version (:data:`FORMAT_VERSION`)."""
    family: str
    """Task family name."""
    observation_reward: bool
    """Whether the family's reward is a function of observations (then ``reward.onnx`` exists)."""
    observation: SpaceSpec
    """Observation layout."""
    action: SpaceSpec
    """Action layout."""
    normalizer: NormalizerSpec
    """Frozen observation normaliser."""
    policy: PolicySpec
    """Policy network."""
    parameters: list[ParamSpec]
    """Parameters in canonical order (ONNX input order and ``params.npz`` key order)."""
    inner_loop: InnerLoopSpec
    """Inner-loop settings."""
    graphs: dict[str, GraphSpec]
    """``policy``, ``adapt_step``, optional ``reward`` and ``policy_fp16``."""
    reward_note: str
    """Why ``reward.onnx`` is absent, or what it computes."""
    opset: int
    """ONNX opset of every graph."""
    producer: dict[str, str]
    """Producing versions: ``adapt_robot``, ``torch``, ``onnx``, ``onnxruntime``."""
    parity: dict[str, float]
    """Measured max relative error of each graph vs torch / numpy at export."""
    training: dict[str, Any]
    """``config`` (the resolved training config), ``iteration``, ``env_steps``, ``run_dir``."""
    files: dict[str, str] = field(default_factory=dict)
    """sha256 (hex) of every other file in the bundle."""

    def adapted_names(self) -> list[str]:
        """Names of the adapted parameters, in canonical order."""
        return [p.name for p in self.parameters if p.adapted]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML."""
        return dataclasses.asdict(self)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write ``manifest`` as YAML (keys in dataclass order)."""
    text = yaml.safe_dump(manifest.to_dict(), sort_keys=False, default_flow_style=None, width=100)
    Path(path).write_text(text)


_NESTED: dict[str, type[Any]] = {
    "observation": SpaceSpec,
    "action": SpaceSpec,
    "normalizer": NormalizerSpec,
    "policy": PolicySpec,
    "inner_loop": InnerLoopSpec,
}


def _build(cls: type[Any], data: Any, where: str, source: str) -> Any:
    """Build a manifest dataclass from a mapping; missing or unknown keys name file and field."""
    if not isinstance(data, Mapping):
        raise BundleError(f"{source}: {where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BundleError(f"{source}: {where}.{unknown[0]}: unknown field")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BundleError(f"{source}: {path}: missing field")
            continue
        value = data[name]
        if name in _NESTED and cls is Manifest:
            value = _build(_NESTED[name], value, path, source)
        elif name == "parameters":
            if not isinstance(value, list):
                raise BundleError(f"{source}: {path}: expected a list")
            value = [_build(ParamSpec, v, f"{path}[{i}]", source) for i, v in enumerate(value)]
        elif name == "graphs":
            if not isinstance(value, Mapping):
                raise BundleError(f"{source}: {path}: expected a mapping")
            value = {k: _build(GraphSpec, v, f"{path}.{k}", source) for k, v in value.items()}
        kwargs[name] = value
    return cls(**kwargs)


def parse_manifest(data: Any, source: str = MANIFEST) -> Manifest:
    """Validate raw YAML data into a :class:`Manifest` (version checked first)."""
    if not isinstance(data, Mapping):
        raise BundleError(f"{source}: expected a mapping at the top level")
    if "format_version" not in data:
        raise BundleError(f"{source}: format_version: missing field")
    version = data["format_version"]
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{source}: format_version: bundle has version {version!r}, this adapt-robot reads "
            f"version {FORMAT_VERSION}; re-export the bundle with a matching adapt-robot"
        )
    manifest: Manifest = _build(Manifest, data, "", source)
    return manifest


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate ``manifest.yaml`` (no file checks; see :func:`load_bundle`)."""
    p = Path(path)
    if not p.is_file():
        raise BundleError(f"{p}: no manifest")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise BundleError(f"{p}: not valid YAML: {err}") from err
    return parse_manifest(data, str(p))


def verify_files(bundle_dir: str | Path, manifest: Manifest) -> None:
    """Every file the manifest lists exists and has its sha256; every graph is listed."""
    root = Path(bundle_dir)
    for g_name, g in manifest.graphs.items():
        if g.file not in manifest.files:
            raise BundleError(f"{root / MANIFEST}: graphs.{g_name}.file: {g.file} not in files")
    if PARAMS_NPZ not in manifest.files:
        raise BundleError(f"{root / MANIFEST}: files.{PARAMS_NPZ}: missing field")
    for name, digest in manifest.files.items():
        p = root / name
        if not p.is_file():
            raise BundleError(f"{p}: listed in {MANIFEST} files but missing")
        got = sha256_file(p)
        if got != digest:
            raise BundleError(
                f"{p}: sha256 {got} does not match {MANIFEST} files.{name} ({digest}); the file "
                "was changed or corrupted after export"
            )


def load_params(bundle_dir: str | Path, manifest: Manifest) -> dict[str, np.ndarray]:
    """``params.npz`` as an ordered dict, checked against the manifest's names, shapes, dtypes.

    Parameters come first in canonical order, then the inner rates ``lr.<name>`` of the adapted
    parameters (scalar, or shaped as the parameter with Meta-SGD).
    """
    p = Path(bundle_dir) / PARAMS_NPZ
    with np.load(p, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    out: dict[str, np.ndarray] = {}
    per_param = manifest.inner_loop.lr_mode == "per_parameter"
    for spec in manifest.parameters:
        expected: list[tuple[str, list[int]]] = [(spec.name, spec.shape)]
        if spec.adapted:
            expected.append((LR_PREFIX + spec.name, spec.shape if per_param else []))
        for key, shape in expected:
            if key not in arrays:
                raise BundleError(f"{p}: {key}: missing array (manifest parameters lists it)")
            a = arrays.pop(key)
            if list(a.shape) != list(shape) or str(a.dtype) != spec.dtype:
                raise BundleError(
                    f"{p}: {key}: shape {list(a.shape)} dtype {a.dtype}, manifest says "
                    f"{list(shape)} {spec.dtype}"
                )
            out[key] = a
    if arrays:
        raise BundleError(f"{p}: {sorted(arrays)[0]}: array not in the manifest's parameters")
    ordered = {s.name: out[s.name] for s in manifest.parameters}
    ordered.update({k: v for k, v in out.items() if k.startswith(LR_PREFIX)})
    return ordered


def load_bundle(bundle_dir: str | Path) -> tuple[Manifest, dict[str, np.ndarray]]:
    """Load and verify a bundle: version, sha256 of every file, parameter shapes and dtypes."""
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle directory")
    manifest = load_manifest(root / MANIFEST)
    verify_files(root, manifest)
    return manifest, load_params(root, manifest)
