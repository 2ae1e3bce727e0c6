"""Policies the protocol tests build: a user's mean networks and a tiny recurrent policy.

``mean_net`` and ``residual_net`` are ``policy.module`` factories
(``tests.meta.policies:mean_net``); :class:`TinyGRUPolicy` is a recurrent :class:`Policy`
(a GRU-like cell with an update gate only, the minimal gated unit of Zhou et al. 2016) whose
hidden state is carried from call to call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from adapt_robot.meta.policy import ObsNormalizer, Params, PolicyConfig, normalize_obs
from adapt_robot.meta.policy_protocol import GaussianHead, State


def mean_net(in_dim: int, act_dim: int) -> torch.nn.Module:
    """A user's mean network: Linear-Tanh-Linear."""
    return torch.nn.Sequential(
        torch.nn.Linear(in_dim, 16), torch.nn.Tanh(), torch.nn.Linear(16, act_dim)
    )


class Residual(torch.nn.Module):
    """A module with its own forward, a skip connection and a buffer."""

    def __init__(self, in_dim: int, act_dim: int) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(in_dim, 12)
        self.block = torch.nn.Sequential(torch.nn.Linear(12, 12), torch.nn.ReLU())
        self.out = torch.nn.Linear(12, act_dim)
        self.register_buffer("gain", torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``out(h + gain * block(h))`` with ``h = tanh(inp(x))``."""
        h = torch.tanh(self.inp(x))
        gain: torch.Tensor = self.gain
        out: torch.Tensor = self.out(h + gain * self.block(h))
        return out


def residual_net(in_dim: int, act_dim: int) -> torch.nn.Module:
    """A ``policy.module`` factory of :class:`Residual`."""
    return Residual(in_dim, act_dim)


def wrong_width_net(in_dim: int, act_dim: int) -> torch.nn.Module:
    """A factory whose module outputs one action too many."""
    return torch.nn.Linear(in_dim, act_dim + 1)


class TinyGRUPolicy(GaussianHead):
    """``h' = cell(normalize(obs), h)``, mean ``tanh(W h' + b)``: a recurrent Policy."""

    kind: str = "tiny_gru"
    action_squash: Literal["tanh", "clip"] = "tanh"
    numpy_forward: bool = False

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 5) -> None:
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.state_dim = hidden
        self.cfg = PolicyConfig(hidden=(hidden,))
        self.normalizer = ObsNormalizer(obs_dim)

    def init_params(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Params:
        """Uniform weights in +-1/sqrt(fan_in), zero biases."""
        h, o, a = self.state_dim, self.obs_dim, self.act_dim
        shapes = {"gru.wz": (h, o + h), "gru.wh": (h, o + h), "head.w": (a, h)}
        params: Params = {}
        for name, shape in shapes.items():
            bound = 1.0 / math.sqrt(shape[1])
            params[name] = (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound
            params[name.replace("w", "b", 1)] = torch.zeros(shape[0], dtype=dtype)
        params["log_std"] = torch.full((a,), -0.5, dtype=dtype)
        return params

    def adapted_names(self, params: Mapping[str, torch.Tensor]) -> list[str]:
        """The head and log std."""
        del params
        return ["head.w", "head.b", "log_std"]

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation normaliser."""
        return normalize_obs(obs, self.normalizer, self.cfg)

    def initial_state(self, batch: Sequence[int], dtype: torch.dtype = torch.float32) -> State:
        """Zeros ``[*batch, hidden]``."""
        return torch.zeros(*batch, self.state_dim, dtype=dtype)

    def forward(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One step (update gate ``z``, candidate ``c``): mean, log std, next hidden."""
        x = self.normalize(obs)
        h = self.initial_state(tuple(x.shape[:-1]), x.dtype) if state is None else state
        assert h is not None
        xh = torch.cat([x, h], dim=-1)
        z = torch.sigmoid(xh @ params["gru.wz"].T + params["gru.bz"])
        c = torch.tanh(xh @ params["gru.wh"].T + params["gru.bh"])
        nxt = (1 - z) * h + z * c
        mean = torch.tanh(nxt @ params["head.w"].T + params["head.b"])
        return mean, params["log_std"], nxt

    def state_dict(self) -> dict[str, object]:
        """The normaliser."""
        return {"normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict` output."""
        norm = state["normalizer"]
        assert isinstance(norm, Mapping)
        self.normalizer.load_state_dict(norm)
