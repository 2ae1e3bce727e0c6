"""One episode of a bundle on a simulated robot in a plain loop, as fast as the simulator goes.

The tick is the control loop's (``adapt_robot.runtime.loop``): ``act -> send_action ->
reward/done/read_obs -> observe``, with the robot's own reward passed to the adapter; there is
no real-time pacing and no deadline accounting, so the scores do not depend on the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapt_robot.deploy.sim_robot import SimRobot
from adapt_robot.runtime.adapter import OnlineAdapter


@dataclass(frozen=True, kw_only=True)
class EpisodeOutcome:
    """What one episode gave."""

    ret: float
    """Undiscounted return."""
    success: bool
    """The task was achieved at some step."""
    first_success: int | None
    """Control step (1-based) of the first successful step; ``None`` if never."""
    ticks: int
    """Control steps of the episode."""


def run_episode(
    robot: SimRobot,
    adapter: OnlineAdapter,
    on_tick: Callable[[int], None] | None = None,
) -> EpisodeOutcome:
    """Run one episode on the robot's current task; ``on_tick(t)`` after each observed tick.

    Raises ``RuntimeError`` when the robot does not end the episode within its family's step
    limit (a robot that never reports ``done`` would otherwise loop for ever).
    """
    limit = int(robot.family.max_steps)
    obs = robot.reset()
    ret, first, t = 0.0, None, 0
    while True:
        robot.send_action(adapter.act(obs))
        reward, done, obs = robot.reward(), robot.done(), robot.read_obs()
        succeeded = robot.success()
        adapter.observe(reward, done, obs, success=succeeded)
        t += 1
        ret += float(reward if reward is not None else 0.0)
        if first is None and succeeded:
            first = t
        if on_tick is not None:
            on_tick(t)
        if done:
            ok = bool(succeeded)  # the family's success_rule, as the robot counts it
            return EpisodeOutcome(ret=ret, success=ok, first_success=first if ok else None, ticks=t)
        if t >= limit:
            raise RuntimeError(
                f"run_episode: the {robot.family.name} robot did not end the episode within "
                f"{limit} steps (family max_steps); check SimRobot.done()"
            )
