"""Trace sliding-window adaptation inside the first attempt of a ``law_id`` bundle.

For each object: one episode with the starting latent ``z0`` and one with sliding-window
adaptation (every ``--every`` ticks, synchronously, as the scoreboard's ``first_attempt``),
how each ended (``lifted``, ``ended early``: e.g. a broken object, or ``failed`` at full
length), and the decoded law parameters ``theta`` after the first adaptations. This is how
docs/scoreboard.md's first-attempt diagnosis was measured::

    MUJOCO_GL=osmesa .venv/bin/python examples/first_attempt_trace.py runs/grasp_law_bundle \
        --split train --seed 7 --objects 48
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from adapt_robot.deploy.sim_robot import SimRobot, SimRobotConfig
from adapt_robot.jobs.deploy import held_out_tasks
from adapt_robot.meta.control_law import ControlLawPolicy
from adapt_robot.meta.policy import PolicyConfig
from adapt_robot.runtime import Bundle, EpisodicMode, OnlineAdapter
from adapt_robot.runtime.modes import SlidingWindowMode
from adapt_robot.scoreboard.arms.episodes import EpisodeOutcome, run_episode
from adapt_robot.sim.registry import get_family


def ending(ep: EpisodeOutcome, horizon: int) -> str:
    """``lifted`` (success), ``ended early`` (done before the horizon) or ``failed``."""
    if ep.success:
        return "lifted"
    return "ended early" if ep.ticks < horizon else "failed"


def main(argv: Sequence[str] | None = None) -> dict[str, Counter[str]]:
    """Print the trace; returns the endings counted per mode (``before``, ``first_attempt``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--objects", type=int, default=12)
    p.add_argument("--engine", default="mujoco")
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--show", type=int, default=6, help="adaptations printed per object")
    args = p.parse_args(argv)

    bundle = Bundle.load(args.bundle)
    m = bundle.manifest
    family = get_family(m.family)
    cfg = PolicyConfig(
        hidden=tuple(m.policy.hidden), adapt="context", context_dim=int(m.policy.context_dim)
    )
    law = ControlLawPolicy(family, cfg)

    def theta(params: Mapping[str, np.ndarray]) -> np.ndarray:
        tensors = {k: torch.from_numpy(np.array(v)) for k, v in params.items()}  # copies
        with torch.no_grad():
            return law.theta(tensors, tensors["context"]).numpy()

    inner = m.inner_loop
    window = SlidingWindowMode(
        every=args.every, window=min(inner.capacity, inner.horizon), steps=inner.steps
    )
    horizon = int(family.max_steps)
    robot = SimRobot(
        SimRobotConfig(family=family.name, engine=args.engine, split=args.split, seed=args.seed)
    )
    seed = args.seed
    fixed = OnlineAdapter(
        bundle, mode=EpisodicMode(episodes=1), deterministic=True, seed=seed, auto_adapt=False
    )
    sliding = OnlineAdapter(bundle, mode=window, deterministic=True, seed=seed, auto_adapt=False)
    counts: dict[str, Counter[str]] = {"before": Counter(), "first_attempt": Counter()}
    print(f"theta(z0) {dict(zip(family.law_params, theta(sliding.meta_params), strict=True))}")
    try:
        for i, task in enumerate(held_out_tasks(family, args.objects, args.split, args.seed)):
            robot.set_task(task)
            fixed.reset_to_meta()
            before = run_episode(robot, fixed)
            sliding.reset_to_meta()
            trace: list[str] = []

            def on_tick(t: int, trace: list[str] = trace) -> None:
                if t % args.every == 0:
                    r = sliding.adapt()
                    if len(trace) < args.show:
                        now = np.round(theta(sliding.params), 4)
                        trace.append(f"t={t} {r.reason} theta={now}")

            first = run_episode(robot, sliding, on_tick=on_tick)
            counts["before"][ending(before, horizon)] += 1
            counts["first_attempt"][ending(first, horizon)] += 1
            print(
                f"object {i}: before {ending(before, horizon)} ({before.ticks} ticks), first "
                f"attempt {ending(first, horizon)} ({first.ticks} ticks); expert theta "
                f"{np.round(family.expert_law_params(task), 4)}"
            )
            for line in trace:
                print(f"    {line}")
    finally:
        fixed.close()
        sliding.close()
        robot.close()
    for mode, c in counts.items():
        print(f"{mode}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    return counts


if __name__ == "__main__":
    main()
