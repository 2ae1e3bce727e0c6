"""``export_bundle``: a training run directory -> a verified, self-contained bundle directory.

Everything is written into a temporary directory beside the target, checked (``onnx.checker``,
parity against the training code, the manifest read back with the runtime's own reader), and
only then renamed into place. A failure at any point leaves nothing behind; an existing bundle
at the target is replaced only by a complete one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np
import onnx
import onnxruntime
import torch

from adapt_robot.config import ConfigError
from adapt_robot.errors import AdaptRobotError
from adapt_robot.export import graphs, parity
from adapt_robot.meta.algorithms.base import Learner
from adapt_robot.meta.context_encoder import ContextEncoder
from adapt_robot.meta.inner import positive_rates
from adapt_robot.meta.policy import detach
from adapt_robot.meta.policy_protocol import Policy, missing_members
from adapt_robot.meta.train_config import TrainConfig
from adapt_robot.runtime import bundle_format as bf
from adapt_robot.runtime.safety import AcceptanceConfig

logger = logging.getLogger(__name__)

NORMALIZER_EPS = 1e-8
"""Must match :func:`adapt_robot.meta.policy.normalize_obs`."""
SQUASHES = ("tanh", "clip")
"""``policy.action_squash`` values a bundle may carry."""
POSTERIOR_FIRST_EPISODE: bf.FirstEpisode = "prior_sample"
"""How a posterior bundle (PEARL) acts before its first adaptation: ``z`` from the prior, as
PEARL's posterior sampling explores (``memory.first_episode``)."""


class ExportError(AdaptRobotError, ValueError):
    """The run cannot be exported (bad checkpoint, unsupported policy, bad output directory)."""


@dataclass(frozen=True)
class _Run:
    cfg: TrainConfig
    learner: Learner
    ckpt: dict[str, Any]


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "unknown"


def _load(run_dir: Path) -> _Run:
    """Load a run, turning every way a checkpoint can be bad into an :class:`ExportError`."""
    from adapt_robot.meta.trainer import CHECKPOINT, load_run

    ckpt_path = run_dir / CHECKPOINT
    if not ckpt_path.is_file():
        raise ExportError(f"{ckpt_path}: no checkpoint (is {run_dir} a training run directory?)")
    try:
        cfg, learner, ckpt = load_run(run_dir)
    except ConfigError as err:  # the checkpoint was read; its config does not build here
        raise ExportError(
            f"{ckpt_path}: the run's training config cannot be rebuilt here: {err}. The "
            "checkpoint itself was read; a plug-in module must be importable (PYTHONPATH)."
        ) from err
    except Exception as err:  # torch.load raises many types for a damaged file
        raise ExportError(
            f"{ckpt_path}: cannot read the checkpoint ({type(err).__name__}: {err}); it is "
            "missing, truncated or from another version. Re-train or pick another run."
        ) from err
    from adapt_robot.sim.registry import get_family

    family = get_family(cfg.family)
    trial = family.obs_spec.dim + family.action_spec.dim + 2
    check_exportable(learner.policy, str(ckpt_path), trial)
    return _Run(cfg, learner, ckpt)


def check_exportable(policy: object, where: str, trial_width: int | None = None) -> None:
    """Raise :class:`ExportError` unless ``policy`` is a :class:`Policy` a bundle can carry.

    The message names the members a foreign policy lacks, or why a complete one cannot be
    exported (a recurrent policy that does not read the ``trial_width``-wide trial input the
    robot's adapter feeds: the family's obs + action + 2).
    """
    name = type(policy).__name__
    missing = missing_members(policy)
    if missing:
        raise ExportError(
            f"{where}: policy type {name} is not a Policy (adapt_robot.meta.policy_protocol): "
            f"it lacks {', '.join(missing)}. Implement them, or wrap a torch.nn.Module in "
            "adapt_robot.meta.module_policy.ModulePolicy."
        )
    p = cast(Policy, policy)
    if p.kind not in get_args(bf.PolicyKind):
        raise ExportError(
            f"{where}: policy type {name}: kind {p.kind!r} is not a policy.type a bundle may "
            f"carry ({list(get_args(bf.PolicyKind))}); add it to PolicyKind in "
            "adapt_robot/runtime/bundle_format.py (and docs/bundle_format.md)"
        )
    if p.action_squash not in SQUASHES:
        raise ExportError(
            f"{where}: policy type {name}: action_squash must be one of {list(SQUASHES)}, got "
            f"{p.action_squash!r}"
        )
    if p.state_dim != 0 and trial_width is not None and p.obs_dim != trial_width:
        raise ExportError(
            f"{where}: policy type {name} carries a recurrent state (state_dim {p.state_dim}) "
            f"but reads {p.obs_dim} inputs; a recurrent bundle's policy reads the trial input "
            f"(obs, prev_action, prev_reward, episode_start: {trial_width} wide, "
            "adapt_robot.meta.recurrent_policy.trial_input), which the robot's adapter feeds it"
        )


def posterior_encoder(learner: Learner, where: str) -> ContextEncoder | None:
    """The learner's context encoder when it adapts by a posterior (PEARL), else None.

    A learner adapts by a posterior when its ``encoder`` attribute is a
    :class:`~adapt_robot.meta.context_encoder.ContextEncoder` (other learners have none, or a
    training-only encoder of another type). Its bundle then carries ``encoder.onnx`` instead of
    ``adapt_step.onnx``; raises :class:`ExportError` when the policy cannot take the posterior's
    ``z`` or the ``enc.*`` parameters are missing.
    """
    encoder = getattr(learner, "encoder", None)
    if not isinstance(encoder, ContextEncoder):
        return None
    policy = learner.policy
    name = bf.POSTERIOR_STATE_INPUT
    shape = tuple(learner.params[name].shape) if name in learner.params else None
    if policy.state_dim or policy.cfg.adapt != "context" or shape != (encoder.z_dim,):
        raise ExportError(
            f"{where}: the learner's context encoder gives a latent of {encoder.z_dim} entries, "
            f"which the policy must take as its {name!r} parameter (policy.adapt: context, "
            f"context_dim {encoder.z_dim}, memoryless); got policy.adapt {policy.cfg.adapt!r}, "
            f"{name} shape {shape}, state_dim {policy.state_dim}"
        )
    if not any(k.startswith(bf.ENCODER_PREFIX) for k in learner.params):
        raise ExportError(
            f"{where}: the learner has a context encoder but no {bf.ENCODER_PREFIX}* parameters "
            "in learner.params; they must travel in params.npz for the robot's encoder.onnx"
        )
    return encoder


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory; choose another output path")
    if out.is_dir() and any(out.iterdir()) and not (out / bf.MANIFEST).is_file():
        raise ExportError(
            f"{out}: exists and is not a bundle (no {bf.MANIFEST}); refusing to overwrite it. "
            "Choose a new or empty directory, or an existing bundle to replace."
        )


def adaptation_episodes(cfg: TrainConfig) -> int:
    """Episodes ``K`` the learner adapted on in training (the manifest's ``inner_loop.episodes``).

    The identifying learners (``latent_id``, ``law_id``) adapt on up to ``explore_episodes``
    of their own exploration episodes, RL² over its ``trial_episodes``; the others on
    ``sampler.episodes_per_task``.
    """
    explore = getattr(cfg.algo, "explore_episodes", getattr(cfg.algo, "trial_episodes", None))
    return int(explore) if explore is not None else cfg.sampler.episodes_per_task


def default_capacity(cfg: TrainConfig, horizon: int) -> int:
    """The training inner batch: ``K`` (:func:`adaptation_episodes`) x episode length."""
    return adaptation_episodes(cfg) * horizon


def capacity_warning(k: int, horizon: int, capacity: int) -> str | None:
    """Why ``K`` episodes of ``horizon`` steps do not fit ``capacity`` rows (None: they do)."""
    if k * horizon <= capacity:
        return None
    fit = capacity // horizon
    return (
        f"capacity {capacity} rows holds {fit} of the K={k} exploration episodes of {horizon} "
        f"steps; the robot's adaptations will leave {k - fit} out. Export with --capacity "
        f"{k * horizon} (or more) to adapt on all of them"
    )


def export_bundle(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    capacity: int | None = None,
    fp16: bool = False,
    seed: int = 0,
    acceptance: AcceptanceConfig | None = None,
    sign_key: bytes | None = None,
) -> Path:
    """Export ``run_dir``'s checkpoint to a bundle at ``out_dir``; returns ``out_dir``.

    ``capacity`` is the fixed row count ``N`` of ``adapt_step.onnx`` (default: the training
    inner batch, episodes per task x horizon). ``fp16`` adds ``policy_fp16.onnx``. ``seed``
    seeds the random parity inputs. ``acceptance`` is the acceptance rule written into the
    manifest, the robot's default (None: :class:`AcceptanceConfig` defaults, the settings
    ``adapt-robot eval`` judges with by default). ``sign_key`` adds ``bundle.sig``, the HMAC of
    ``bundle.lock`` under that key (:mod:`adapt_robot.runtime.signing`). Raises
    :class:`ExportError` for bad input and :class:`adapt_robot.export.parity.ParityError` when a
    graph disagrees with the training code; in both cases nothing is left at ``out_dir`` (an
    existing bundle there is kept).
    """
    run_path, out = Path(run_dir), Path(out_dir)
    _check_target(out)
    run = _load(run_path)
    from adapt_robot.sim.registry import get_family

    family = get_family(run.cfg.family)
    n = capacity if capacity is not None else default_capacity(run.cfg, family.max_steps)
    if n < 1:
        raise ExportError(f"capacity: expected an integer >= 1, got {n}")
    warning = capacity_warning(adaptation_episodes(run.cfg), int(family.max_steps), n)
    if warning is not None:
        logger.warning("export: %s", warning)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; a bundle is an ordinary directory
    try:
        _write(tmp, run, run_path, n, fp16, seed, acceptance or AcceptanceConfig())
        bf.seal(tmp)  # bundle.lock, the last file written: manifest and file hashes
        if sign_key is not None:  # bundle.sig: the operator's HMAC of bundle.lock
            from adapt_robot.runtime.signing import sign

            sign(tmp, sign_key)
        bf.load_bundle(tmp)  # read back with the runtime's reader: lock, hashes, shapes, version
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing bundle there is moved aside, then removed."""
    old: Path | None = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(
    tmp: Path,
    run: _Run,
    run_path: Path,
    capacity: int,
    fp16: bool,
    seed: int,
    acceptance: AcceptanceConfig,
) -> None:
    from adapt_robot.sim.registry import get_family

    cfg, learner = run.cfg, run.learner
    policy = learner.policy
    family = get_family(cfg.family)
    encoder = posterior_encoder(learner, str(run_path))
    params = detach(learner.params)
    lrs = (
        {}  # a posterior sets z by inference: no inner rate, no adapted parameter
        if encoder is not None
        else {k: v.detach().float() for k, v in positive_rates(detach(learner.raw_lrs)).items()}
    )
    adapted = list(lrs)
    low, high = family.action_spec.low, family.action_spec.high
    export_id = _export_id(params, lrs, capacity, cfg)
    meta = {
        **_metadata(cfg, family, policy),
        "adapt_robot.export_id": export_id,
        "adapt_robot.normalizer_sha256": bf.normalizer_digest(normalizer_spec(policy)),
    }
    rng = np.random.default_rng(seed)
    graph_specs: dict[str, bf.GraphSpec] = {}
    figures: dict[str, float] = {}
    limits: dict[str, float] = {}

    def add(key: str, file: str, io: tuple[list[str], list[str]]) -> Path:
        graph_specs[key] = bf.GraphSpec(file=file, inputs=io[0], outputs=io[1])
        graphs.finish_graph(tmp / file, {**meta, "graph": key})
        return tmp / file

    io = graphs.export_policy(tmp / bf.POLICY_ONNX, policy, params, low, high)
    path = add("policy", bf.POLICY_ONNX, io)
    figures["policy"] = parity.check_policy(path, policy, params, low, high, rng)
    limits["policy"] = parity.RTOL_FP32

    if encoder is not None:  # PEARL: a posterior over z, one forward pass, no inner step
        enc = {k: v for k, v in params.items() if k.startswith(bf.ENCODER_PREFIX)}
        io = graphs.export_encoder(tmp / bf.ENCODER_ONNX, encoder, enc, capacity)
        path = add("encoder", bf.ENCODER_ONNX, io)
        figures["encoder"], figures["encoder_prior"] = parity.check_encoder(
            path, encoder, enc, capacity, rng
        )
        limits["encoder"] = limits["encoder_prior"] = parity.RTOL_FP32
    elif policy.state_dim == 0:  # a recurrent policy adapts in its state: no inner step
        loss_fn = learner.inner_loss_fn()
        io = graphs.export_adapt_step(
            tmp / bf.ADAPT_STEP_ONNX, policy, params, lrs, capacity, loss_fn
        )
        path = add("adapt_step", bf.ADAPT_STEP_ONNX, io)
        figures["adapt_step"] = parity.check_adapt_step(
            path, policy, params, lrs, capacity, rng, loss_fn=loss_fn
        )
        figures["adapt_step_x3"] = parity.check_adapt_step(
            path, policy, params, lrs, capacity, rng, steps=parity.CHAINED_STEPS, loss_fn=loss_fn
        )
        limits["adapt_step"] = limits["adapt_step_x3"] = parity.RTOL_FP32

    if family.observation_reward:
        try:
            io = graphs.export_reward(tmp / bf.REWARD_ONNX, family)
        except Exception as err:  # tracing failures come in many types
            raise ExportError(
                f"family {family.name!r}: its reward/success could not be traced to ONNX "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Keep "
                "them pure numpy functions of (obs, action, next_obs) without Python branches "
                "on array values."
            ) from err
        path = add("reward", bf.REWARD_ONNX, io)
        inputs = parity.reward_inputs(family, 512, rng)
        reward_err, mismatches = parity.check_reward(path, family, *inputs)
        figures["reward"], figures["success_mismatches"] = reward_err, float(mismatches)
        limits["reward"], limits["success_mismatches"] = parity.RTOL_FP32, 0.0
        note = "reward.onnx: the family's numpy reward and success, traced (float64 inside)"
    else:
        note = (
            f"no reward.onnx: family {family.name!r} has observation_reward false (its reward "
            "uses hidden task data); the robot must supply rewards"
        )
    if fp16:
        io = graphs.export_policy(tmp / bf.POLICY_FP16_ONNX, policy, params, low, high, fp16=True)
        path = add("policy_fp16", bf.POLICY_FP16_ONNX, io)
        figures["policy_fp16"] = parity.check_policy(path, policy, params, low, high, rng)
        limits["policy_fp16"] = parity.RTOL_FP16
    if policy.state_dim == 0:  # a recurrent policy has no one-input form
        figures["policy_frozen"] = _write_frozen(tmp, policy, params, low, high, meta, family, rng)
        limits["policy_frozen"] = parity.RTOL_FP32
    parity.require(figures, limits)

    arrays: dict[str, np.ndarray] = {k: v.numpy().astype(np.float32) for k, v in params.items()}
    arrays.update({bf.LR_PREFIX + k: v.numpy().astype(np.float32) for k, v in lrs.items()})
    np.savez(tmp / bf.PARAMS_NPZ, **arrays)  # type: ignore[arg-type]
    manifest = _manifest(
        run, run_path, family, capacity, graph_specs, figures, note, adapted, encoder
    )
    manifest["producer"]["export_id"] = export_id
    manifest["acceptance"] = acceptance.acceptance()
    files = {f.name: bf.sha256_file(f) for f in sorted(tmp.iterdir())}
    bf.write_manifest(bf.Manifest(**{**manifest, "files": files}), tmp / bf.MANIFEST)


def _export_id(
    params: Mapping[str, torch.Tensor],
    lrs: Mapping[str, torch.Tensor],
    capacity: int,
    cfg: TrainConfig,
) -> str:
    """What ties this export's graphs to its manifest: a digest of what they were built from.

    Every graph carries it in ``metadata_props`` and the manifest in ``producer.export_id``;
    the same run exported with the same settings gets the same id (its graphs are the same).
    """
    from adapt_robot.config import to_dict

    h = hashlib.sha256()
    for group in (params, lrs):
        for name in sorted(group):
            value = group[name].detach().cpu().numpy().astype(np.float32)
            h.update(name.encode())
            h.update(str(value.shape).encode())
            h.update(value.tobytes())
    h.update(str(capacity).encode())
    h.update(json.dumps(to_dict(cfg), sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def normalizer_spec(policy: Policy) -> bf.NormalizerSpec:
    """The manifest's record of the normaliser ``policy`` applies (and its graphs bake in)."""
    norm = policy.normalizer
    return bf.NormalizerSpec(
        enabled=policy.cfg.normalize_obs,
        mean=[float(x) for x in norm.mean],
        var=[float(x) for x in norm.var],
        eps=NORMALIZER_EPS,
        clip=float(policy.cfg.obs_clip),
        count=float(norm.count),
    )


def memory_spec(policy: Policy, encoder: ContextEncoder | None = None) -> bf.MemorySpec:
    """The manifest's ``memory`` section for ``policy`` (kind none: no state, no names).

    With a context ``encoder`` (PEARL): kind posterior, the policy's ``context`` is ``z``.
    """
    if encoder is not None:
        return bf.MemorySpec(
            kind="posterior",
            state_dim=encoder.z_dim,
            state_input=bf.POSTERIOR_STATE_INPUT,
            state_output="",
            feedback=[],
            reward_scale=encoder.reward_scale,
            reset="new_task",
            first_episode=POSTERIOR_FIRST_EPISODE,
        )
    recurrent = policy.state_dim > 0
    return bf.MemorySpec(
        kind="recurrent" if recurrent else "none",
        state_dim=policy.state_dim,
        state_input=bf.MEMORY_STATE_INPUT if recurrent else "",
        state_output=bf.MEMORY_STATE_OUTPUT if recurrent else "",
        feedback=list(bf.MEMORY_FEEDBACK) if recurrent else [],
        reward_scale=policy.cfg.reward_scale,
        reset="new_task",
    )


def _write_frozen(
    tmp: Path,
    policy: Policy,
    params: Mapping[str, torch.Tensor],
    low: np.ndarray,
    high: np.ndarray,
    meta: Mapping[str, Any],
    family: Any,
    rng: np.random.Generator,
) -> float:
    """Write ``policy_frozen.onnx`` (meta-parameters inside); returns its parity error."""
    from adapt_robot.runtime.frozen import freeze_policy, frozen_parity

    arrays = {k: v.numpy().astype(np.float32) for k, v in params.items()}
    source = (tmp / bf.POLICY_ONNX).read_bytes()
    extra = {"adapt_robot.control_hz": float(family.control_hz), "adapt_robot.params": "meta"}
    frozen = freeze_policy(source, arrays, low, high, {**meta, **extra})
    (tmp / bf.POLICY_FROZEN_ONNX).write_bytes(frozen)
    obs = parity.random_batch(policy, params, 64, rng).obs.numpy()
    return frozen_parity(source, frozen, arrays, low, high, obs)


def _metadata(cfg: TrainConfig, family: Any, policy: Policy) -> dict[str, Any]:
    """Key facts for ``metadata_props`` of every graph (for tools that read only the .onnx)."""
    spec = family.action_spec
    return {
        "adapt_robot.format_version": str(bf.FORMAT_VERSION),
        "adapt_robot.family": cfg.family,
        "adapt_robot.obs_names": list(family.obs_spec.names),
        "adapt_robot.action_names": list(spec.names),
        "adapt_robot.action_low": spec.low.tolist(),
        "adapt_robot.action_high": spec.high.tolist(),
        "adapt_robot.action_scale": ((spec.high - spec.low) / 2).tolist(),
        "adapt_robot.action_docs": [f.doc for f in spec.fields],
        "adapt_robot.adapt": policy.cfg.adapt,
    }


def _manifest(
    run: _Run,
    run_path: Path,
    family: Any,
    capacity: int,
    graph_specs: dict[str, bf.GraphSpec],
    figures: dict[str, float],
    note: str,
    adapted: list[str],
    encoder: ContextEncoder | None,
) -> dict[str, Any]:
    from adapt_robot.config import to_dict

    cfg, learner = run.cfg, run.learner
    policy = learner.policy
    loss = (
        "posterior"
        if encoder is not None
        else "none"
        if policy.state_dim
        else learner.inner_loss_fn().kind
    )

    def space(s: Any) -> dict[str, Any]:
        return {
            "dim": s.dim,
            "names": list(s.names),
            "low": s.low.tolist(),
            "high": s.high.tolist(),
        }

    per_param = bool(adapted) and any(v.dim() > 0 for v in learner.raw_lrs.values())
    algo = cfg.algo
    return {
        "format_version": bf.FORMAT_VERSION,
        "family": cfg.family,
        "observation_reward": bool(family.observation_reward),
        "observation": bf.SpaceSpec(**space(family.obs_spec)),
        "action": bf.ActionSpec(**space(family.action_spec)),
        "normalizer": normalizer_spec(policy),
        "policy": bf.PolicySpec(
            type=cast(bf.PolicyKind, policy.kind),
            hidden=[] if policy.kind == "module" else list(policy.cfg.hidden),
            activation=policy.cfg.activation,
            adapt=policy.cfg.adapt,
            context_dim=policy.cfg.context_dim,
            action_squash=policy.action_squash,
        ),
        "parameters": [
            bf.ParamSpec(name=k, shape=list(v.shape), dtype="float32", adapted=k in adapted)
            for k, v in learner.params.items()
        ],
        "inner_loop": bf.InnerLoopSpec(
            algorithm=algo.name,
            steps=1 if encoder is not None else int(learner.inner_steps),
            lr_mode="per_parameter" if per_param else "scalar",
            capacity=capacity,
            episodes=adaptation_episodes(cfg),
            horizon=int(family.max_steps),
            gamma=cfg.sampler.gamma,
            gae_lambda=cfg.sampler.gae_lambda,
            baseline=cfg.sampler.baseline,
            baseline_reg=cfg.sampler.baseline_reg,
            normalize_adv=cfg.sampler.normalize_adv,
            loss=loss,
        ),
        "memory": memory_spec(policy, encoder),
        "graphs": graph_specs,
        "reward_note": note,
        "opset": graphs.OPSET,
        "producer": {
            "adapt_robot": _version("adapt-robot"),
            "torch": str(torch.__version__),
            "onnx": str(onnx.__version__),
            "onnxruntime": str(onnxruntime.__version__),
        },
        "parity": figures,
        "training": {
            "config": to_dict(cfg),
            "iteration": int(run.ckpt.get("iteration", 0)),
            "env_steps": int(run.ckpt.get("env_steps", 0)),
            "run_dir": str(run_path.resolve()),
        },
    }
