"""The one ``Policy`` contract that learners, evaluation, samplers and export rely on.

A policy is a pure function of explicit parameters: ``params`` is an ordered mapping name ->
tensor (the names, in order, are the keys of ``params.npz`` and the inputs of the exported
graphs), and :meth:`Policy.forward` maps ``(params, obs, state)`` to a diagonal Gaussian over
actions and the next state. Nothing is stored in a module between calls; training
differentiates through ``params`` (``torch.func``), the robot feeds them to ONNX Runtime.

**State.** ``state`` is what the policy remembers between steps of one task. A memoryless
policy (``state_dim == 0``: :class:`~adapt_robot.meta.policy.GaussianMLPPolicy`, the control
law, :class:`~adapt_robot.meta.module_policy.ModulePolicy`) takes and returns ``None``. The
three kinds of adaptive policy map onto the contract as follows:

- *latent-conditioned*: ``z`` is an adapted parameter (``context``), so ``state`` stays
  ``None`` and the inner step moves ``z``;
- *recurrent* (RL2): ``state`` is the hidden vector ``[..., state_dim]``. ``forward`` returns
  the hidden state after seeing ``obs``; the caller carries it from step to step and across the
  episodes of one task, and starts a new task from :meth:`Policy.initial_state`. A policy whose
  memory needs the previous action and reward reads them as part of its input (its ``obs_dim``
  is then the width of that input), as garage's ``RL2Env`` builds it;
- *encoder* (PEARL): ``state`` is the context posterior (or the latent drawn from it). An
  encoder maps a context of transitions to that state; ``forward`` conditions on it and returns
  it unchanged.

Why ``next_state`` comes out of ``forward`` rather than from a separate update method: one
function per step is what a recurrent ONNX graph is (``obs, state -> action, next_state``), so
the export wrapper traces one call, and a memoryless policy pays only a ``None``.

**Sequences.** :meth:`Policy.log_prob` scores ``obs [..., T, O]``: a recurrent policy reads
axis ``-2`` as time, starting from ``state`` (the initial state when ``None``), and
:func:`unroll` does that for any policy; a memoryless policy scores every row on its own, so
any leading shape works.

**Export.** ``kind`` and ``action_squash`` go into the manifest (``policy.type``,
``policy.action_squash``). ``numpy_forward`` tells the exporter how to trace ``forward``: with
``torch.onnx.export`` (torch code) or through TorchDynamo's NumPy support (a numpy control law,
as ``reward.onnx`` is traced). :func:`missing_members` is the check the exporter makes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from adapt_robot.meta.policy import ObsNormalizer, PolicyConfig

Params = dict[str, torch.Tensor]
"""Ordered mapping parameter name -> tensor (insertion order is the canonical order)."""

State = torch.Tensor | None
"""A policy's memory between steps: ``None`` for a memoryless policy, else ``[..., state_dim]``."""


@runtime_checkable
class Policy(Protocol):
    """A diagonal Gaussian policy over explicit parameters (see the module docstring)."""

    obs_dim: int
    """Width of the policy's input."""
    act_dim: int
    """Number of actions."""
    state_dim: int
    """Width of the recurrent state; 0 for a memoryless policy (state ``None``)."""
    cfg: PolicyConfig
    """Its settings (normaliser, adapted subset, context size; written into the manifest)."""
    normalizer: ObsNormalizer
    """Observation statistics: updated in training, frozen at export, applied in ``forward``."""

    @property
    def kind(self) -> str:
        """``policy.type`` in the bundle manifest."""
        ...

    @property
    def action_squash(self) -> Literal["tanh", "clip"]:
        """How the mean is bounded: ``tanh`` inside ``forward``, or only clipped at export."""
        ...

    @property
    def numpy_forward(self) -> bool:
        """Whether ``forward`` calls numpy (export traces it through TorchDynamo's NumPy mode)."""
        ...

    def init_params(self, generator: torch.Generator, dtype: torch.dtype = ...) -> Params:
        """Fresh parameters drawn from ``generator`` only (no global RNG)."""
        ...

    def adapted_names(self, params: Mapping[str, torch.Tensor]) -> list[str]:
        """Names the inner loop updates, in canonical order."""
        ...

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs`` through the (current or frozen) normaliser."""
        ...

    def initial_state(self, batch: Sequence[int], dtype: torch.dtype = ...) -> State:
        """The state at the start of a task, ``[*batch, state_dim]`` (``None`` if memoryless)."""
        ...

    def forward(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Action mean ``[..., A]``, log std ``[A]`` and the next state.

        The log std is a parameter, not a function of ``obs``. ``state`` ``None`` means
        :meth:`initial_state` (a memoryless policy ignores it).
        """
        ...

    def log_prob(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        state: State = None,
    ) -> torch.Tensor:
        """Log-density of ``act [..., A]`` summed over action dims, ``[...]``."""
        ...

    def kl(
        self,
        old: Mapping[str, torch.Tensor],
        new: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        state: State = None,
    ) -> torch.Tensor:
        """``KL(pi_old || pi_new)`` per observation ``[...]`` (trust-region learners)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Non-parameter state (the normaliser) as plain data."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        ...


def protocol_members() -> list[str]:
    """Every attribute and method :class:`Policy` declares, in declaration order."""
    attrs = list(Policy.__annotations__)
    methods = [k for k, v in vars(Policy).items() if not k.startswith("_") and _declared(v)]
    return attrs + [m for m in methods if m not in attrs]


def _declared(value: object) -> bool:
    return callable(value) or isinstance(value, property)


def missing_members(policy: object) -> list[str]:
    """The :class:`Policy` members ``policy`` lacks (empty when it satisfies the protocol).

    Attributes must exist; methods must also be callable.
    """
    missing = []
    for name in protocol_members():
        if not hasattr(policy, name):
            missing.append(name)
        elif callable(getattr(Policy, name, None)) and not callable(getattr(policy, name)):
            missing.append(name)
    return missing


def diag_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, act: torch.Tensor
) -> torch.Tensor:
    """Log-density of ``act`` under ``N(mean, exp(log_std)^2)``, summed over the last axis."""
    z = (act - mean) * torch.exp(-log_std)
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def diag_gaussian_kl(
    m0: torch.Tensor, s0: torch.Tensor, m1: torch.Tensor, s1: torch.Tensor
) -> torch.Tensor:
    """``KL(N(m0, e^{2 s0}) || N(m1, e^{2 s1}))`` summed over the last axis."""
    var0, var1 = torch.exp(2 * s0), torch.exp(2 * s1)
    return (s1 - s0 + (var0 + (m0 - m1) ** 2) / (2 * var1) - 0.5).sum(-1)


def unroll(
    policy: Policy, params: Mapping[str, torch.Tensor], obs: torch.Tensor, state: State = None
) -> tuple[torch.Tensor, torch.Tensor, State]:
    """:meth:`Policy.forward` along the time axis ``-2`` of ``obs [..., T, O]``, carrying state.

    Returns means ``[..., T, A]``, the log std ``[A]`` and the state after the last step. A
    memoryless policy is called once on the whole array. ``state`` ``None`` starts from
    :meth:`Policy.initial_state`.
    """
    if policy.state_dim == 0:
        return policy.forward(params, obs, None)
    if obs.dim() < 2 or obs.shape[-2] == 0:
        raise ValueError(f"unroll: expected obs [..., T >= 1, O], got {tuple(obs.shape)}")
    if state is None:
        state = policy.initial_state(tuple(obs.shape[:-2]), obs.dtype)
    mean, log_std, state = policy.forward(params, obs[..., 0, :], state)
    means = [mean]
    for t in range(1, obs.shape[-2]):
        mean, log_std, state = policy.forward(params, obs[..., t, :], state)
        means.append(mean)
    return torch.stack(means, dim=-2), log_std, state


class GaussianHead:
    """``log_prob`` and ``kl`` of a :class:`Policy` from its ``forward`` (via :func:`unroll`).

    Mixed into every policy here, so the Gaussian maths is written once.
    """

    def log_prob(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        act: torch.Tensor,
        state: State = None,
    ) -> torch.Tensor:
        """Log-density of ``act [..., A]`` (summed over action dims), ``[...]``."""
        mean, log_std, _ = unroll(self._policy(), params, obs, state)
        return diag_gaussian_log_prob(mean, log_std, act)

    def kl(
        self,
        old: Mapping[str, torch.Tensor],
        new: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        state: State = None,
    ) -> torch.Tensor:
        """``KL(pi_old || pi_new)`` per observation ``[...]`` (both from the same ``state``)."""
        m0, s0, _ = unroll(self._policy(), old, obs, state)
        m1, s1, _ = unroll(self._policy(), new, obs, state)
        return diag_gaussian_kl(m0, s0, m1, s1)

    def _policy(self) -> Policy:
        policy: Policy = self  # type: ignore[assignment]
        return policy
