"""The floor of ``bench runtime``: a bundle's policy network outside ONNX Runtime.

:class:`NumpyPolicy` is ``policy.onnx``'s action mean (frozen normaliser, MLP, tanh, clamp to
the action bounds) as plain numpy over preallocated buffers, read from the bundle's parameters
and manifest; :func:`check_floor` pins it to ``policy.onnx`` before anything is timed.
:func:`torch_forward` rebuilds the same weights with ``torch.nn.functional`` (1 thread).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping

import numpy as np

from adapt_robot.errors import UnsupportedInput
from adapt_robot.runtime import Bundle, SessionSettings
from adapt_robot.runtime.bundle_format import Manifest
from adapt_robot.runtime.sessions import CPU, create_session

LAYER = re.compile(r"l\d+\.w")
"""The policy MLP's weight names (a bundle also carries other networks' ``id.*``, ``enc.*``)."""
PARITY_ATOL = 1e-5
"""Largest accepted difference between the numpy floor and ``policy.onnx``."""


class NumpyPolicy:
    """``policy.onnx``'s action mean as plain numpy over preallocated buffers (the floor)."""

    def __init__(self, manifest: Manifest, params: Mapping[str, np.ndarray], rows: int = 1) -> None:
        pol, norm = manifest.policy, manifest.normalizer
        if pol.type != "gaussian_mlp" or pol.activation not in ("tanh", "relu"):
            raise UnsupportedInput(
                f"bench runtime: the numpy floor implements gaussian_mlp with tanh or relu, the "
                f"bundle has {pol.type} with {pol.activation}"
            )
        o = manifest.observation.dim
        ctx = params["context"] if pol.adapt == "context" else np.zeros(0, np.float32)
        self.normalize, self.clip, self.tanh = (
            norm.enabled,
            float(norm.clip),
            pol.activation == "tanh",
        )
        self.mean = np.asarray(norm.mean, np.float32)
        self.inv_std = (1.0 / np.sqrt(np.asarray(norm.var) + norm.eps)).astype(np.float32)
        self.low = np.asarray(manifest.action.low, np.float32)
        self.high = np.asarray(manifest.action.high, np.float32)
        self.x = np.zeros((rows, o + ctx.size), np.float32)
        self.x[:, o:] = ctx
        self.x_obs = self.x[:, :o]
        n_layers = sum(1 for name in params if LAYER.fullmatch(name))  # not id.*, enc.*
        self.layers = [
            (
                np.ascontiguousarray(params[f"l{i}.w"].T),
                np.asarray(params[f"l{i}.b"]),
                np.zeros((rows, params[f"l{i}.w"].shape[0]), np.float32),
            )
            for i in range(n_layers)
        ]
        self._hidden, self._head = self.layers[:-1], self.layers[-1]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Action mean ``[rows, act_dim]`` for ``obs [rows, obs_dim]`` (or ``[obs_dim]``)."""
        xo = self.x_obs
        if self.normalize:
            np.subtract(obs, self.mean, out=xo)
            np.multiply(xo, self.inv_std, out=xo)
            np.maximum(xo, -self.clip, out=xo)
            np.minimum(xo, self.clip, out=xo)
        else:
            np.copyto(xo, obs)
        x = self.x
        for wt, b, h in self._hidden:
            np.matmul(x, wt, out=h)
            np.add(h, b, out=h)
            if self.tanh:
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0.0, out=h)
            x = h
        wt, b, out = self._head
        np.matmul(x, wt, out=out)
        np.add(out, b, out=out)
        np.tanh(out, out=out)
        np.maximum(out, self.low, out=out)
        return np.minimum(out, self.high, out=out)


def torch_forward(floor: NumpyPolicy) -> tuple[Callable[[np.ndarray], np.ndarray], str] | None:
    """The floor's network rebuilt in torch (1 thread), or None without torch."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    from torch.nn import functional

    torch.set_num_threads(1)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, np.float32))

    mean, inv_std, low, high = t(floor.mean), t(floor.inv_std), t(floor.low), t(floor.high)
    ctx = t(floor.x[0, floor.x_obs.shape[1] :])
    layers = [(t(wt.T), t(b)) for wt, b, _ in floor.layers]
    act = torch.tanh if floor.tanh else torch.relu

    def forward(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(obs)
            if floor.normalize:
                x = torch.clamp((x - mean) * inv_std, -floor.clip, floor.clip)
            if ctx.numel():
                x = torch.cat([x, ctx.expand(*x.shape[:-1], -1)], dim=-1)
            for w, b in layers[:-1]:
                x = act(functional.linear(x, w, b))
            x = torch.tanh(functional.linear(x, *layers[-1]))
            out: np.ndarray = torch.clamp(x, low, high).numpy()
            return out

    return forward, str(torch.__version__)


def check_floor(bundle: Bundle, obs: np.ndarray) -> float:
    """Max abs error of the numpy floor vs ``policy.onnx`` on ``obs``; raises beyond 1e-5."""
    session = create_session(bundle.graph_path("policy"), [CPU], SessionSettings())
    want = session.run(["action_mean"], {"obs": obs, **bundle.params})[0]
    got = NumpyPolicy(bundle.manifest, bundle.params, rows=len(obs))(obs)
    err = float(np.max(np.abs(got - want)))
    if not err <= PARITY_ATOL:
        raise ValueError(
            f"bench runtime: the numpy floor differs from {bundle.graph_path('policy')} by "
            f"{err:.3g} (> {PARITY_ATOL:g}); it does not compute the same network"
        )
    return err
