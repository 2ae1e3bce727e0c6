"""Figures of ``adapt-robot deploy``: the report's plot and the before/after GIF.

Both run after the timed control loops and render data they are given: the plot a
:class:`~adapt_robot.jobs.deploy_report.DeployReport`, the GIF two replayed episodes (written by
:mod:`adapt_robot.reporting.gif`). matplotlib (Agg), Pillow and imageio are imported inside the
functions. No torch: the GIF replays run the exported policy with ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adapt_robot.deploy.scoring import AFTER, BEFORE, EXPERIENCE
from adapt_robot.reporting.figures import agg_figure, error_bars, save_figure
from adapt_robot.reporting.gif import caption_frame, write_gif
from adapt_robot.runtime.bundle import Bundle
from adapt_robot.runtime.sessions import SessionSettings, create_session, resolve_providers

if TYPE_CHECKING:
    from adapt_robot.deploy.sim_robot import SimRobotConfig
    from adapt_robot.jobs.deploy_report import DeployReport
    from adapt_robot.sim.core.params import TaskParams

GIF_STREAM = 107
"""Second seed word of the action noise of the GIF replays (the same for both)."""


def plot_report(report: DeployReport, path: Path) -> None:
    """Mean return per episode index (adaptation marked) and success before/after (Agg)."""
    fig = agg_figure(11, 4)
    ax_r, ax_s = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    k = report.episodes
    phases = [(BEFORE, 1, "tab:blue"), (AFTER, k + 1, "tab:orange")]
    if report.sequential:  # episodes 2..K act with the adaptation on those before them
        phases.insert(1, (EXPERIENCE, 2, "tab:green"))
    labels = {BEFORE: "meta", EXPERIENCE: "adapted after each", AFTER: "adapted"}
    for name, offset, color in phases:
        per_index: list[list[float]] = []
        for o in report.objects:
            for i, e in enumerate(o.phase(name)):
                if i == len(per_index):
                    per_index.append([])
                per_index[i].append(e.ret)
        if not per_index:
            continue
        x = np.arange(offset, offset + len(per_index))
        mean = np.array([np.mean(v) for v in per_index])
        sem = np.array(
            [np.std(v, ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0 for v in per_index]
        )
        ax_r.plot(
            x,
            mean,
            marker="o",
            color=color,
            label=f"{name} ({labels[name]})",
        )
        ax_r.fill_between(x, mean - sem, mean + sem, color=color, alpha=0.2)
    ax_r.xaxis.get_major_locator().set_params(integer=True)
    ax_r.axvline(k + 0.5, color="k", linestyle="--", linewidth=1)
    ax_r.annotate(
        f"adapted {k}x (after each), {report.steps} inner step(s)"
        if report.sequential
        else f"adapt: {report.steps} inner step(s)",
        xy=(k + 0.5, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, -14),
        textcoords="offset points",
        fontsize=8,
    )
    ax_r.set_xlabel("episode on the object (transition episodes left out)")
    ax_r.set_ylabel("mean return over objects (± s.e.)")
    ax_r.grid(alpha=0.3)
    ax_r.legend(fontsize=8)
    bars = [(BEFORE, report.success_before), (AFTER, report.success_after)]
    for i, (_, iv) in enumerate(bars):
        if iv is None:
            continue
        ax_s.bar(i, iv.mean, color=("tab:blue", "tab:orange")[i], alpha=0.8)
        below, above = error_bars([iv])
        ax_s.errorbar(i, iv.mean, yerr=[below, above], color="k", capsize=6)
        ax_s.text(i, iv.high + 0.02, f"{iv.mean:.0%}", ha="center", fontsize=9)
    first = "1st episode" if report.sequential else f"K={k}"
    ax_s.set_xticks([0, 1], [f"before\n({first})", f"after\n({report.post_episodes} post)"])
    ax_s.set_ylim(0, 1.1)
    ax_s.set_ylabel("success rate (95% Wilson CI)")
    ax_s.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"{report.family} on {report.robot}: {len(report.objects)} held-out {report.split} "
        f"objects at {report.rate_hz:g} Hz"
    )
    save_figure(fig, path, dpi=110)


def _replay(
    bundle: Bundle,
    providers: tuple[str, ...],
    params: Mapping[str, np.ndarray],
    robot_cfg: SimRobotConfig,
    task: TaskParams,
    seed: int,
    size: tuple[int, int],
) -> tuple[list[np.ndarray], float, bool, float]:
    """One rendered episode acting with ``params`` (sampled actions, seeded noise, clipped).

    Returns the frames, the return, whether the task was achieved and the control rate (Hz).
    """
    from adapt_robot.deploy.sim_robot import SimRobot

    session = create_session(
        bundle.graph_path("policy"), resolve_providers(providers), SessionSettings()
    )
    feed: dict[str, np.ndarray] = {name: np.asarray(v) for name, v in params.items()}
    rng = np.random.default_rng([seed, GIF_STREAM])
    low, high = bundle.action_low, bundle.action_high
    ret = 0.0
    with SimRobot(robot_cfg) as robot:
        robot.set_task(task)
        obs = robot.reset()
        frames = [robot.render(*size)]
        while not robot.done():
            feed["obs"] = obs[None].astype(np.float32)
            mean, log_std = session.run(["action_mean", "action_log_std"], feed)
            noise = rng.standard_normal(log_std.shape[0], dtype=np.float32)
            robot.send_action(np.clip(mean[0] + np.exp(log_std) * noise, low, high))
            ret += float(robot.reward() or 0.0)
            obs = robot.read_obs()
            frames.append(robot.render(*size))
        success = robot.success() is True
        fps = 1.0 / robot.control_period_s
    return frames, ret, success, fps


def write_before_after_gif(
    bundle: Bundle,
    robot_cfg: SimRobotConfig,
    task: TaskParams,
    adapted: Mapping[str, np.ndarray],
    accepted: bool,
    path: Path,
    *,
    providers: tuple[str, ...] = ("cpu",),
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
) -> Path:
    """Replay the first object with the meta- then the adapted parameters; write a GIF.

    Runs after the timed loops (rendering is slow); both episodes use the same task, the same
    robot seed and the same action noise, so only the parameters differ.
    """
    frames: list[np.ndarray] = []
    fps = 0.0
    after = "after adaptation" if accepted else "after adaptation (rolled back: meta-params)"
    for label, params in (("before adaptation", bundle.params), (after, adapted)):
        shots, ret, success, fps = _replay(bundle, providers, params, robot_cfg, task, seed, size)
        info = f"return {ret:.2f}, success: {'yes' if success else 'no'}"
        captioned = [caption_frame(f, [label, info]) for f in shots]
        frames += captioned + [captioned[-1]] * 5  # hold the last frame a moment
    return write_gif(frames, path, fps)
