"""``adapt-robot demo launch/demo.yaml``: the whole chain, sim -> meta -> export -> runtime.

1. **train**: train a family (default: grasp, the law_id learner of launch/grasp_law.yaml)
   on a short budget, in MuJoCo; learning curve in ``OUT/train/learning_curve.png``.
2. **export**: write the ONNX bundle (policy, inner step, reward; parity-checked) to
   ``OUT/bundle``.
3. **deploy**: in a separate process where ``import torch`` fails, run the real-time control loop
   against the PyBullet twin on held-out objects, adapting on-line from the robot's own
   experience (``adapt-robot deploy``); table, plot and before/after GIF in ``OUT/deploy``.
4. **summary**: one table of the figures of every stage, ``OUT/summary.md`` and
   ``OUT/summary.json``, with the oracle (the scripted expert told each object's true
   parameters, the scoreboard's ``expert`` arm) scored on the same objects, engine and episode
   count as the post episodes, so before / after / oracle read side by side.

The deploy stage runs torch-free for real: the child process blocks torch before anything is
imported, so the figures come from what a robot controller would run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adapt_robot import BLAS_THREAD_VARS
from adapt_robot.config import ConfigError, dump, setting
from adapt_robot.reporting.tables import markdown_table

# Run in the deploy child before anything else: no torch, single-threaded BLAS (a multithreaded
# BLAS makes one adaptation 5-10x slower on 2 cores), then the ordinary CLI.
_TORCH_FREE_CLI = (
    "import sys; sys.modules['torch'] = None; "
    "from adapt_robot.cli import main; sys.exit(main(sys.argv[1:]))"
)


@dataclass(frozen=True, kw_only=True)
class DemoTrain:
    """The ``train:`` section: which launch file, with which overrides."""

    launch: str = setting("launch/grasp_law.yaml", doc="Training launch file.")
    overrides: tuple[str, ...] = setting(
        (), doc="KEY=VALUE overrides of the launch file (a short budget for the demo)."
    )


@dataclass(frozen=True, kw_only=True)
class DemoDeploy:
    """The ``deploy:`` section: the on-line adaptation run on the simulated robot."""

    robot: str = setting("sim:pybullet", doc="sim:ENGINE; PyBullet is not the training engine.")
    split: Literal["train", "test"] = setting("test", doc="Task split of the objects.")
    rate_hz: float = setting(100.0, doc="Control-loop rate.", gt=0, le=2000)
    objects: int = setting(8, doc="Held-out objects (one adaptation each).", ge=1)
    episodes: int = setting(10, doc="Exploration episodes K before adapting.", ge=1)
    sequential: bool = setting(
        True,
        doc="Adapt after each of the K exploration episodes, on all of them so far (the "
        "scoreboard's experience: sequential; only the first episode is scored before).",
    )
    post_episodes: int = setting(3, doc="Episodes scored after adapting.", ge=1)
    keep_on_success: bool = setting(
        True,
        doc="Do not adapt when the exploration episode succeeded (the runtime's "
        "EpisodicMode(keep_on_success=True); chosen on train-range validation objects).",
    )
    gif: bool = setting(True, doc="Write a before/after GIF of the first object.")


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Launch settings of ``adapt-robot demo``."""

    out_dir: str = setting("runs/demo", doc="Directory for every stage's outputs.")
    seed: int = setting(0, doc="Seed of training, export parity inputs and deployment.", ge=0)
    train: DemoTrain = field(default_factory=DemoTrain)
    deploy: DemoDeploy = field(default_factory=DemoDeploy)


@dataclass
class StageTimes:
    """Wall-clock seconds per stage."""

    train: float = 0.0
    export: float = 0.0
    deploy: float = 0.0


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", file=sys.stderr, flush=True)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run the four stages; returns the summary (also written to ``out_dir``)."""
    from adapt_robot.jobs.train import run_train

    out = Path(cfg.out_dir)
    _keep_previous(out)
    out.mkdir(parents=True)
    dump(cfg, out / "config.yaml")
    times = StageTimes()

    _banner(f"1/4 train: {cfg.train.launch} (short budget) -> {out / 'train'}")
    t0 = time.perf_counter()
    run_dir = run_train(
        cfg.train.launch,
        [*cfg.train.overrides, f"out_dir={out / 'train'}", f"seed={cfg.seed}"],
        resume=False,
    )
    times.train = time.perf_counter() - t0

    _banner(f"2/4 export: ONNX bundle -> {out / 'bundle'}")
    from adapt_robot.export import export_bundle

    t0 = time.perf_counter()
    bundle = export_bundle(run_dir, out / "bundle", seed=cfg.seed)
    times.export = time.perf_counter() - t0

    d = cfg.deploy
    _banner(
        f"3/4 deploy (torch-free process): {d.robot}, {d.objects} held-out objects, "
        f"{d.rate_hz:g} Hz -> {out / 'deploy'}"
    )
    t0 = time.perf_counter()
    deploy_dir = out / "deploy"
    _deploy_torch_free(bundle, deploy_dir, d, cfg.seed)
    times.deploy = time.perf_counter() - t0

    _banner(f"4/4 summary, with the oracle on the same {d.objects} objects")
    summary = _summary(cfg, run_dir, bundle, deploy_dir, times)
    summary["oracle"] = oracle_on_objects(summary["family"], d, cfg.seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(summary_table(summary) + "\n")
    return summary


def _keep_previous(out: Path) -> None:
    """Move an earlier run in ``out`` aside (``OUT.old-TIMESTAMP``): rerunning loses nothing."""
    if out.exists() and any(out.iterdir()):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(out.stat().st_mtime))
        aside = out.with_name(f"{out.name}.old-{stamp}")
        n = 1
        while aside.exists():
            aside = out.with_name(f"{out.name}.old-{stamp}-{n}")
            n += 1
        out.rename(aside)
        print(f"[demo] the previous run in {out} was moved to {aside}", file=sys.stderr)
    elif out.exists():
        out.rmdir()


def _deploy_torch_free(bundle: Path, out: Path, d: DemoDeploy, seed: int) -> None:
    """``adapt-robot deploy`` in a child process in which ``import torch`` fails."""
    args = [
        "deploy",
        str(bundle),
        "--robot",
        d.robot,
        "--task-split",
        d.split,
        "--rate",
        f"{d.rate_hz:g}",
        "--objects",
        str(d.objects),
        "--episodes",
        str(d.episodes),
        "--post-episodes",
        str(d.post_episodes),
        *(["--keep-on-success"] if d.keep_on_success else []),
        *(["--sequential"] if d.sequential else []),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    if d.gif:
        args += ["--gif", str(out / "before_after.gif")]
    env = dict(os.environ)
    for var in BLAS_THREAD_VARS:
        env.setdefault(var, "1")
    done = subprocess.run([sys.executable, "-c", _TORCH_FREE_CLI, *args], env=env, check=False)
    if done.returncode != 0:
        raise ConfigError(
            f"deploy stage failed (exit {done.returncode}); its error is printed above. The "
            f"trained run and the bundle are kept: rerun with 'adapt-robot deploy {bundle} ...'"
        )


def _summary(
    cfg: DemoConfig, run_dir: Path, bundle: Path, deploy_dir: Path, times: StageTimes
) -> dict[str, Any]:
    import yaml

    from adapt_robot.jobs.learning_curve import read_metrics

    rows = read_metrics(run_dir / "metrics.jsonl")
    last = rows[-1] if rows else {}
    evals = [r["eval"] for r in rows if "eval" in r]
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text())
    deploy = json.loads((deploy_dir / "deploy.json").read_text())
    return {
        "family": manifest["family"],
        "seconds": {"train": times.train, "export": times.export, "deploy": times.deploy},
        "train": {
            "run_dir": str(run_dir),
            "algorithm": manifest["inner_loop"]["algorithm"],
            "iterations": last.get("iteration", 0),
            "env_steps": last.get("total_env_steps", 0),
            "last_eval": evals[-1] if evals else None,
            "learning_curve": str(run_dir / "learning_curve.png"),
        },
        "export": {"bundle": str(bundle), "parity": manifest.get("parity", {})},
        "deploy": deploy,
        "config": cfg.deploy.__dict__,
    }


def oracle_on_objects(family_name: str, d: DemoDeploy, seed: int) -> dict[str, Any]:
    """The scoreboard's ``expert`` arm on the deploy stage's objects, engine and seed.

    ``post_episodes`` episodes per object; success as a Wilson interval over the episodes.
    """
    from adapt_robot.jobs.deploy import held_out_tasks
    from adapt_robot.reporting.stats import wilson_interval
    from adapt_robot.scoreboard.arms.base import ScoreSettings
    from adapt_robot.scoreboard.arms.experts import ExpertArm, ExpertSpec
    from adapt_robot.scoreboard.results import FIXED
    from adapt_robot.sim.registry import get_family

    family = get_family(family_name)
    engine = d.robot.partition(":")[2]
    tasks = held_out_tasks(family, d.objects, d.split, seed)
    arm = ExpertArm(
        ExpertSpec(name="expert", kind="oracle", type="expert"),
        ScoreSettings(split=d.split, post_episodes=d.post_episodes),
    )
    stage = arm.score(family, engine, tasks, seed).stages[FIXED]
    total = stage.episodes * stage.tasks
    return {
        "engine": engine,
        "objects": stage.tasks,
        "success": wilson_interval(int(stage.successes.sum()), total).to_dict(),
        "return": float(np.mean(stage.mean_return)),
    }


def _ms(value: float | None) -> str:
    """Milliseconds, or ``-`` where none was computed (every adaptation kept a success)."""
    return "-" if value is None else f"{value:.1f}"


def _iv(iv: dict[str, float] | None, pct: bool = False) -> str:
    """``mean [low, high]`` of a JSON interval (``-`` when absent)."""
    if not iv:
        return "-"
    if pct:
        return f"{iv['mean']:.0%} [{iv['low']:.0%}, {iv['high']:.0%}] (n={iv['n']})"
    return f"{iv['mean']:.2f} [{iv['low']:.2f}, {iv['high']:.2f}]"


def summary_table(s: dict[str, Any]) -> str:
    """Markdown table of a demo summary (every figure measured in this run)."""
    t, d = s["train"], s["deploy"]
    sm, loop, sec = d["summary"], d["loop"], s["seconds"]
    ev = t["last_eval"] or {}
    oracle = s.get("oracle") or {}
    nan = float("nan")
    parity = s["export"]["parity"]
    worst = max((v for v in parity.values() if isinstance(v, int | float)), default=float("nan"))
    safety = ", ".join(f"{k} {v}" for k, v in d["safety"].items() if v) or "none"
    rows = [
        (
            "train",
            f"{t['algorithm']}, {t['iterations']} iterations, {t['env_steps']:,} env steps "
            f"({d['trained_engine']}); held-out success in training eval "
            f"{ev.get('pre_success', nan):.0%} -> {ev.get('post_success', nan):.0%}",
            sec["train"],
        ),
        ("export", f"ONNX bundle, largest parity error vs torch {worst:.1e}", sec["export"]),
        (
            "deploy",
            f"{d['robot']} (torch-free process), {len(d['objects'])} held-out "
            f"{d['split']} objects, "
            + (
                f"an adaptation (n={d['steps']} inner steps) after each of K={d['episodes']} "
                "episodes"
                if d.get("sequential")
                else f"K={d['episodes']} episodes then n={d['steps']} inner step(s)"
            ),
            sec["deploy"],
        ),
    ]
    loop_rows = [
        (
            "rate",
            f"{loop['rate_hz']:g} Hz target, {loop['achieved_hz']:.1f} Hz achieved, "
            f"{loop['ticks']:,} ticks",
        ),
        ("deadline misses", loop["misses"]),
        (
            "act() latency p50 / p99 / max",
            f"{loop['act_us']['p50']:.0f} / {loop['act_us']['p99']:.0f} / "
            f"{loop['act_us']['max']:.0f} us",
        ),
        (
            "tick jitter p50 / p99 / max",
            f"{loop['jitter_us']['p50']:.0f} / {loop['jitter_us']['p99']:.0f} / "
            f"{loop['jitter_us']['max']:.0f} us",
        ),
        (
            "adaptation p50 / max (off the control thread)",
            f"{_ms(sm['adapt_ms']['p50'])} / {_ms(sm['adapt_ms']['max'])} ms; outcomes "
            f"{sm['adapt_outcomes']}",
        ),
        ("safety events", safety),
    ]
    lines = [
        f"# adapt-robot demo: {s['family']}",
        "",
        markdown_table(["stage", "what", "seconds"], [(a, b, f"{c:.0f}") for a, b, c in rows]),
        "",
        markdown_table(
            [
                "on the simulated robot",
                "before adaptation",
                "after adaptation",
                "gain",
                "oracle (expert told the object)",
            ],
            [
                (
                    "success (95% CI)",
                    _iv(sm["success_before"], True),
                    _iv(sm["success_after"], True),
                    _iv(sm["success_gain"]),
                    _iv(oracle.get("success"), True),
                ),
                (
                    "return (95% CI)",
                    _iv(sm["return_before"]),
                    _iv(sm["return_after"]),
                    _iv(sm["return_gain"]),
                    f"{oracle['return']:.2f}" if "return" in oracle else "-",
                ),
            ],
        ),
        "",
        markdown_table(["real-time loop", "figure"], loop_rows),
    ]
    return "\n".join(lines)
