"""Run-time safety of the adapter: observation and action guards, update acceptance, counters.

Nothing here raises into the control loop. A bad observation (wrong shape or type, NaN, inf)
is a counted fault answered with the configured safe action; actions are clipped to the
bundle's bounds; an adaptation whose batch or result is unsound (rewards out of range,
non-finite advantages or parameters, an update larger than the bound, a loss on its own batch
that rose) is rolled back: the parameters stay as they were and the reason is counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from adapt_robot.config import FieldError, check_fields, setting
from adapt_robot.errors import BundleError
from adapt_robot.limits import DEAD_VAR

FaultAction = Literal["zero", "hold"]

# Rollback reasons (keys of SafetyCounters.rollback_reasons).
BAD_REWARD = "bad_reward"
"""A reward in the batch is NaN/inf or beyond ``max_abs_reward``."""
NONFINITE_ADVANTAGES = "nonfinite_advantages"
"""The returns, baseline or advantages came out NaN/inf (or the baseline fit failed)."""
NONFINITE_UPDATE = "nonfinite_update"
"""A new parameter, the loss or the gradient norm is NaN/inf."""
UPDATE_NORM = "update_norm"
"""The update's L2 norm exceeds ``max_update_norm``."""
LOSS_INCREASE = "loss_increase"
"""The inner loss on the batch itself rose after the steps (beyond the tolerance)."""
BAD_TRANSITIONS = "bad_transitions"
"""A transition of an identification batch is non-finite or implausible (a jump beyond
``TELEPORT_STD`` normalised units between consecutive observations): not adapted on."""
TELEPORT_STD = 30.0
"""Largest plausible change of an observation entry between two control steps, in units of
that entry's training standard deviation (training clips its targets at 10)."""
REASONS = (
    BAD_REWARD,
    NONFINITE_ADVANTAGES,
    BAD_TRANSITIONS,
    NONFINITE_UPDATE,
    UPDATE_NORM,
    LOSS_INCREASE,
)
"""The acceptance rule's reasons (shared with ``adapt-robot eval``)."""
DEADLINE = "deadline"
"""The adaptation ran past ``SafetyConfig.adapt_deadline_s`` and was stopped (device only)."""
DEVICE_REASONS = (DEADLINE,)
"""Rollback reasons of the on-device adapter alone (``eval`` has no clock to run out)."""


@dataclass(frozen=True, kw_only=True)
class AcceptanceConfig:
    """Settings of the acceptance rule: which adaptations are kept (every check on by default).

    Written into the bundle manifest at export (``acceptance:``); the adapter's default
    :class:`SafetyConfig` is read from there, and ``adapt-robot eval`` judges every task's
    inner steps with the same settings and the same functions (:func:`batch_rejection`,
    :func:`rejection`).
    """

    max_update_norm: float = setting(
        10.0,
        doc="Largest accepted L2 norm of ``new - old`` over all adapted parameters (``.inf``: "
        "no bound). The inner rates of a bundle move a well-trained policy by far less in a "
        "few steps.",
        gt=0,
        allow_inf=True,
    )
    reject_loss_increase: bool = setting(
        True,
        doc="Roll back an update after which the inner loss on its own batch is higher than "
        "before.",
    )
    loss_tolerance: float = setting(
        1e-3,
        doc="Allowed rise of that loss, relative to ``max(|loss before|, 1)`` (float32 rounding).",
        ge=0,
    )
    max_abs_reward: float = setting(
        1e6,
        doc="Rewards with a larger magnitude (or NaN/inf) are faults; a batch holding one is "
        "not adapted on.",
        gt=0,
        allow_inf=True,
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def acceptance(self) -> AcceptanceConfig:
        """The acceptance settings alone (what a bundle manifest records)."""
        return AcceptanceConfig(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(AcceptanceConfig)}
        )


@dataclass(frozen=True, kw_only=True)
class SafetyConfig(AcceptanceConfig):
    """Limits of the on-device adapter: the acceptance rule plus the bad-observation answer.

    A bundle's manifest holds its acceptance settings; :meth:`from_acceptance` builds the
    adapter's default from them.
    """

    fault_action: FaultAction = "zero"
    """Action answered to a bad observation: ``zero`` (the zero command, clipped to the
    bounds) or ``hold`` (the last action sent for a good observation; zero before any)."""
    adapt_deadline_s: float = setting(
        10.0,
        doc="Longest an adaptation may run, in seconds: past it the adaptation stops at its "
        "next inner step and is rolled back (reason ``deadline``); the parameters stay as "
        "they were.",
        gt=0,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fault_action not in ("zero", "hold"):
            raise FieldError(
                "fault_action", f"expected 'zero' or 'hold', got {self.fault_action!r}"
            )

    @classmethod
    def from_acceptance(
        cls, acceptance: AcceptanceConfig, fault_action: FaultAction = "zero"
    ) -> SafetyConfig:
        """The adapter's limits with ``acceptance`` (e.g. a bundle's ``manifest.acceptance``)."""
        return cls(**dataclasses.asdict(acceptance.acceptance()), fault_action=fault_action)


@dataclass
class SafetyCounters:
    """What the guards did since the adapter was built (or its counters reset)."""

    obs_faults: int = 0
    """act() calls whose observation had the wrong shape or type, or NaN/inf values."""
    action_faults: int = 0
    """act() calls whose action came out non-finite after the clip (answered with the safe
    action): the last line of defence against a bundle whose graph or bounds misbehave."""
    observe_faults: int = 0
    """observe() calls whose ``done`` or ``success`` could not be read as a flag (a string,
    NaN, an array, ...): ``done`` is then read as the end of the episode, ``success`` as no
    success."""
    clipped_actions: int = 0
    """act() calls whose action had at least one entry outside the bounds."""
    reward_faults: int = 0
    """observe() calls whose reward was NaN/inf or beyond ``max_abs_reward``."""
    rollbacks: int = 0
    """Adaptations rejected (parameters left unchanged)."""
    rollback_reasons: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(REASONS + DEVICE_REASONS, 0)
    )
    """Rejections per reason (see ``REASONS`` and ``DEVICE_REASONS``)."""

    def rollback(self, reason: str) -> None:
        """Count one rejected adaptation."""
        self.rollbacks += 1
        self.rollback_reasons[reason] = self.rollback_reasons.get(reason, 0) + 1

    def as_dict(self) -> dict[str, int]:
        """Flat counters: ``obs_faults``, ..., ``rollbacks``, ``rollbacks_<reason>``."""
        out = {
            "obs_faults": self.obs_faults,
            "action_faults": self.action_faults,
            "observe_faults": self.observe_faults,
            "clipped_actions": self.clipped_actions,
            "reward_faults": self.reward_faults,
            "rollbacks": self.rollbacks,
        }
        out.update({f"rollbacks_{k}": v for k, v in self.rollback_reasons.items()})
        return out


class ObsGuard:
    """Copies an observation into a preallocated float32 ``[1, dim]`` buffer, or refuses it."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.buffer = np.zeros((1, dim), dtype=np.float32)
        """The last observation loaded (the policy's bound input); garbage after a refusal."""
        self._shapes = ((dim,), (1, dim))
        self._finite = np.zeros((1, dim), dtype=bool)

    def load(self, obs: object) -> bool:
        """Copy ``obs`` (shape ``[dim]`` or ``[1, dim]``, real, finite) into :attr:`buffer`.

        Returns False for anything else (the buffer then holds no valid observation); never
        raises.
        """
        try:
            arr = obs if isinstance(obs, np.ndarray) else np.asarray(obs)
            if arr.shape not in self._shapes or arr.dtype.kind not in "fiub":
                return False
            if arr.dtype == np.float32:
                np.copyto(self.buffer[0], arr.reshape(self.dim))
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    np.copyto(self.buffer[0], arr.reshape(self.dim), casting="unsafe")
        except Exception:  # any object numpy cannot read as a real vector is a fault
            return False
        np.isfinite(self.buffer, out=self._finite)
        return bool(self._finite.all())


class ActionClip:
    """Clips actions to the bundle's bounds and says whether anything was cut."""

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        self.low = np.asarray(low, dtype=np.float32).copy()
        self.high = np.asarray(high, dtype=np.float32).copy()
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise BundleError(
                f"action.low, action.high: expected two lists of act_dim entries, got shapes "
                f"{self.low.shape} and {self.high.shape}; re-export the bundle"
            )
        for i, (lo, hi) in enumerate(zip(self.low.tolist(), self.high.tolist(), strict=True)):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise BundleError(
                    f"action.low[{i}], action.high[{i}]: expected finite bounds with low < high, "
                    f"got [{lo!r}, {hi!r}]; actions could not be bounded: re-export the bundle"
                )
        self._flags = np.zeros(self.low.shape, dtype=bool)

    def safe_zero(self) -> np.ndarray:
        """The zero command moved into the bounds."""
        return np.clip(np.zeros_like(self.low), self.low, self.high)

    def apply(self, action: np.ndarray, out: np.ndarray) -> bool:
        """``out = clip(action)`` (NaN entries: the clipped zero); True if anything changed."""
        np.maximum(action, self.low, out=out)
        np.minimum(out, self.high, out=out)
        np.not_equal(out, action, out=self._flags)  # NaN != NaN: a NaN counts as clipped
        if not self._flags.any():
            return False
        np.isfinite(out, out=self._flags)
        if not self._flags.all():
            np.copyto(out, self.safe_zero(), where=~self._flags)
        return True

    def finite(self, action: np.ndarray) -> bool:
        """Whether every entry of ``action`` is finite (the last check before it is sent)."""
        np.isfinite(action, out=self._flags)
        return bool(self._flags.all())


def update_norm(
    old: Mapping[str, np.ndarray], new: Mapping[str, np.ndarray], names: Sequence[str]
) -> float:
    """L2 norm of ``new - old`` over ``names`` (float64; inf/NaN if a value is)."""
    with np.errstate(over="ignore", invalid="ignore"):
        sq = 0.0
        for n in names:
            d = np.asarray(new[n], dtype=np.float64) - np.asarray(old[n], dtype=np.float64)
            sq += float(np.sum(d * d))
        return math.sqrt(sq) if sq == sq else float("nan")


def rejection(
    cfg: AcceptanceConfig,
    old: Mapping[str, np.ndarray],
    new: Mapping[str, np.ndarray],
    names: Sequence[str],
    scalars: Sequence[float],
    loss_before: float,
    loss_after: float | None,
) -> tuple[str | None, float]:
    """Why ``new`` must be rolled back (None: accept), and the update norm.

    ``scalars`` are the losses and gradient norms the steps reported (all must be finite);
    ``loss_after`` is the inner loss of ``new`` on the same batch (None: not measured).
    """
    finite = all(math.isfinite(s) for s in scalars) and all(
        bool(np.all(np.isfinite(new[n]))) for n in names
    )
    norm = update_norm(old, new, names)
    if not finite or not math.isfinite(norm):
        return NONFINITE_UPDATE, norm
    if norm > cfg.max_update_norm:
        return UPDATE_NORM, norm
    if cfg.reject_loss_increase and loss_after is not None:
        if not math.isfinite(loss_after):
            return NONFINITE_UPDATE, norm
        if loss_after > loss_before + cfg.loss_tolerance * max(abs(loss_before), 1.0):
            return LOSS_INCREASE, norm
    return None, norm


def transition_scale(var: np.ndarray, eps: float) -> np.ndarray:
    """Per-entry scale of :func:`transitions_ok` from the normaliser's variance ``[O]``.

    The normaliser's standard deviation, infinite on dead entries (variance at most
    :data:`~adapt_robot.limits.DEAD_VAR`): an entry that never moved in training (a door's
    protective-stop flag when no training episode tripped it) is not predicted by the model
    and must not make every later batch look like a teleport.
    """
    v = np.asarray(var, dtype=np.float64)
    return np.where(v > DEAD_VAR, np.sqrt(v + eps), np.inf)


def transitions_ok(obs: np.ndarray, next_obs: np.ndarray, std: np.ndarray) -> bool:
    """Whether live transitions ``[n, O]`` are finite and free of implausible jumps."""
    if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(next_obs))):
        return False
    with np.errstate(all="ignore"):
        jump = np.abs(next_obs.astype(np.float64) - obs) / std
    return bool(np.all(jump <= TELEPORT_STD))


def transition_rejection(
    obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray, std: np.ndarray
) -> str | None:
    """Why an identification batch's live rows must not be adapted on (None: adapt).

    The identification counterpart of :func:`batch_rejection`: :data:`BAD_TRANSITIONS` when an
    action is non-finite or a transition fails :func:`transitions_ok`.
    """
    if not (np.all(np.isfinite(act)) and transitions_ok(obs, next_obs, std)):
        return BAD_TRANSITIONS
    return None


def rewards_ok(cfg: AcceptanceConfig, rewards: np.ndarray) -> bool:
    """Every reward finite and within ``max_abs_reward``."""
    r = np.asarray(rewards, dtype=np.float64)
    return bool(np.all(np.isfinite(r)) and np.all(np.abs(r) <= cfg.max_abs_reward))


def batch_rejection(
    cfg: AcceptanceConfig, rewards: np.ndarray, advantages: np.ndarray | None
) -> str | None:
    """Why a batch must not be adapted on (None: adapt), before any inner step runs.

    ``rewards`` are the live rows' rewards; ``advantages`` their advantages (None where they
    could not be computed, e.g. a failed baseline fit). The checks and their order are those
    of the adapter: :data:`BAD_REWARD` first, then :data:`NONFINITE_ADVANTAGES`.
    """
    if not rewards_ok(cfg, rewards):
        return BAD_REWARD
    if advantages is None or not bool(np.all(np.isfinite(advantages))):
        return NONFINITE_ADVANTAGES
    return None
