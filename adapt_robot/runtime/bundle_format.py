"""The bundle format: manifest dataclasses, sha256 helpers, load and verify (numpy + pyyaml only).

A bundle is a directory written by ``export/`` and read on the robot::

    bundle.lock        sha256 of manifest.yaml and of every file it lists, one digest over all
    manifest.yaml      this module's :class:`Manifest`, as YAML
    policy.onnx        obs + params -> action mean, log std (a recurrent policy: also the
                       feedback inputs and its state in, the next state out)
    adapt_step.onnx    params + rates + batch -> new adapted params, loss, grad norm (absent
                       when the policy adapts in its recurrent state, memory.kind recurrent,
                       or by a posterior, memory.kind posterior)
    encoder.onnx       PEARL (memory.kind posterior): encoder params + context -> z_mean, z_var
    reward.onnx        obs, action, next_obs -> reward, success (observation-reward families)
    params.npz         meta-parameters (training names, training order) and inner rates
    policy_fp16.onnx   optional half-precision policy (same inputs and outputs)

Every field is documented in ``docs/bundle_format.md``. The manifest is validated by the same
validator as launch files (:func:`adapt_robot.config.build`): field types, the bounds declared
on the dataclasses below and the relations their ``__post_init__`` checks. :func:`load_bundle`
checks ``bundle.lock`` first (the manifest's own sha256 and the digest over every file), then
refuses a bundle whose format version, fields, file hashes or parameter shapes do not match,
with an error naming the file, the field and what was expected. Every file is read once, with
a size limit, from inside the bundle directory (:mod:`adapt_robot.runtime.bundle_files`), and
what is checked is what is used. Export writes the manifest with :func:`write_manifest`, then
the lock with :func:`seal`; the runtime reads it with :func:`load_bundle`. No torch or onnx
import here: this runs on the robot.

The inner rates are stored once, as ``lr.*`` in ``params.npz``; summaries are derived from
them (:meth:`adapt_robot.runtime.bundle.Bundle.lr_summary`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from adapt_robot.config import ConfigError, FieldError, bounds, build
from adapt_robot.errors import BundleError
from adapt_robot.limits import MAX_INNER_STEPS
from adapt_robot.runtime.bundle_files import (
    LOCK,
    MAX_PARAM_BYTES,
    PLAIN_NAME,
    REEXPORT,
    SHA256_HEX,
    check_format_version,
    npz_arrays,
    parse_strict_yaml,
    read_lock,
    read_member,
    sha256_bytes,
    write_lock,
)
from adapt_robot.runtime.safety import AcceptanceConfig

FORMAT_VERSION = 4
"""Bundle format version written by this code; a bundle with another version is refused.

4: ``memory`` section (a recurrent policy's state and feedback inputs; RL² bundles carry no
``adapt_step.onnx``), ``policy.type: gru``, ``inner_loop.loss: none``; later in 4, without a
version change (older bundles load as they did): ``memory.kind: posterior`` with
``memory.first_episode`` and ``encoder.onnx`` (PEARL), ``inner_loop.loss: posterior``.
3: ``bundle.lock``
(sha256 of the manifest and every file, one digest over them) written last and checked
first. 2: ``acceptance`` section added, ``inner_loop.lr_summary`` dropped (derived
from ``params.npz``), every field type-checked and bounded."""
MANIFEST = "manifest.yaml"
POLICY_ONNX = "policy.onnx"
POLICY_FP16_ONNX = "policy_fp16.onnx"
POLICY_FROZEN_ONNX = "policy_frozen.onnx"
"""Observation -> actions with the meta-parameters inside (:mod:`adapt_robot.runtime.frozen`);
listed under ``files`` (hash-checked), not ``graphs``: the runtime never opens it."""
ADAPT_STEP_ONNX = "adapt_step.onnx"
ENCODER_ONNX = "encoder.onnx"
"""A posterior bundle's context encoder (PEARL): transitions -> ``z_mean``, ``z_var``."""
REWARD_ONNX = "reward.onnx"
PARAMS_NPZ = "params.npz"
LR_PREFIX = "lr."
"""Prefix of the inner rate of parameter ``p`` (``lr.p``: params.npz key, adapt_step input)."""
NEW_PREFIX = "new."
"""``adapt_step.onnx`` output of the updated adapted parameter ``p``: ``new.p``."""


def _check_space(spec: Any) -> None:
    for side in ("names", "low", "high"):
        got = len(getattr(spec, side))
        if got != spec.dim:
            raise FieldError(side, f"expected dim = {spec.dim} entries, got {got}")
    for i, (lo, hi) in enumerate(zip(spec.low, spec.high, strict=True)):
        if not lo <= hi:
            raise FieldError(f"low[{i}]", f"expected low <= high, got {lo!r} > {hi!r}")


@dataclass(frozen=True, kw_only=True)
class SpaceSpec:
    """A named, bounded vector space (the observation)."""

    dim: int = field(metadata=bounds(ge=1))
    """Number of entries."""
    names: list[str]
    """One name per entry (``obj_pos[0]`` for multi-entry fields)."""
    low: list[float] = field(metadata=bounds(allow_inf=True))
    """Lower bound per entry (``-.inf`` where unbounded)."""
    high: list[float] = field(metadata=bounds(allow_inf=True))
    """Upper bound per entry (``.inf`` where unbounded)."""

    def __post_init__(self) -> None:
        _check_space(self)


@dataclass(frozen=True, kw_only=True)
class ActionSpec:
    """The action space: named entries with finite bounds, ``low < high`` for each."""

    dim: int = field(metadata=bounds(ge=1))
    """Number of entries."""
    names: list[str]
    """One name per entry."""
    low: list[float]
    """Lower bound per entry (finite: actions are clipped to it)."""
    high: list[float]
    """Upper bound per entry (finite, above ``low``)."""

    def __post_init__(self) -> None:
        _check_space(self)
        for i, (lo, hi) in enumerate(zip(self.low, self.high, strict=True)):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise FieldError(
                    f"low[{i}]", f"expected finite bounds with low < high, got [{lo!r}, {hi!r}]"
                )


@dataclass(frozen=True, kw_only=True)
class NormalizerSpec:
    """Frozen observation normaliser, applied inside the graphs (recorded here for reference)."""

    enabled: bool
    """Whether observations are normalised at all."""
    mean: list[float]
    """Per-entry mean subtracted."""
    var: list[float]
    """Per-entry variance (>= 0); obs are divided by ``sqrt(var + eps)``."""
    eps: float = field(metadata=bounds(gt=0))
    """Added to the variance."""
    clip: float = field(metadata=bounds(gt=0))
    """Normalised observations are clipped to ``[-clip, clip]``."""
    count: float = field(metadata=bounds(ge=0))
    """Number of observations the statistics were computed from."""

    def __post_init__(self) -> None:
        if len(self.var) != len(self.mean):
            raise FieldError(
                "var", f"expected {len(self.mean)} entries (as mean), got {len(self.var)}"
            )
        for i, v in enumerate(self.var):
            if not v >= 0:
                raise FieldError(f"var[{i}]", f"expected a value >= 0, got {v!r}")


PolicyKind = Literal["gaussian_mlp", "control_law", "module", "gru"]
"""The policy classes a bundle may carry (``policy.type``)."""


@dataclass(frozen=True, kw_only=True)
class PolicySpec:
    """The exported policy network."""

    type: PolicyKind
    """Policy class: ``gaussian_mlp`` (a tanh-squashed MLP), ``control_law`` (the family's
    scripted control law told its behaviour parameters by the decoded latent ``context``;
    ``hidden`` are then the decoder's widths) or ``module`` (a user's ``torch.nn.Module`` mean
    network, tanh-squashed; ``hidden`` and ``activation`` do not describe it: the graph does)
    or ``gru`` (RL²: a GRU of width ``hidden[0]`` over the trial input, then a head MLP of
    widths ``hidden[1:]``; see ``memory``)."""
    hidden: list[int]
    """Hidden layer widths (each >= 1; empty for ``module``)."""
    activation: Literal["tanh", "relu"]
    """Hidden activation (``tanh`` or ``relu``; the launch setting, unused by ``module``)."""
    adapt: Literal["all", "head", "context"]
    """Adapted subset: ``all``, ``head`` or ``context``."""
    context_dim: int = field(metadata=bounds(ge=1))
    """Context vector size (``adapt: context`` only; otherwise unused)."""
    action_squash: Literal["tanh", "clip"]
    """How the mean is bounded: ``tanh`` then clipped to the action bounds (``gaussian_mlp``),
    or only clipped to them (``control_law``)."""

    def __post_init__(self) -> None:
        for i, width in enumerate(self.hidden):
            if width < 1:
                raise FieldError(f"hidden[{i}]", f"expected a width >= 1, got {width}")


@dataclass(frozen=True, kw_only=True)
class ParamSpec:
    """One tensor of ``params.npz``."""

    name: str
    """Key in ``params.npz`` and ONNX input name."""
    shape: list[int]
    """Tensor shape (every dimension >= 1; ``[]`` for a scalar)."""
    dtype: Literal["float32"]
    """numpy dtype name (``float32``)."""
    adapted: bool
    """Whether ``adapt_step.onnx`` updates it (then it has an ``lr.`` rate, a ``new.`` output);
    false for every parameter of a posterior bundle (its posterior sets ``memory.state_input``)."""

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith((LR_PREFIX, NEW_PREFIX)):
            raise FieldError(
                "name",
                f"expected a parameter name not starting with lr. or new., got {self.name!r}",
            )
        for i, d in enumerate(self.shape):
            if d < 1:
                raise FieldError(f"shape[{i}]", f"expected a dimension >= 1, got {d}")


@dataclass(frozen=True, kw_only=True)
class InnerLoopSpec:
    """How the robot adapts: everything it must not re-derive from code defaults.

    The inner rates themselves are not here: they are ``lr.*`` in ``params.npz`` (stored once).
    """

    algorithm: str
    """Meta-learner that produced the parameters (``maml``, ``reptile``, ``ppo_dr``)."""
    steps: int = field(metadata=bounds(ge=1, le=MAX_INNER_STEPS))
    """Inner steps per adaptation (``adapt_step.onnx`` applied this many times), 1 to 3."""
    lr_mode: Literal["scalar", "per_parameter"]
    """``scalar`` (one rate per tensor) or ``per_parameter`` (Meta-SGD, shaped as the tensor)."""
    capacity: int = field(metadata=bounds(ge=1))
    """Fixed batch rows ``N`` of ``adapt_step.onnx``; unused rows get ``mask = 0``."""
    episodes: int = field(metadata=bounds(ge=1))
    """Episodes per adaptation batch in training (``sampler.episodes_per_task``)."""
    horizon: int = field(metadata=bounds(ge=1))
    """Episode length in control steps (the family's ``max_steps``)."""
    gamma: float = field(metadata=bounds(ge=0, le=1))
    """Discount factor of the returns."""
    gae_lambda: float = field(metadata=bounds(ge=0, le=1))
    """GAE lambda (1 = returns minus baseline)."""
    baseline: Literal["linear", "none"]
    """``linear`` (ridge-fitted feature baseline) or ``none``."""
    baseline_reg: float = field(metadata=bounds(ge=0))
    """Ridge regularisation of the baseline fit."""
    normalize_adv: bool
    """Whether advantages are normalised per batch."""
    loss: Literal["policy_gradient", "identification", "none", "posterior"] = "policy_gradient"
    """Inner loss of ``adapt_step.onnx``, which says what batch the robot builds:
    ``policy_gradient`` (inputs ``obs, act, adv, mask``: advantages from the rewards, MAML and
    the other gradient learners), ``identification`` (inputs ``obs, act, next_obs, mask``:
    the robot's own transitions, no reward; the latent learner adapts ``context``), ``none``
    (no ``adapt_step.onnx``: the policy adapts in its recurrent state, ``memory.kind:
    recurrent``; the other inner-loop fields then describe no step) or ``posterior`` (no
    ``adapt_step.onnx``: ``encoder.onnx`` maps the robot's transitions with their rewards to
    a posterior over ``z``, ``memory.kind: posterior``; ``steps`` is 1, one forward pass, and
    the rate, return and baseline fields describe no step)."""


MEMORY_FEEDBACK = ("prev_action", "prev_reward", "episode_start")
"""The feedback inputs of a recurrent ``policy.onnx``, in order (after ``obs``)."""
MEMORY_STATE_INPUT = "state"
MEMORY_STATE_OUTPUT = "next_state"
POSTERIOR_STATE_INPUT = "context"
"""The ``policy.onnx`` parameter input a posterior sets (PEARL's ``z``)."""
ENCODER_PREFIX = "enc."
"""Name prefix of the context encoder's parameters (the first inputs of ``encoder.onnx``)."""
ENCODER_OUTPUTS = ("z_mean", "z_var")
"""The outputs of ``encoder.onnx``: the posterior's mean and variance ``[Z]``."""
MemoryKind = Literal["none", "recurrent", "posterior"]
"""What the policy remembers between steps (``memory.kind``)."""
FirstEpisode = Literal["meta", "prior_sample", "prior_mean"]
"""How a posterior bundle acts before its first adaptation (``memory.first_episode``)."""


@dataclass(frozen=True, kw_only=True)
class MemorySpec:
    """What the policy remembers between steps, and what the robot feeds it.

    ``kind: none`` (a memoryless policy): ``state_dim`` 0 and no names. ``kind: recurrent``
    (RL²): ``policy.onnx`` takes ``obs``, the ``feedback`` inputs and ``state`` and returns
    ``next_state`` after the action outputs; the robot feeds ``next_state`` back as ``state``
    at its next step and resets it to zeros only for a new task (``reset: new_task``), never
    at an episode end. ``kind: posterior`` (PEARL): the policy's ``context`` parameter
    (``state_input``, width ``state_dim``) is the latent ``z``; every adaptation sets it to the
    mean of the posterior ``encoder.onnx`` computes from the object's transitions, and before
    the first one (after construction and every ``reset_to_meta()``) it is what
    ``first_episode`` says; no ``state_output`` and no feedback.
    """

    kind: MemoryKind
    """``none``, ``recurrent`` or ``posterior``."""
    state_dim: int = field(metadata=bounds(ge=0))
    """Width of the state (0 for ``none``; ``Z`` for ``posterior``)."""
    state_input: str
    """Name of the state input of ``policy.onnx`` (``state``; ``context`` for ``posterior``, a
    parameter input; empty for ``none``)."""
    state_output: str
    """Name of the next-state output (``next_state``; empty for ``none`` and ``posterior``)."""
    feedback: list[str]
    """Feedback inputs, in order: ``prev_action [B, A]`` (the action sent at the previous
    step, 0 at an episode start), ``prev_reward [B, 1]`` (its reward, 0 at an episode start)
    and ``episode_start [B, 1]`` (1 on an episode's first step, else 0). Empty for ``none``
    and ``posterior``."""
    reward_scale: float = field(metadata=bounds(gt=0))
    """The graph multiplies ``prev_reward`` (``posterior``: the context's rewards) by this
    (then clips it); for information."""
    reset: Literal["new_task"]
    """When the state goes back to its start: at a new task (``reset_to_meta()``) only."""
    first_episode: FirstEpisode = "meta"
    """How the policy acts before the first adaptation on an object: ``meta`` (with the
    parameters as exported; ``none`` and ``recurrent``), ``prior_sample`` (``posterior``:
    ``z`` drawn from the prior ``N(0, I)`` by the adapter's seeded generator, PEARL's posterior
    sampling) or ``prior_mean`` (``posterior``: ``z = 0``). Bundles written before it existed
    leave it out: ``meta``."""

    def __post_init__(self) -> None:
        if self.kind == "posterior":
            self._check_posterior()
            return
        if self.first_episode != "meta":
            raise FieldError(
                "first_episode",
                f"{self.first_episode} picks a posterior's first z; memory.kind {self.kind} "
                "acts with its parameters as exported: meta",
            )
        if self.kind == "none":
            if self.state_dim or self.state_input or self.state_output or self.feedback:
                raise FieldError(
                    "kind", "a memoryless policy (none) has state_dim 0 and no state names"
                )
            return
        if self.state_dim < 1:
            raise FieldError("state_dim", "expected >= 1 for a recurrent policy")
        want = (MEMORY_STATE_INPUT, MEMORY_STATE_OUTPUT, list(MEMORY_FEEDBACK))
        got = (self.state_input, self.state_output, list(self.feedback))
        if got != want:
            raise FieldError(
                "kind",
                f"a recurrent policy has state_input {want[0]!r}, state_output {want[1]!r} and "
                f"feedback {want[2]}, got {got[0]!r}, {got[1]!r}, {got[2]}",
            )

    def _check_posterior(self) -> None:
        if self.state_dim < 1:
            raise FieldError("state_dim", "expected the latent width Z >= 1 for a posterior")
        got = (self.state_input, self.state_output, list(self.feedback))
        want: tuple[str, str, list[str]] = (POSTERIOR_STATE_INPUT, "", [])
        if got != want:
            raise FieldError(
                "kind",
                f"a posterior sets the policy's {POSTERIOR_STATE_INPUT!r} parameter: state_input "
                f"{want[0]!r}, state_output '' and no feedback, got {got[0]!r}, {got[1]!r}, "
                f"{got[2]}",
            )
        if self.first_episode == "meta":
            raise FieldError(
                "first_episode",
                "a posterior says how its first episode picks z: prior_sample or prior_mean",
            )

    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a state (and adapts in it)."""
        return self.kind == "recurrent"

    @property
    def posterior(self) -> bool:
        """Whether the policy adapts by a posterior over ``z`` (``encoder.onnx``, PEARL)."""
        return self.kind == "posterior"


def _check_file_name(field_path: str, name: str) -> None:
    """A file named in the manifest stays inside the bundle directory (no path parts)."""
    if not PLAIN_NAME.match(name) or name in (".", ".."):
        raise FieldError(
            field_path, f"expected a file name inside the bundle directory, got {name!r}"
        )


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """One ONNX file: its fixed input and output names."""

    file: str
    """File name inside the bundle (no directory part)."""
    inputs: list[str]
    """Input names, in order."""
    outputs: list[str]
    """Output names, in order."""

    def __post_init__(self) -> None:
        _check_file_name("file", self.file)


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
    action: ActionSpec
    """Action layout."""
    normalizer: NormalizerSpec
    """Frozen observation normaliser."""
    policy: PolicySpec
    """Policy network."""
    parameters: list[ParamSpec]
    """Parameters in canonical order (ONNX input order and ``params.npz`` key order)."""
    inner_loop: InnerLoopSpec
    """Inner-loop settings."""
    memory: MemorySpec
    """The policy's recurrent state and feedback inputs, or the latent its posterior sets
    (``kind: none`` when memoryless)."""
    acceptance: AcceptanceConfig
    """The acceptance rule's settings: the adapter's default ``SafetyConfig`` (and what
    ``adapt-robot eval`` judged with)."""
    graphs: dict[str, GraphSpec]
    """``policy``, ``adapt_step`` (absent for a recurrent or posterior policy), ``encoder``
    (a posterior policy only), optional ``reward`` and ``policy_fp16``."""
    reward_note: str
    """Why ``reward.onnx`` is absent, or what it computes."""
    opset: int = field(metadata=bounds(ge=1))
    """ONNX opset of every graph."""
    producer: dict[str, str]
    """Producing versions: ``adapt_robot``, ``torch``, ``onnx``, ``onnxruntime``."""
    parity: dict[str, float]
    """Measured max relative error of each graph vs torch / numpy at export."""
    training: dict[str, Any]
    """``config`` (the resolved training config), ``iteration``, ``env_steps``, ``run_dir``."""
    files: dict[str, str] = field(default_factory=dict)
    """sha256 (hex) of every other file in the bundle."""

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise FieldError(
                "format_version", f"expected {FORMAT_VERSION}, got {self.format_version!r}"
            )
        dim = self.observation.dim
        for side in ("mean", "var"):
            got = len(getattr(self.normalizer, side))
            if got != dim:
                raise FieldError(
                    f"normalizer.{side}", f"expected observation.dim = {dim} entries, got {got}"
                )
        seen: set[str] = set()
        for i, p in enumerate(self.parameters):
            if p.name in seen:
                raise FieldError(f"parameters[{i}].name", f"{p.name!r} is listed twice")
            seen.add(p.name)
        adapted = [p.name for p in self.parameters if p.adapted]
        if self.memory.recurrent != (self.policy.type == "gru"):
            raise FieldError(
                "memory.kind",
                f"policy.type {self.policy.type} carries "
                f"{'a' if self.policy.type == 'gru' else 'no'} recurrent state, memory.kind is "
                f"{self.memory.kind}",
            )
        if self.memory.recurrent:
            if "adapt_step" in self.graphs or adapted or self.inner_loop.loss != "none":
                raise FieldError(
                    "memory.kind",
                    "a recurrent policy adapts in its state: no graphs.adapt_step, no adapted "
                    "parameter and inner_loop.loss none",
                )
        elif self.memory.posterior:
            self._check_posterior(adapted)
        elif self.inner_loop.loss in ("none", "posterior"):
            kind = "recurrent" if self.inner_loop.loss == "none" else "posterior"
            raise FieldError(
                "inner_loop.loss",
                f"{self.inner_loop.loss} is for memory.kind {kind}, got {self.memory.kind}",
            )
        if "encoder" in self.graphs and not self.memory.posterior:
            raise FieldError(
                "graphs.encoder",
                f"only a posterior bundle (memory.kind posterior) carries {ENCODER_ONNX}, "
                f"memory.kind is {self.memory.kind}",
            )
        for name, digest in self.files.items():
            _check_file_name(f"files.{name}", name)
            if not SHA256_HEX.match(digest):
                raise FieldError(
                    f"files.{name}", f"expected a hex sha256 (64 of 0-9a-f), got {digest!r}"
                )

    def _check_posterior(self, adapted: list[str]) -> None:
        """A posterior bundle (PEARL): the encoder sets ``context``, nothing else adapts."""
        if "adapt_step" in self.graphs or adapted or self.inner_loop.loss != "posterior":
            raise FieldError(
                "memory.kind",
                f"a posterior bundle adapts by {ENCODER_ONNX}: no graphs.adapt_step, no adapted "
                f"parameter and inner_loop.loss posterior (got adapted {adapted}, loss "
                f"{self.inner_loop.loss})",
            )
        if self.inner_loop.steps != 1:
            raise FieldError(
                "inner_loop.steps",
                f"a posterior is one encoder pass: expected 1, got {self.inner_loop.steps}",
            )
        z = self.memory.state_dim
        if self.policy.adapt != "context" or self.policy.context_dim != z:
            raise FieldError(
                "memory.state_dim",
                f"a posterior sets the policy's context: expected policy.adapt context with "
                f"policy.context_dim = {z}, got {self.policy.adapt} with {self.policy.context_dim}",
            )
        shapes = {p.name: p.shape for p in self.parameters}
        name = self.memory.state_input
        if shapes.get(name) != [z]:
            raise FieldError(
                "parameters",
                f"a posterior sets parameter {name!r} of shape [{z}] (memory.state_dim); "
                f"got {shapes.get(name, 'no such parameter')}",
            )
        if not self.encoder_names():
            raise FieldError(
                "parameters",
                f"a posterior bundle carries its encoder's {ENCODER_PREFIX}* parameters; none "
                "is listed",
            )

    def adapted_names(self) -> list[str]:
        """Names of the adapted parameters, in canonical order."""
        return [p.name for p in self.parameters if p.adapted]

    def encoder_names(self) -> list[str]:
        """Names of the context encoder's ``enc.*`` parameters, in canonical order."""
        return [p.name for p in self.parameters if p.name.startswith(ENCODER_PREFIX)]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML."""
        return dataclasses.asdict(self)


def normalizer_digest(norm: NormalizerSpec) -> str:
    """sha256 of the normaliser the graphs apply (enabled, mean, var, eps, clip).

    Export records it in every graph's ``adapt_robot.normalizer_sha256``; the load recomputes
    it from the manifest.
    """
    body = [norm.enabled, list(norm.mean), list(norm.var), norm.eps, norm.clip]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


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


def parse_manifest(data: Any, source: str = MANIFEST) -> Manifest:
    """Validate raw YAML data into a :class:`Manifest` (version checked first).

    The fields go through :func:`adapt_robot.config.build`, the launch files' validator; any
    fault is a :class:`BundleError` naming ``source``, the field and what was expected.
    """
    if not isinstance(data, Mapping):
        raise BundleError(f"{source}: expected a mapping at the top level; {REEXPORT}")
    if "format_version" not in data:
        raise BundleError(f"{source}: format_version: missing field; {REEXPORT}")
    check_format_version(data["format_version"], FORMAT_VERSION, source)
    try:
        _require_every_field(Manifest, data, "")
        return build(Manifest, data)
    except ConfigError as err:
        raise BundleError(f"{source}: {err}; {REEXPORT}") from None


ADDED_IN_VERSION = frozenset({"memory.first_episode"})
"""Fields added to format 4 after bundles of it were written: a manifest may leave them out,
and then their default applies, which is what those bundles did (export writes them all)."""


def _require_every_field(cls: type, data: Any, where: str) -> None:
    """Every field of ``cls`` (and of its dataclass fields, recursively) is present in ``data``.

    The dataclasses give some fields defaults for code that builds them; a manifest must still
    state them all (export writes every one), so nothing on the device comes from a default;
    only the fields of :data:`ADDED_IN_VERSION` may be absent (older bundles of this version).
    Wrong types are left to :func:`adapt_robot.config.build`.
    """
    if not isinstance(data, Mapping):
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in data and path in ADDED_IN_VERSION:
            continue
        if f.name not in data:
            raise ConfigError(f"{path}: required key is missing")
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            _require_every_field(typing.cast(type, tp), data[f.name], path)
        elif typing.get_origin(tp) is list and isinstance(data[f.name], list):
            (item,) = typing.get_args(tp)
            if dataclasses.is_dataclass(item):
                for i, v in enumerate(data[f.name]):
                    _require_every_field(typing.cast(type, item), v, f"{path}[{i}]")
        elif typing.get_origin(tp) is dict and isinstance(data[f.name], Mapping):
            value_tp = typing.get_args(tp)[1]
            if dataclasses.is_dataclass(value_tp):
                for k, v in data[f.name].items():
                    _require_every_field(typing.cast(type, value_tp), v, f"{path}.{k}")


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate ``manifest.yaml`` alone (no lock or file checks; see :func:`load_bundle`).

    Read as :func:`load_bundle` reads it: size-limited, confined to its directory, strict YAML.
    """
    p = Path(path)
    if not p.is_file():
        raise BundleError(f"{p}: no manifest")
    root = p.parent.resolve()
    return _parse_manifest_bytes(read_member(root, p.name, "the bundle"), str(p))


def _parse_manifest_bytes(data: bytes, source: str) -> Manifest:
    return parse_manifest(parse_strict_yaml(data, source), source)


def verify_files(root: Path, manifest: Manifest, locked: Mapping[str, str]) -> dict[str, bytes]:
    """The bytes of every file the manifest lists, each matching its sha256 (``root`` resolved).

    ``locked`` are ``bundle.lock``'s entries, which must list the same files and digests.
    """
    source = root / MANIFEST
    for g_name, g in manifest.graphs.items():
        if g.file not in manifest.files:
            raise BundleError(f"{source}: graphs.{g_name}.file: {g.file} not in files")
    if PARAMS_NPZ not in manifest.files:
        raise BundleError(f"{source}: files.{PARAMS_NPZ}: missing field")
    others = {k: v for k, v in locked.items() if k != MANIFEST}
    if others != manifest.files:
        differ = sorted(set(others) ^ set(manifest.files))
        name = (differ or sorted(k for k in others if others[k] != manifest.files[k]))[0]
        raise BundleError(
            f"{source}: files.{name}: {manifest.files.get(name)!r}, {LOCK} says "
            f"{others.get(name)!r}; the manifest and the lock were not written together: "
            f"{REEXPORT}"
        )
    blobs: dict[str, bytes] = {}
    for name, digest in manifest.files.items():
        data = read_member(root, name, f"{MANIFEST} files")
        got = sha256_bytes(data)
        if got != digest:
            raise BundleError(
                f"{root / name}: sha256 {got} does not match {MANIFEST} files.{name} ({digest}); "
                f"the file was changed or corrupted after export: {REEXPORT}"
            )
        blobs[name] = data
    return blobs


def load_params(bundle_dir: str | Path, manifest: Manifest, blob: bytes) -> dict[str, np.ndarray]:
    """``params.npz`` (its verified bytes ``blob``) as an ordered dict, checked first.

    Names, shapes and dtypes are checked against the manifest before any array is
    decompressed. Parameters come first in canonical order, then the inner rates ``lr.<name>``
    of the adapted parameters (scalar, or shaped as the parameter with Meta-SGD).
    """
    p = Path(bundle_dir) / PARAMS_NPZ
    per_param = manifest.inner_loop.lr_mode == "per_parameter"
    expected: dict[str, tuple[list[int], str]] = {}
    for spec in manifest.parameters:
        expected[spec.name] = (spec.shape, spec.dtype)
    for spec in manifest.parameters:
        if spec.adapted:
            expected[LR_PREFIX + spec.name] = (spec.shape if per_param else [], spec.dtype)
    total = sum(math.prod(shape) * 4 for shape, _ in expected.values())
    if total > MAX_PARAM_BYTES:
        raise BundleError(
            f"{Path(bundle_dir) / MANIFEST}: parameters: {total} bytes of float32 arrays, above "
            f"the {MAX_PARAM_BYTES}-byte limit (docs/bundle_format.md); {REEXPORT}"
        )
    return npz_arrays(blob, str(p), expected)


@dataclass(frozen=True, kw_only=True, eq=False)
class VerifiedFiles:
    """A bundle as :func:`read_bundle` verified it: what it checked is what is used."""

    root: Path
    """The bundle directory, resolved."""
    manifest: Manifest
    """The validated manifest."""
    arrays: dict[str, np.ndarray]
    """``params.npz``: parameters in canonical order, then the ``lr.*`` rates."""
    blobs: dict[str, bytes]
    """The bytes of every file the manifest lists, as hashed."""


def read_bundle(bundle_dir: str | Path) -> VerifiedFiles:
    """Load and verify a bundle: lock, version, fields, sha256 of every file, parameter shapes.

    In order: ``bundle.lock`` (its digest, then the manifest's sha256), the manifest's fields,
    every listed file (confined, size-limited, hashed), ``params.npz``'s directory and headers,
    then its arrays. Raises :class:`BundleError` naming the file and field.
    """
    given = Path(bundle_dir)
    if not given.is_dir():
        raise BundleError(f"{given}: not a bundle directory")
    root = given.resolve()
    locked = read_lock(root, FORMAT_VERSION, MANIFEST)
    raw = read_member(root, MANIFEST, LOCK)
    got = sha256_bytes(raw)
    if got != locked[MANIFEST]:
        raise BundleError(
            f"{given / MANIFEST}: sha256 {got} does not match {LOCK} ({locked[MANIFEST]}): the "
            f"manifest was edited after export; {REEXPORT}"
        )
    manifest = _parse_manifest_bytes(raw, str(given / MANIFEST))
    blobs = verify_files(root, manifest, locked)
    arrays = load_params(given, manifest, blobs[PARAMS_NPZ])
    return VerifiedFiles(root=root, manifest=manifest, arrays=arrays, blobs=blobs)


def load_bundle(bundle_dir: str | Path) -> tuple[Manifest, dict[str, np.ndarray]]:
    """:func:`read_bundle`'s manifest and ``params.npz`` arrays."""
    verified = read_bundle(bundle_dir)
    return verified.manifest, verified.arrays


def seal(bundle_dir: str | Path) -> None:
    """Write ``bundle.lock`` for the manifest and every file it lists (export's last write)."""
    root = Path(bundle_dir).resolve()
    manifest = load_manifest(root / MANIFEST)
    write_lock(root, [MANIFEST, *manifest.files], FORMAT_VERSION)
