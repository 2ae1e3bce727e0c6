"""A Gaussian MLP policy as a pure function of ``(params, obs)``: the built-in ``Policy``.

``params`` is an ordered ``dict`` name -> tensor: ``l0.w [H0, in]``, ``l0.b [H0]``, ...,
``lN.w [act_dim, H]``, ``lN.b``, ``log_std [act_dim]`` and, for ``adapt: context``, a learned
input vector ``context [context_dim]`` (CAVIA, Zintgraf et al. 2019) concatenated to the
normalised observation. The same names in the same order are the ONNX inputs and the keys of
``params.npz`` in a bundle. Training differentiates through explicit params; no module surgery.
It is memoryless: its state is ``None`` (the contract: :mod:`adapt_robot.meta.policy_protocol`).

The action mean is **squashed** with ``tanh`` into (-1, 1); the Gaussian sample itself is not
squashed, its log-probability is that of the unsquashed sample, and the environment clips the
sample to [-1, 1] (``adapt_robot.sim.core.spec.check_action``).

Observation normalisation (running mean/variance) is policy state, not a parameter: it is
updated from rollouts during training, frozen at export, and applied inside :meth:`forward`.
A dimension that never varied in the normaliser's data (variance at most :data:`DEAD_VAR`, e.g.
the one-hot of an object shape that only the test split has) is normalised to 0: the network
never saw it move, so a value it never saw must not reach it as a large input (see
:func:`normalize_obs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.limits import DEAD_VAR
from adapt_robot.meta.policy_protocol import GaussianHead, State
from adapt_robot.meta.policy_protocol import Params as Params

AdaptMode = Literal["all", "head", "context"]


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """Gaussian MLP policy settings."""

    hidden: tuple[int, ...] = setting((64, 64), doc="Hidden layer widths.")
    activation: Literal["tanh", "relu"] = setting("tanh", doc="Hidden activation.")
    init_log_std: float = setting(-0.5, doc="Initial log standard deviation of every action.")
    adapt: Literal["all", "head", "context"] = setting(
        "all",
        doc="Parameters the inner loop adapts: all, head (last layer + log_std) or context "
        "(a learned input vector, CAVIA).",
    )
    context_dim: int = setting(4, doc="Size of the context vector (adapt: context only).", ge=1)
    normalize_obs: bool = setting(True, doc="Normalise observations with running statistics.")
    obs_clip: float = setting(10.0, doc="Clip normalised observations to +-this.", gt=0)
    reward_scale: float = setting(
        0.1,
        doc="Recurrent policies (rl2): the previous reward enters the network multiplied by "
        "this (then clipped to +-obs_clip); unused by memoryless policies.",
        gt=0,
    )
    module: str = setting(
        "",
        doc="Your own mean network instead of the MLP: 'package.module:function', a function "
        "(in_dim, act_dim) -> torch.nn.Module (see adapt_robot.meta.module_policy); hidden and "
        "activation are then unused. Empty: the built-in MLP.",
    )


class ObsNormalizer:
    """Running mean and variance of observations (Chan et al. parallel update), float64."""

    def __init__(self, dim: int) -> None:
        self.mean = np.zeros(dim)
        self.var = np.ones(dim)
        self.count = 0.0
        self.frozen = False

    def update(self, obs: np.ndarray) -> None:
        """Fold a batch ``[N, dim]`` of live observations into the statistics (no-op if frozen)."""
        if self.frozen or obs.shape[0] == 0:
            return
        x = np.asarray(obs, dtype=np.float64).reshape(-1, self.mean.shape[0])
        n = float(x.shape[0])
        b_mean, b_var = x.mean(axis=0), x.var(axis=0)
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    def live(self) -> np.ndarray:
        """``1.0`` for dimensions that varied in the data, ``0.0`` for dead ones ``[dim]``."""
        return (self.var > DEAD_VAR).astype(np.float64)

    def state_dict(self) -> dict[str, Any]:
        """Plain arrays for checkpoints and bundles."""
        return {
            "mean": self.mean.copy(),
            "var": self.var.copy(),
            "count": self.count,
            "frozen": self.frozen,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.shape != self.mean.shape:
            raise ValueError(f"normalizer.mean: expected shape {self.mean.shape}, got {mean.shape}")
        self.mean = mean.copy()
        self.var = np.asarray(state["var"], dtype=np.float64).copy()
        self.count = float(state["count"])
        self.frozen = bool(state["frozen"])


def normalize_obs(obs: torch.Tensor, normalizer: ObsNormalizer, cfg: PolicyConfig) -> torch.Tensor:
    """``obs`` through ``normalizer``, clipped to ``+-cfg.obs_clip`` (unchanged when disabled).

    Dead dimensions (:meth:`ObsNormalizer.live`) give 0. On the data the statistics came from
    this changes nothing (a constant dimension already normalises to 0 there); out of it, an
    unseen value of a dimension the network never saw vary (a new shape's one-hot) would
    otherwise enter as ``+-obs_clip`` through weights that training never moved.
    """
    if not cfg.normalize_obs:
        return obs
    mean = torch.as_tensor(normalizer.mean, dtype=obs.dtype)
    std = torch.as_tensor(np.sqrt(normalizer.var + 1e-8), dtype=obs.dtype)
    live = torch.as_tensor(normalizer.live(), dtype=obs.dtype)
    return torch.clamp((obs - mean) / std, -cfg.obs_clip, cfg.obs_clip) * live


def policy_input(
    obs: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    normalizer: ObsNormalizer,
    cfg: PolicyConfig,
) -> torch.Tensor:
    """The input of a mean network, ``[..., O]`` (``[..., O + context_dim]`` with a context).

    ``obs`` normalised, with the ``context`` parameter appended for ``adapt: context`` (CAVIA).
    """
    x = normalize_obs(obs, normalizer, cfg)
    if cfg.adapt == "context":
        ctx = params["context"].expand(*x.shape[:-1], cfg.context_dim)
        x = torch.cat([x, ctx], dim=-1)
    return x


class MemorylessPolicy(GaussianHead):
    """What the memoryless policies share: state ``None``, the normaliser, the Gaussian maths.

    Subclasses set ``cfg`` and ``normalizer`` and define ``forward``.
    """

    state_dim: int = 0
    cfg: PolicyConfig
    normalizer: ObsNormalizer

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Apply the (current or frozen) observation normaliser."""
        return normalize_obs(obs, self.normalizer, self.cfg)

    def initial_state(self, batch: Sequence[int], dtype: torch.dtype = torch.float32) -> State:
        """None: what the policy knows of the task is in its params."""
        del batch, dtype
        return None


class GaussianMLPPolicy(MemorylessPolicy):
    """Diagonal Gaussian policy; the network is :meth:`forward` over explicit params."""

    kind: str = "gaussian_mlp"
    action_squash: Literal["tanh", "clip"] = "tanh"
    numpy_forward: bool = False

    def __init__(self, obs_dim: int, act_dim: int, cfg: PolicyConfig) -> None:
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"policy: obs_dim and act_dim must be >= 1, got {obs_dim}, {act_dim}")
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.cfg = cfg
        self.normalizer = ObsNormalizer(obs_dim)
        in_dim = obs_dim + (cfg.context_dim if cfg.adapt == "context" else 0)
        self.sizes = (in_dim, *cfg.hidden, act_dim)
        self.n_layers = len(self.sizes) - 1

    def init_params(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Params:
        """Fresh parameters: scaled-uniform (torch Linear default) weights, small output layer."""
        params: Params = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            bound = 1.0 / math.sqrt(fan_in)
            scale = 0.01 if i == self.n_layers - 1 else 1.0
            w = (torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound
            params[f"l{i}.w"] = w * scale
            params[f"l{i}.b"] = torch.zeros(fan_out, dtype=dtype)
        params["log_std"] = torch.full((self.act_dim,), self.cfg.init_log_std, dtype=dtype)
        if self.cfg.adapt == "context":
            params["context"] = torch.zeros(self.cfg.context_dim, dtype=dtype)
        return params

    def adapted_names(self, params: Mapping[str, torch.Tensor]) -> list[str]:
        """Names the inner loop updates, in canonical order."""
        last = self.n_layers - 1
        if self.cfg.adapt == "all":
            return [n for n in params if n != "context"]
        if self.cfg.adapt == "head":
            return [f"l{last}.w", f"l{last}.b", "log_std"]
        return ["context"]

    def forward(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Action mean (tanh-squashed) ``[..., A]``, log std ``[A]`` and ``None`` (no memory)."""
        del state
        x = policy_input(obs, params, self.normalizer, self.cfg)
        act = torch.tanh if self.cfg.activation == "tanh" else torch.relu
        for i in range(self.n_layers):
            x = x @ params[f"l{i}.w"].transpose(-1, -2) + params[f"l{i}.b"]
            if i < self.n_layers - 1:
                x = act(x)
        return torch.tanh(x), params["log_std"], None

    def state_dict(self) -> dict[str, Any]:
        """Non-parameter state (the normaliser)."""
        return {"normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.normalizer.load_state_dict(state["normalizer"])


def detach(params: Mapping[str, torch.Tensor]) -> Params:
    """A copy of ``params`` cut from the graph (same order)."""
    return {k: v.detach() for k, v in params.items()}


def unstack(params: Mapping[str, torch.Tensor]) -> list[Params]:
    """Split params with a leading task axis into one mapping per task."""
    m = next(iter(params.values())).shape[0]
    return [{k: v[i] for k, v in params.items()} for i in range(m)]


def stack(params_list: list[Params]) -> Params:
    """Stack per-task params along a new leading task axis (for batched acting)."""
    if not params_list:
        raise ValueError("stack: expected at least one params mapping")
    return {k: torch.stack([p[k] for p in params_list]) for k in params_list[0]}
