"""The controller side of a control loop: what turns observations into actions.

:class:`Controller` is the structural type the control loop (:mod:`adapt_robot.runtime.loop`) and
the bridge server (:mod:`adapt_robot.runtime.bridge.server`) drive. The on-device adapter
(``OnlineAdapter``) satisfies it; so does any object with these three methods, which is how the
loop and the bridge are tested without a bundle.

Contract, per control tick::

    action = controller.act(obs)                       # float32 [act_dim], never raises on bad obs
    ...                                                # the robot executes the action
    controller.observe(reward, done, next_obs)         # the transition's outcome

``observe`` may hand data to a background adaptation; it must not block the caller for long.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

PARAMS_VERSION_KEY = "params_version"
"""Key of :meth:`Controller.stats` read by the bridge: version of the parameters in use
(0 for the meta-parameters, incremented by each accepted adaptation). Optional."""

FAULTS_KEY = "faults"
"""Key of :meth:`Controller.stats` read by the bridge: count of observations the controller
answered with a safe action (non-finite or wrongly shaped). Optional."""


@runtime_checkable
class Controller(Protocol):
    """Anything that maps an observation to an action and learns from the outcome."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action (float32 ``[act_dim]``) for ``obs``.

        Must not raise on a bad observation (NaN, inf, wrong shape): answer a finite safe
        action and count a fault instead.
        """
        ...

    def observe(self, reward: float | None, done: bool, next_obs: np.ndarray | None = None) -> None:
        """Outcome of the last action.

        ``reward`` is ``None`` when the robot cannot compute it (the controller then computes
        it from ``next_obs`` on the device); ``done`` ends the episode.
        """
        ...

    def stats(self) -> dict[str, float | int]:
        """Counters and figures of merit (see :data:`PARAMS_VERSION_KEY`, :data:`FAULTS_KEY`)."""
        ...
