"""Bring your own network: a ``torch.nn.Module`` mean network as a :class:`Policy`.

:class:`ModulePolicy` calls the module through ``torch.func.functional_call`` with explicit
parameters, so it trains, adapts and exports like the built-in MLP: ``params`` are the module's
named parameters prefixed ``net.`` (``net.0.weight``, ...), then ``log_std`` and, for
``adapt: context``, the ``context`` vector appended to the module's input. The module's own
parameters are never used or changed; its buffers (batch-norm statistics) are, read-only, and
it runs in eval mode (no dropout), so the policy is a pure function of ``(params, obs)``.

The mean is ``tanh(module(x))`` with ``x`` the normalised observation (and the context): a
bounded mean, as the MLP's, so the bundle's ``policy.action_squash`` is ``tanh``.

From a launch file, ``policy.module: "package.module:function"`` names a function
``(in_dim, act_dim) -> torch.nn.Module`` (:func:`load_factory`); every learner that trains the
default policy (MAML and its variants, Reptile, PPO-DR, the latent learner) then trains the
module, and ``eval`` and ``export`` rebuild it from the same key.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch

from adapt_robot.config import ConfigError
from adapt_robot.meta.policy import MemorylessPolicy, ObsNormalizer, PolicyConfig, policy_input
from adapt_robot.meta.policy_protocol import Params, State

PREFIX = "net."
"""Name prefix of the module's parameters in ``params``."""
FACTORY_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
"""The form of ``policy.module``: ``package.module:function``."""

Factory = Callable[[int, int], torch.nn.Module]
"""``(input width, act_dim) -> module`` mapping ``[..., in] -> [..., act_dim]``."""


def load_factory(path: str) -> Factory:
    """The function ``policy.module`` names; a :class:`ConfigError` naming the key otherwise."""
    if not FACTORY_PATH.fullmatch(path):
        raise ConfigError(f"policy.module: expected 'package.module:function', got {path!r}")
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"policy.module: cannot import {module_name!r}: {err}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"policy.module: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"policy.module: {path!r} is not callable")
    factory: Factory = target
    return factory


def input_dim(obs_dim: int, cfg: PolicyConfig) -> int:
    """Width of the module's input: the observation, plus the context for ``adapt: context``."""
    return obs_dim + (cfg.context_dim if cfg.adapt == "context" else 0)


class ModulePolicy(MemorylessPolicy):
    """Diagonal Gaussian policy whose mean is a user's ``torch.nn.Module`` (see module docs)."""

    kind: str = "module"
    action_squash: Literal["tanh", "clip"] = "tanh"
    numpy_forward: bool = False

    def __init__(
        self, module: torch.nn.Module, obs_dim: int, act_dim: int, cfg: PolicyConfig
    ) -> None:
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"policy: obs_dim and act_dim must be >= 1, got {obs_dim}, {act_dim}")
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"policy.module: expected a torch.nn.Module, got {type(module)!r}")
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.cfg = cfg
        self.normalizer = ObsNormalizer(obs_dim)
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        """A private copy: later changes to the caller's module do not reach the policy."""
        self.names = [n for n, _ in self.module.named_parameters()]
        if not self.names:
            raise ValueError(f"policy.module: {type(module).__name__} has no parameters")
        self._check_shapes()

    def _check_shapes(self) -> None:
        """Call the module once: a wrong input or output width is named here, not in training."""
        width = input_dim(self.obs_dim, self.cfg)
        try:
            with torch.no_grad():
                out = self.module(torch.zeros(2, width))
        except RuntimeError as err:
            raise ValueError(
                f"policy.module: {type(self.module).__name__} fails on input [2, {width}] "
                f"(obs_dim {self.obs_dim}"
                + (" + context_dim" if width > self.obs_dim else "")
                + f"): {err}"
            ) from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, self.act_dim):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"policy.module: {type(self.module).__name__} maps [2, {width}] to {got}; "
                f"expected one tensor [2, {self.act_dim}] (the action mean before tanh)"
            )

    def init_params(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Params:
        """Module weights re-initialised from ``generator``, ``log_std`` and the context.

        Every submodule with ``reset_parameters`` (``Linear``, ``Conv``, ...) is reset on a
        copy, under a torch seed drawn from ``generator`` (the global RNG is restored after):
        the same generator gives the same params. A submodule without it keeps its values.
        """
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        net = copy.deepcopy(self.module)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for sub in net.modules():
                reset = getattr(sub, "reset_parameters", None)
                if callable(reset):
                    reset()
        params: Params = {
            PREFIX + n: p.detach().to(dtype).clone() for n, p in net.named_parameters()
        }
        params["log_std"] = torch.full((self.act_dim,), self.cfg.init_log_std, dtype=dtype)
        if self.cfg.adapt == "context":
            params["context"] = torch.zeros(self.cfg.context_dim, dtype=dtype)
        return params

    def adapted_names(self, params: Mapping[str, torch.Tensor]) -> list[str]:
        """Names the inner loop updates, in canonical order.

        ``all``: every parameter but the context; ``head``: the parameters of the last
        submodule that owns any, and ``log_std``; ``context``: the context vector.
        """
        if self.cfg.adapt == "all":
            return [n for n in params if n != "context"]
        if self.cfg.adapt == "head":
            owners = [m for m, sub in self.module.named_modules() if _own_params(sub)]
            last = owners[-1]
            head = [n for n in self.names if n.rpartition(".")[0] == last]
            return [PREFIX + n for n in head] + ["log_std"]
        return ["context"]

    def forward(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """``tanh(module(x))`` ``[..., A]`` through ``functional_call``, log std, ``None``."""
        del state
        x = policy_input(obs, params, self.normalizer, self.cfg)
        weights = {n: params[PREFIX + n] for n in self.names}
        out = torch.func.functional_call(self.module, weights, (x,))
        return torch.tanh(out), params["log_std"], None

    def state_dict(self) -> dict[str, Any]:
        """Non-parameter state (the normaliser); the architecture comes from the factory."""
        return {"normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.normalizer.load_state_dict(state["normalizer"])


def _own_params(module: torch.nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def from_config(obs_dim: int, act_dim: int, cfg: PolicyConfig) -> ModulePolicy:
    """The :class:`ModulePolicy` of ``cfg.module`` (the factory is called once)."""
    module = load_factory(cfg.module)(input_dim(obs_dim, cfg), act_dim)
    try:
        return ModulePolicy(module, obs_dim, act_dim, cfg)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
