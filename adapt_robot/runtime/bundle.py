"""``Bundle``: a verified, read-only bundle in memory (manifest, parameters, graph files).

:meth:`Bundle.load` runs :func:`adapt_robot.runtime.bundle_format.read_bundle` (``bundle.lock``,
format version, sha256 of every file, parameter names, shapes and dtypes), then opens every
graph with ONNX Runtime from the bytes it verified and checks its declared inputs and outputs
against the manifest: names and order, and every static dimension (parameter shapes,
observation and action sizes, the fixed batch capacity of ``adapt_step.onnx`` and
``encoder.onnx``, the latent width of a posterior); then the facts
export recorded in each graph's metadata (family, space names, action bounds, adapted subset,
which graph: :func:`check_metadata`). Any mismatch is a :class:`BundleError` naming the file
and the field. No ``onnx`` package is needed: only onnxruntime's own view of the graphs. The
manifest's acceptance settings are the adapter's default limits (:attr:`Bundle.safety`).

A loaded bundle is immutable: it keeps the verified bytes of its graphs
(:meth:`Bundle.graph_bytes`), and :class:`~adapt_robot.runtime.adapter.OnlineAdapter` builds
its sessions from them, so a bundle re-exported in place (or damaged) under a loaded one is
never half-read: the next :meth:`Bundle.load` sees the new one whole, or refuses it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from adapt_robot.runtime.buffer import CONTEXT_FIELDS
from adapt_robot.runtime.bundle_format import (
    ENCODER_OUTPUTS,
    FORMAT_VERSION,
    LR_PREFIX,
    MANIFEST,
    NEW_PREFIX,
    PARAMS_NPZ,
    REEXPORT,
    BundleError,
    Manifest,
    normalizer_digest,
    read_bundle,
)
from adapt_robot.runtime.safety import SafetyConfig
from adapt_robot.runtime.sessions import CPU, SessionSettings, create_session

Dim = int | None
"""A graph dimension: an int where static, None where dynamic (any batch size)."""
IOSpec = list[tuple[str, list[Dim], str, str]]
"""Expected ``(name, shape, onnx type, manifest fields the shape comes from)``, in order."""

REQUIRED_GRAPHS = ("policy", "adapt_step")
"""The graphs every bundle of a gradient learner carries (a recurrent one: ``policy`` only; a
posterior one: ``policy`` and ``encoder``)."""
FLOAT = "tensor(float)"
BOOL = "tensor(bool)"
OBS = "observation.dim"
ACT = "action.dim"
CAP = "inner_loop.capacity"
STATE = "memory.state_dim"
"""The state width: the one dimension a graph must declare statically (a symbolic width would
only fail at the first act())."""


def expected_io(manifest: Manifest, key: str) -> tuple[IOSpec, IOSpec]:
    """The inputs and outputs graph ``key`` must declare, derived from the manifest alone."""
    o, a, n = manifest.observation.dim, manifest.action.dim, manifest.inner_loop.capacity
    params: IOSpec = [
        (p.name, list(p.shape), FLOAT, f"parameters[{i}].shape")
        for i, p in enumerate(manifest.parameters)
    ]
    per_param = manifest.inner_loop.lr_mode == "per_parameter"
    adapted = [(i, p) for i, p in enumerate(manifest.parameters) if p.adapted]
    if key in ("policy", "policy_fp16"):
        inputs = [("obs", [None, o], FLOAT, OBS), *params]
        outputs: IOSpec = [
            ("action_mean", [None, a], FLOAT, ACT),
            ("action_log_std", [a], FLOAT, ACT),
        ]
        mem = manifest.memory
        if mem.recurrent:
            h = mem.state_dim
            widths = {
                "prev_action": (a, ACT),
                "prev_reward": (1, "memory.feedback"),
                "episode_start": (1, "memory.feedback"),
            }
            feedback: IOSpec = [
                (name, [None, widths[name][0]], FLOAT, widths[name][1]) for name in mem.feedback
            ]
            state: IOSpec = [(mem.state_input, [None, h], FLOAT, STATE)]
            inputs = [inputs[0], *feedback, *state, *params]
            outputs.append((mem.state_output, [None, h], FLOAT, STATE))
    elif key == "adapt_step":
        rates: IOSpec = [
            (
                LR_PREFIX + p.name,
                list(p.shape) if per_param else [],
                FLOAT,
                f"inner_loop.lr_mode, parameters[{i}].shape",
            )
            for i, p in adapted
        ]
        third: IOSpec = (
            [("next_obs", [n, o], FLOAT, f"{CAP}, {OBS}, inner_loop.loss")]
            if manifest.inner_loop.loss == "identification"
            else [("adv", [n], FLOAT, CAP)]
        )
        batch: IOSpec = [
            ("obs", [n, o], FLOAT, f"{CAP}, {OBS}"),
            ("act", [n, a], FLOAT, f"{CAP}, {ACT}"),
            *third,
            ("mask", [n], FLOAT, CAP),
        ]
        inputs = [*params, *rates, *batch]
        outputs = [
            (NEW_PREFIX + p.name, list(p.shape), FLOAT, f"parameters[{i}].shape")
            for i, p in adapted
        ]
        outputs += [("loss", [], FLOAT, "scalar"), ("grad_norm", [], FLOAT, "scalar")]
    elif key == "encoder":
        z = manifest.memory.state_dim
        encoder: IOSpec = [
            (p.name, list(p.shape), FLOAT, f"parameters[{i}].shape")
            for i, p in enumerate(manifest.parameters)
            if p.name in manifest.encoder_names()
        ]
        sources: dict[str, tuple[list[Dim], str]] = {
            "obs": ([n, o], f"{CAP}, {OBS}"),
            "act": ([n, a], f"{CAP}, {ACT}"),
            "rew": ([n], CAP),
            "next_obs": ([n, o], f"{CAP}, {OBS}"),
            "mask": ([n], CAP),
        }
        context: IOSpec = [
            (name, sources[name][0], FLOAT, sources[name][1]) for name in CONTEXT_FIELDS
        ]
        inputs = [*encoder, *context]
        outputs = [(name, [z], FLOAT, STATE) for name in ENCODER_OUTPUTS]
    elif key == "reward":
        inputs = [
            ("obs", [None, o], FLOAT, OBS),
            ("action", [None, a], FLOAT, ACT),
            ("next_obs", [None, o], FLOAT, OBS),
        ]
        outputs = [("reward", [None], FLOAT, "batch"), ("success", [None], BOOL, "batch")]
    else:
        raise BundleError(
            f"{MANIFEST}: graphs.{key}: unknown graph (expected one of "
            "policy, adapt_step, encoder, reward, policy_fp16)"
        )
    return inputs, outputs


def required_graphs(manifest: Manifest) -> tuple[str, ...]:
    """The graphs ``manifest`` must list.

    No ``adapt_step`` for a recurrent or posterior policy, which adapt in their state or by
    ``encoder.onnx``.
    """
    if manifest.memory.recurrent:
        return ("policy",)
    if manifest.memory.posterior:
        return ("policy", "encoder")
    return REQUIRED_GRAPHS


def _declared_shape(shape: Sequence[object]) -> list[Dim]:
    return [d if isinstance(d, int) else None for d in shape]


def _check_side(
    where: Path, side: str, declared: Sequence[ort.NodeArg], want: IOSpec, listed: list[str]
) -> None:
    """Compare ORT's declared ``side`` (inputs/outputs) with the manifest's expectation."""
    got_names = [d.name for d in declared]
    want_names = [w[0] for w in want]
    if listed != want_names:
        raise BundleError(
            f"{where.parent / MANIFEST}: graphs.{where.stem}.{side}: lists {listed}, the "
            f"manifest's parameters and spaces require {want_names}"
        )
    if got_names != want_names:
        raise BundleError(
            f"{where}: {side}: the graph declares {got_names}, manifest graphs.{where.stem}."
            f"{side} lists {want_names}; the file does not belong to this manifest"
        )
    for arg, (name, shape, kind, source) in zip(declared, want, strict=True):
        got = _declared_shape(arg.shape)
        exact = source == STATE
        ok = len(got) == len(shape) and all(
            (g is None and not exact) or w is None or g == w
            for g, w in zip(got, shape, strict=True)
        )
        if not ok:
            shown = ["?" if s is None else s for s in shape]
            raise BundleError(
                f"{where}: {side[:-1]} {name}: shape {list(arg.shape)}, the manifest requires "
                f"{shown} (from manifest.yaml {source})"
            )
        if arg.type != kind:
            raise BundleError(f"{where}: {side[:-1]} {name}: type {arg.type}, expected {kind}")


def _metadata_expected(manifest: Manifest, key: str) -> dict[str, tuple[object, str]]:
    """``metadata_props`` key -> (value the graph must carry, manifest field it comes from)."""
    m = manifest
    tie: dict[str, tuple[object, str]] = {}
    if "export_id" in m.producer:  # bundles exported before it existed carry neither
        tie["adapt_robot.export_id"] = (m.producer["export_id"], "producer.export_id")
        tie["adapt_robot.normalizer_sha256"] = (normalizer_digest(m.normalizer), "normalizer")
    return {
        **tie,
        "adapt_robot.format_version": (str(FORMAT_VERSION), "format_version"),
        "adapt_robot.family": (m.family, "family"),
        "adapt_robot.obs_names": (list(m.observation.names), "observation.names"),
        "adapt_robot.action_names": (list(m.action.names), "action.names"),
        "adapt_robot.action_low": (list(m.action.low), "action.low"),
        "adapt_robot.action_high": (list(m.action.high), "action.high"),
        "adapt_robot.adapt": (m.policy.adapt, "policy.adapt"),
        "graph": (key, f"graphs.{key}"),
    }


def graph_metadata(manifest: Manifest, key: str) -> dict[str, object]:
    """The ``metadata_props`` graph ``key`` of this bundle carries, derived from the manifest.

    What export writes and :func:`check_metadata` checks; :meth:`OnlineAdapter.snapshot`
    writes the same facts into the frozen graphs it makes.
    """
    return {name: want for name, (want, _) in _metadata_expected(manifest, key).items()}


def _same(got: object, want: object) -> bool:
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(_same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, float):
        ok = isinstance(got, int | float) and not isinstance(got, bool)
        return ok and math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-9)  # type: ignore[arg-type]
    return got == want


def check_metadata(path: Path, manifest: Manifest, key: str, meta: Mapping[str, str]) -> None:
    """The facts export recorded in the graph (``metadata_props``) agree with the manifest.

    What ties a graph to its manifest beyond its inputs and outputs: the export id (a digest
    of the parameters, rates, capacity and training config the graphs were built from), the
    family, the spaces' names, the action bounds built into it, the adapted subset and which
    graph it is. A graph from another export (even one of the same family and spaces, its
    hashes rewritten), or a manifest whose bounds were widened after the graphs were built, is
    refused naming both values.
    """
    if "adapt_robot.export_id" in meta and "export_id" not in manifest.producer:
        raise BundleError(
            f"{path}: metadata adapt_robot.export_id: {meta['adapt_robot.export_id']!r}, but "
            f"{MANIFEST} has no producer.export_id; the graph belongs to another export (or "
            f"the manifest was changed after the graphs were built): {REEXPORT}"
        )
    for name, (want, field) in _metadata_expected(manifest, key).items():
        if name not in meta:
            raise BundleError(
                f"{path}: metadata {name}: missing (export writes it into every graph); the "
                f"graph was not written by this bundle's export: {REEXPORT}"
            )
        raw = meta[name]
        try:
            got: object = raw if isinstance(want, str) else json.loads(raw)
        except ValueError:
            got = raw
        if not _same(got, want):
            raise BundleError(
                f"{path}: metadata {name}: {got!r}, but {MANIFEST} {field} is {want!r}; the "
                f"graph belongs to another export (or the manifest was changed after the graphs "
                f"were built): {REEXPORT}"
            )


def check_graph(path: Path, manifest: Manifest, key: str, model: bytes | None = None) -> None:
    """Open graph ``path`` (or its bytes ``model``) with ONNX Runtime (CPU); check its I/O.

    The inputs and outputs must be those :func:`expected_io` derives from the manifest.
    """
    try:
        source = path if model is None else model
        session = create_session(source, [CPU], SessionSettings(optimization="disable"))
    except Exception as err:  # ORT raises several pybind11 types for unreadable models
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BundleError(
            f"{path}: ONNX Runtime cannot load the graph ({first}); the file is damaged or "
            "was written by an incompatible exporter. Re-export the bundle."
        ) from err
    inputs, outputs = expected_io(manifest, key)
    spec = manifest.graphs[key]
    _check_side(path, "inputs", session.get_inputs(), inputs, list(spec.inputs))
    _check_side(path, "outputs", session.get_outputs(), outputs, list(spec.outputs))
    check_metadata(path, manifest, key, session.get_modelmeta().custom_metadata_map)


def _frozen(arrays: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    out = {}
    for k, v in arrays.items():
        a = np.ascontiguousarray(v, dtype=np.float32)
        a.flags.writeable = False
        out[k] = a
    return types.MappingProxyType(out)


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Bundle:
    """A verified bundle: manifest, read-only meta-parameters and rates, graph paths."""

    root: Path
    """The bundle directory."""
    manifest: Manifest
    """The parsed, verified ``manifest.yaml``."""
    params: Mapping[str, np.ndarray]
    """Meta-parameters in canonical order (read-only float32 arrays)."""
    lrs: Mapping[str, np.ndarray]
    """Inner learning rate of each adapted parameter, keyed by the parameter's name."""
    blobs: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    """The verified bytes of every file the manifest lists (empty for a hand-built Bundle)."""

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Bundle({str(self.root)!r}, family={m.family!r}, obs_dim={m.observation.dim}, "
            f"act_dim={m.action.dim}, capacity={m.inner_loop.capacity})"
        )

    @classmethod
    def load(cls, path: str | Path, key: bytes | None = None) -> Bundle:
        """Load and verify a bundle directory (see the module docstring); raises BundleError.

        ``key``: the operator's signing key (:mod:`adapt_robot.runtime.signing`); when given,
        a bundle without a matching ``bundle.sig`` is refused before anything else is read.
        """
        root = Path(path)
        if key is not None:
            from adapt_robot.runtime.signing import verify

            verify(root, key)
        verified = read_bundle(root)
        manifest, arrays, blobs = verified.manifest, verified.arrays, verified.blobs
        source = root / MANIFEST
        for graph in required_graphs(manifest):
            if graph not in manifest.graphs:
                raise BundleError(f"{source}: graphs.{graph}: missing field")
        if manifest.observation_reward and "reward" not in manifest.graphs:
            raise BundleError(
                f"{source}: graphs.reward: missing field (observation_reward is true)"
            )
        for graph, spec in manifest.graphs.items():
            check_graph(root / spec.file, manifest, graph, blobs[spec.file])
        params_file = root / PARAMS_NPZ
        for array_name, value in arrays.items():
            if not np.all(np.isfinite(value)):
                raise BundleError(f"{params_file}: {array_name}: contains NaN or inf values")
            if array_name.startswith(LR_PREFIX) and not np.all(value > 0):
                raise BundleError(f"{params_file}: {array_name}: inner learning rates must be > 0")
        names = [p.name for p in manifest.parameters]
        lrs = {k[len(LR_PREFIX) :]: v for k, v in arrays.items() if k.startswith(LR_PREFIX)}
        return cls(
            root=root,
            manifest=manifest,
            params=_frozen({n: arrays[n] for n in names}),
            lrs=_frozen(lrs),
            blobs=types.MappingProxyType(dict(blobs)),
        )

    @property
    def lr_summary(self) -> dict[str, float]:
        """Mean inner rate per adapted tensor, derived from ``params.npz`` (for humans)."""
        return {name: float(np.mean(v, dtype=np.float64)) for name, v in self.lrs.items()}

    @property
    def safety(self) -> SafetyConfig:
        """The adapter's default limits: the manifest's acceptance settings, fault action zero."""
        return SafetyConfig.from_acceptance(self.manifest.acceptance)

    def graph_path(self, key: str) -> Path:
        """Path of graph ``key`` (``policy``, ``adapt_step``, ``encoder``, ``reward``, ...)."""
        if key not in self.manifest.graphs:
            raise KeyError(f"{self.root / MANIFEST}: graphs.{key}: not in this bundle")
        return self.root / self.manifest.graphs[key].file

    def graph_bytes(self, key: str) -> bytes | Path:
        """Graph ``key`` as verified at load (its bytes), or its path for a hand-built Bundle."""
        path = self.graph_path(key)
        return self.blobs.get(self.manifest.graphs[key].file, path)

    def require_adaptation_step(self, job: str) -> None:
        """Raise :class:`BundleError` for a recurrent bundle: ``job`` times an adaptation step.

        A gradient bundle's step is ``adapt_step.onnx``, a posterior bundle's (PEARL)
        ``encoder.onnx``; a recurrent one (RL²) has none.
        """
        if self.manifest.memory.recurrent:
            raise BundleError(
                f"{self.root}: {job} times and schedules the adaptation step, and this bundle "
                "adapts in its recurrent state (memory.kind: recurrent, RL2; no adapt_step.onnx). "
                "Score it with `adapt-robot scoreboard` (a bundle arm), or drive OnlineAdapter "
                "yourself: its state carries across episodes until reset_to_meta()"
            )

    @property
    def has_reward(self) -> bool:
        """Whether the bundle carries ``reward.onnx`` (rewards can be computed on the device)."""
        return "reward" in self.manifest.graphs

    @property
    def action_low(self) -> np.ndarray:
        """Lower action bounds, float32 ``[act_dim]``."""
        return np.asarray(self.manifest.action.low, dtype=np.float32)

    @property
    def action_high(self) -> np.ndarray:
        """Upper action bounds, float32 ``[act_dim]``."""
        return np.asarray(self.manifest.action.high, dtype=np.float32)
