"""When the on-device adapter adapts, and on what data.

- :class:`EpisodicMode`: as in evaluation. Act with the meta-policy for ``K`` episodes, then
  take ``n`` inner steps on those episodes and keep acting with the adapted parameters
  (``once``: until :meth:`OnlineAdapter.reset_to_meta`; otherwise again after every further
  ``K`` episodes, on those).
  With ``history``, each adaptation uses the last ``history`` episodes of this object, not
  only the new ones (sequential adaptation, each episode played with the last result).
- :class:`SlidingWindowMode`: every ``M`` control ticks, ``n`` inner steps on the last ``N``
  transitions, cut into episode segments for the returns.

Every adaptation starts from the meta-parameters (what meta-training optimised: ``n`` steps
from them) and its result replaces the current parameters; adapted parameters never drift by
compounding updates.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapt_robot.runtime.bundle_format import InnerLoopSpec


@dataclass(frozen=True, kw_only=True)
class EpisodicMode:
    """Adapt after ``episodes`` finished episodes with ``steps`` inner steps."""

    episodes: int | None = None
    """Episodes per adaptation batch ``K`` (None: ``manifest.inner_loop.episodes``)."""
    steps: int | None = None
    """Inner steps ``n`` (None: ``manifest.inner_loop.steps``)."""
    once: bool = True
    """Adapt once, then keep the adapted parameters until ``reset_to_meta()``."""
    keep_on_success: bool = False
    """Do not adapt when the last finished episode succeeded (success as the robot reports it
    to ``observe(success=...)``, else as ``reward.onnx`` computes it): a behaviour that works
    is kept, and the adaptation is reported as ``kept_success``."""
    history: int | None = None
    """Adapt on the last ``history`` finished episodes since ``reset_to_meta()`` (whatever
    parameters acted in them) instead of only the ``episodes`` new ones. With ``episodes=1,
    once=False`` this is sequential adaptation: after every episode, from the
    meta-parameters, on all of this object's recent experience, each episode acted with the
    previous adaptation's result."""

    def __post_init__(self) -> None:
        for name in ("episodes", "steps", "history"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"EpisodicMode.{name}: expected an integer >= 1, got {value}")

    def resolve(self, inner_loop: InnerLoopSpec) -> tuple[int, int]:
        """``(K, n)`` with the bundle's values where this mode leaves them None."""
        k = self.episodes if self.episodes is not None else inner_loop.episodes
        n = self.steps if self.steps is not None else inner_loop.steps
        return k, n


def experience_mode(
    episodes: int,
    *,
    sequential: bool,
    keep_on_success: bool = False,
    steps: int | None = None,
) -> EpisodicMode:
    """The mode that adapts on ``episodes`` (``K``) experience episodes of one object.

    Batch: one adaptation on ``K`` episodes played with the meta-parameters
    (``EpisodicMode(episodes=K, once=True)``). ``sequential``: an adaptation after each
    episode, on all of this object's episodes so far, so each acts with the last result
    (``EpisodicMode(episodes=1, once=False, history=K)``). The scoreboard's ``after_k`` stages
    and ``adapt-robot deploy`` both build their mode here.
    """
    if sequential:
        return EpisodicMode(
            episodes=1, steps=steps, once=False, keep_on_success=keep_on_success, history=episodes
        )
    return EpisodicMode(episodes=episodes, steps=steps, once=True, keep_on_success=keep_on_success)


@dataclass(frozen=True, kw_only=True)
class SlidingWindowMode:
    """Every ``every`` ticks, ``steps`` inner steps on the last ``window`` transitions."""

    every: int
    """Control ticks (observed transitions) between adaptations ``M``."""
    window: int
    """Transitions per adaptation ``N`` (at most the bundle's ``inner_loop.capacity``)."""
    steps: int
    """Inner steps ``n`` per adaptation."""
    min_window: int = 1
    """No adaptation before this many transitions were observed since ``reset_to_meta()``:
    the first ticks of an attempt (a free approach) say nothing of the object, and steps on
    them move the latent all the same (RMA reads 0.5 s of history)."""

    def __post_init__(self) -> None:
        for name in ("every", "window", "steps", "min_window"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"SlidingWindowMode.{name}: expected an integer >= 1, got {value}")

    def check(self, inner_loop: InnerLoopSpec) -> None:
        """Refuse a window larger than the bundle's batch capacity."""
        if self.window > inner_loop.capacity:
            raise ValueError(
                f"SlidingWindowMode.window: {self.window} transitions do not fit the bundle's "
                f"inner_loop.capacity {inner_loop.capacity}; use a window <= "
                f"{inner_loop.capacity} or re-export with `--capacity`"
            )
