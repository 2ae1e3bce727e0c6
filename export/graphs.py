"""Trace the training code into ONNX graphs: policy, one inner step, and the family's reward.

Nothing here re-implements the maths:

- ``policy.onnx`` exports the policy's :meth:`~adapt_robot.meta.policy_protocol.Policy.forward`
  (normaliser frozen as constants), then clips the mean to the action bounds. A recurrent policy
  (``state_dim > 0``, RL²) has the feedback inputs ``prev_action``, ``prev_reward``,
  ``episode_start``, a ``state`` input and a ``next_state`` output; a numpy control law
  (``numpy_forward``) is traced through TorchDynamo's NumPy support, as the reward is.
- ``adapt_step.onnx`` is ``torch.func.grad_and_value`` of the learner's inner loss
  (:class:`adapt_robot.meta.inner.InnerLoss`: the policy gradient, or the identification loss
  of the latent learner) followed by :func:`adapt_robot.meta.inner.sgd_update`, traced with
  ``make_fx`` and exported with ``torch.onnx.export(dynamo=True)``; its batch inputs are the
  loss's ``fields`` (the parity check pins it to :func:`adapt_robot.meta.inner.inner_step`).
- ``encoder.onnx`` (PEARL) exports the context encoder's own
  :meth:`~adapt_robot.meta.context_encoder.ContextEncoder.posterior` for a fixed context of
  ``capacity`` rows: ``enc.*`` parameters and ``obs, act, rew, next_obs, mask`` in, the
  posterior's ``z_mean`` and ``z_var`` out.
- ``reward.onnx`` traces the family's own numpy ``reward`` and ``success`` through TorchDynamo's
  NumPy support (``torch.export`` strict mode turns ``np.*`` calls into torch ops), in float64
  as numpy computes them; the reward is cast to float32 at the output.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from adapt_robot.meta.context_encoder import ContextEncoder
from adapt_robot.meta.inner import InnerBatch, InnerLoss, PolicyGradientLoss, sgd_update
from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.recurrent_policy import trial_input
from adapt_robot.runtime.buffer import CONTEXT_FIELDS
from adapt_robot.runtime.bundle_format import (
    ENCODER_OUTPUTS,
    LR_PREFIX,
    MEMORY_FEEDBACK,
    MEMORY_STATE_INPUT,
    MEMORY_STATE_OUTPUT,
    NEW_PREFIX,
)
from adapt_robot.sim.core.family import TaskFamily

OPSET = 18
"""ONNX opset of every exported graph."""
POLICY_INPUT_OBS = "obs"
POLICY_OUTPUTS = ("action_mean", "action_log_std")
POLICY_STATE_INPUT = MEMORY_STATE_INPUT
POLICY_STATE_OUTPUT = MEMORY_STATE_OUTPUT
BATCH_INPUTS = ("obs", "act", "adv", "mask")
STEP_SCALARS = ("loss", "grad_norm")
REWARD_INPUTS = ("obs", "action", "next_obs")
REWARD_OUTPUTS = ("reward", "success")


class _Fn(torch.nn.Module):
    """A module around a function of positional tensors (what ``torch.onnx.export`` takes)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> Any:
        """Call the wrapped function."""
        return self.fn(*args)


def policy_fn(
    policy: Policy,
    names: Sequence[str],
    low: np.ndarray,
    high: np.ndarray,
    dtype: torch.dtype = torch.float32,
) -> Callable[..., tuple[torch.Tensor, ...]]:
    """``(obs, *params) -> (bounded action mean, log_std)``; computed in ``dtype``, I/O float32.

    For a recurrent policy (which reads the trial input,
    :func:`adapt_robot.meta.recurrent_policy.trial_input`): ``(obs, prev_action, prev_reward,
    episode_start, state, *params) -> (mean, log_std, next_state)``.
    """
    lo = torch.as_tensor(low, dtype=dtype)
    hi = torch.as_tensor(high, dtype=dtype)
    bounds = [(float(a), float(b)) for a, b in zip(low, high, strict=True)]
    numpy_law = policy.numpy_forward

    def clamp(mean: torch.Tensor) -> torch.Tensor:
        if not numpy_law:
            return torch.clamp(mean, lo, hi)
        # Python-float bounds: a numpy-traced graph must not capture tensor constants.
        cols = [mean[..., i].clamp(a, b) for i, (a, b) in enumerate(bounds)]
        return torch.stack(cols, dim=-1)

    def fn(obs: torch.Tensor, *flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = {n: t.to(dtype) for n, t in zip(names, flat, strict=True)}
        mean, log_std, _ = policy.forward(params, obs.to(dtype))
        return clamp(mean).to(torch.float32), log_std.to(torch.float32)

    def recurrent(
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        episode_start: torch.Tensor,
        state: torch.Tensor,
        *flat: torch.Tensor,
    ) -> tuple[Any, ...]:
        params = {n: t.to(dtype) for n, t in zip(names, flat, strict=True)}
        x = trial_input(obs, prev_action, prev_reward, episode_start).to(dtype)
        mean, log_std, nxt = policy.forward(params, x, state.to(dtype))
        if nxt is None:
            raise TypeError(f"{type(policy).__name__}.forward: state_dim > 0 but no next state")
        out = (clamp(mean), log_std, nxt)
        return tuple(t.to(torch.float32) for t in out)

    return recurrent if policy.state_dim > 0 else fn


def policy_io_names(policy: Policy, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Input and output names of ``policy.onnx`` (state ones for a recurrent policy)."""
    if policy.state_dim > 0:
        inputs = [POLICY_INPUT_OBS, *MEMORY_FEEDBACK, POLICY_STATE_INPUT, *names]
        return inputs, [*POLICY_OUTPUTS, POLICY_STATE_OUTPUT]
    return [POLICY_INPUT_OBS, *names], list(POLICY_OUTPUTS)


def adapt_step_fn(
    policy: Policy,
    names: Sequence[str],
    adapted: Sequence[str],
    loss_fn: InnerLoss | None = None,
) -> Callable[..., tuple[torch.Tensor, ...]]:
    """``(*params, *lrs, *batch fields) -> (*new adapted params, loss, grad_norm)``.

    The batch fields are ``loss_fn.fields`` (``obs, act, adv, mask`` for the policy gradient).
    """
    loss_fn = PolicyGradientLoss(policy) if loss_fn is None else loss_fn
    fields = loss_fn.fields
    n_p, n_a = len(names), len(adapted)

    def fn(*flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        params = dict(zip(names, flat[:n_p], strict=True))
        lrs = dict(zip(adapted, flat[n_p : n_p + n_a], strict=True))
        tensors = dict(zip(fields, flat[n_p + n_a :], strict=True))
        obs = tensors["obs"]
        batch = InnerBatch(
            obs=obs,
            act=tensors["act"],
            adv=tensors.get("adv", torch.zeros(obs.shape[:-1], dtype=obs.dtype)),
            mask=tensors["mask"],
            next_obs=tensors.get("next_obs"),
        )
        fixed = {k: v for k, v in params.items() if k not in lrs}

        def loss_of(adapted_params: dict[str, torch.Tensor]) -> torch.Tensor:
            merged = {k: adapted_params.get(k, fixed.get(k)) for k in names}
            return loss_fn(merged, batch)  # type: ignore[arg-type]

        grads, loss = torch.func.grad_and_value(loss_of)({k: params[k] for k in adapted})
        new, norm = sgd_update({k: params[k] for k in adapted}, lrs, grads)
        return (*(new[k] for k in adapted), loss, norm.to(loss.dtype))

    return fn


def step_io_names(
    names: Sequence[str], adapted: Sequence[str], fields: Sequence[str] = BATCH_INPUTS
) -> tuple[list[str], list[str]]:
    """Input and output names of ``adapt_step.onnx`` (batch inputs: the loss's fields)."""
    inputs = [*names, *(LR_PREFIX + n for n in adapted), *fields]
    outputs = [*(NEW_PREFIX + n for n in adapted), *STEP_SCALARS]
    return inputs, outputs


def _quiet_export(
    module: torch.nn.Module,
    args: tuple[Any, ...],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Any = None,
) -> None:
    """``torch.onnx.export(dynamo=True)`` to ``path`` (optimised, single file), quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
            external_data=False,
        )
    if program is None:
        raise RuntimeError(f"{path.name}: torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def export_policy(
    path: Path,
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    low: np.ndarray,
    high: np.ndarray,
    *,
    fp16: bool = False,
) -> tuple[list[str], list[str]]:
    """Write ``policy.onnx`` (or the fp16 variant); returns its input and output names."""
    names = list(params)
    dtype = torch.float16 if fp16 else torch.float32
    fn = policy_fn(policy, names, low, high, dtype)
    rows = policy.obs_dim + policy.act_dim + policy.state_dim + 3  # a distinct size
    obs = torch.zeros(rows, policy.obs_dim)
    batch = torch.export.Dim("batch", min=1)
    state: tuple[torch.Tensor, ...] = ()
    state_shape: tuple[Any, ...] = ()
    if policy.state_dim > 0:  # the trial input's parts, then the state
        a = policy.act_dim
        obs = torch.zeros(rows, policy.obs_dim - a - 2)
        state = (
            torch.zeros(rows, a),
            torch.zeros(rows, 1),
            torch.ones(rows, 1),
            torch.zeros(rows, policy.state_dim),
        )
        state_shape = tuple({0: batch} for _ in state)
    args = (obs, *state, *(v.detach().float() for v in params.values()))
    shapes = (({0: batch}, *state_shape, *([None] * len(names))),)
    inputs, outputs = policy_io_names(policy, names)
    if policy.numpy_forward:  # a numpy control law: trace it as the reward
        obs = torch.as_tensor(
            np.random.default_rng(0).standard_normal((obs.shape[0], policy.obs_dim)),
            dtype=torch.float32,
        )
        args = (obs, *args[1:])
        module: torch.nn.Module = _numpy_traced(_Fn(fn), args, shapes)
    else:
        module = _Fn(fn)
    _quiet_export(module, args, path, inputs, outputs, shapes)
    return inputs, outputs


def _numpy_traced(fn: torch.nn.Module, example: tuple[Any, ...], shapes: Any) -> torch.nn.Module:
    """``fn`` (which calls numpy) traced to plain aten ops through TorchDynamo's NumPy support.

    ``torch.export`` strict mode turns ``np.*`` calls into torch ops; the result is re-traced
    by ``make_fx``, because the ONNX translator mishandles the lifted numpy scalar constants of
    a strict export, but not the same graph traced by ``make_fx``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(fn, example, strict=True, dynamic_shapes=shapes)
        traced = make_fx(program.module(), tracing_mode="symbolic")(*example)

    class _Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.traced = traced

        def forward(self, *args: torch.Tensor) -> Any:
            return self.traced(*args)

    return _Traced()


def export_adapt_step(
    path: Path,
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    capacity: int,
    loss_fn: InnerLoss | None = None,
) -> tuple[list[str], list[str]]:
    """Write ``adapt_step.onnx`` for a fixed batch capacity; returns input and output names."""
    names, adapted = list(params), list(lrs)
    loss_fn = PolicyGradientLoss(policy) if loss_fn is None else loss_fn
    fn = adapt_step_fn(policy, names, adapted, loss_fn)
    shapes = {
        "obs": (capacity, policy.obs_dim),
        "next_obs": (capacity, policy.obs_dim),
        "act": (capacity, policy.act_dim),
        "adv": (capacity,),
    }
    batch = tuple(
        torch.ones(capacity) if f == "mask" else torch.zeros(shapes[f]) for f in loss_fn.fields
    )
    example = (
        *(v.detach().float() for v in params.values()),
        *(v.detach().float() for v in lrs.values()),
        *batch,
    )
    traced = make_fx(fn)(*example)
    inputs, outputs = step_io_names(names, adapted, loss_fn.fields)
    _quiet_export(_Fn(traced), example, path, inputs, outputs)
    return inputs, outputs


def encoder_fn(
    encoder: ContextEncoder, names: Sequence[str]
) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``(*enc params, obs, act, rew, next_obs, mask) -> (z_mean, z_var)``: the posterior."""
    n = len(names)

    def fn(*flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = dict(zip(names, flat[:n], strict=True))
        obs, act, rew, next_obs, mask = flat[n:]
        return encoder.posterior(params, obs, act, rew, next_obs, mask)

    return fn


def export_encoder(
    path: Path,
    encoder: ContextEncoder,
    params: Mapping[str, torch.Tensor],
    capacity: int,
) -> tuple[list[str], list[str]]:
    """Write ``encoder.onnx`` for a context of ``capacity`` rows; returns its I/O names.

    ``params`` are the encoder's own (``enc.*``), in canonical order.
    """
    names = list(params)
    o, a = encoder.policy.obs_dim, encoder.policy.act_dim
    shapes = {
        "obs": (capacity, o),
        "act": (capacity, a),
        "rew": (capacity,),
        "next_obs": (capacity, o),
        "mask": (capacity,),
    }
    context = tuple(
        torch.ones(capacity) if f == "mask" else torch.zeros(shapes[f]) for f in CONTEXT_FIELDS
    )
    example = (*(v.detach().float() for v in params.values()), *context)
    inputs, outputs = [*names, *CONTEXT_FIELDS], list(ENCODER_OUTPUTS)
    _quiet_export(_Fn(encoder_fn(encoder, names)), example, path, inputs, outputs)
    return inputs, outputs


def reward_fn(family: TaskFamily[Any]) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``(obs, action, next_obs) -> (reward float32, success bool)`` via the numpy functions."""
    ctx = np.zeros(0)

    def fn(
        obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        o, a, n = obs.double().numpy(), action.double().numpy(), next_obs.double().numpy()
        r = np.asarray(family.reward(o, a, n, ctx))
        s = np.asarray(family.success(n, ctx))
        return torch.from_numpy(r).float(), torch.from_numpy(s)

    return fn


def export_reward(path: Path, family: TaskFamily[Any]) -> tuple[list[str], list[str]]:
    """Write ``reward.onnx`` from the family's numpy reward and success (dynamic batch)."""
    o_dim, a_dim = family.obs_spec.dim, family.action_spec.dim
    # A batch size equal to no other dimension: symbolic tracing gives equal sizes one symbol.
    rows = max(o_dim, a_dim) + 3
    gen = torch.Generator().manual_seed(0)
    example = tuple(torch.randn(rows, d, generator=gen) for d in (o_dim, a_dim, o_dim))
    batch = torch.export.Dim("batch", min=1)
    shapes = ({0: batch}, {0: batch}, {0: batch})
    traced = _numpy_traced(_Fn(reward_fn(family)), example, (shapes,))
    _quiet_export(traced, example, path, REWARD_INPUTS, REWARD_OUTPUTS, (shapes,))
    return list(REWARD_INPUTS), list(REWARD_OUTPUTS)


def finish_graph(path: Path, metadata: Mapping[str, Any]) -> None:
    """Add ``metadata_props`` (JSON-encoded values) and run the full ``onnx.checker``."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    model.producer_name = "adapt-robot"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
