"""The training loop: iterations, metrics, evaluation, atomic checkpoints, resume.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON object
per iteration; ``eval`` holds pre/post-adaptation figures on held-out tasks when evaluated) and
``checkpoint.pt`` (the latest checkpoint, replaced atomically: temp file, fsync, ``os.replace``).
A resumed run continues the numpy RNG, optimiser and normaliser state, so it gives the same
numbers as an uninterrupted run. A non-finite loss stops the run with
:class:`TrainingDiverged`; the last good checkpoint is left as it was.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adapt_robot.config import ConfigError, dump, to_dict
from adapt_robot.errors import CheckpointError, InputNotFound, OutputExists
from adapt_robot.meta.algorithms import ALGORITHMS, Learner, TrainingDiverged
from adapt_robot.meta.samplers import make_sampler
from adapt_robot.meta.train_config import TrainConfig, build_train_config
from adapt_robot.meta.warm_start import warm_start
from adapt_robot.reporting.loggers import MetricsLog

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
FORMAT = 1


def build_learner(cfg: TrainConfig) -> Learner:
    """Family, policy, sampler and learner for ``cfg`` (fresh parameters from ``cfg.seed``)."""
    from adapt_robot.sim.registry import get_family

    family = get_family(cfg.family)
    learner_class = ALGORITHMS[cfg.algo.name][1]
    policy = learner_class.make_policy(family, cfg.policy)
    if cfg.policy.module and policy.kind != "module":
        raise ConfigError(
            f"policy.module: {cfg.algo.name} trains its own policy ({type(policy).__name__}), "
            "not a network of yours; remove policy.module"
        )
    sampler = make_sampler(family, policy, cfg.sampler)
    factory: Callable[..., Learner] = learner_class
    return factory(policy, sampler, cfg.algo, cfg.seed)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file in the same directory, fsync, then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain data only: ``weights_only``)."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"{p}: no checkpoint")
    ckpt: dict[str, Any] = torch.load(p, weights_only=True)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p}: checkpoint format {ckpt.get('format')!r}, expected {FORMAT}")
    return ckpt


def load_run(run_dir: str | Path) -> tuple[TrainConfig, Learner, dict[str, Any]]:
    """Rebuild the learner of a run from its checkpoint (for evaluation and export)."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT)
    cfg = build_train_config(ckpt["config"])
    learner = build_learner(cfg)
    learner.load_state_dict(ckpt["learner"])
    return cfg, learner, ckpt


class Trainer:
    """Runs one training job into ``cfg.out_dir``."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.out_dir)
        self.ckpt_path = self.run_dir / CHECKPOINT
        self.metrics_path = self.run_dir / METRICS
        self._started = time.perf_counter()

    def run(self, resume: bool = False) -> Path:
        """Train until the budget is spent; returns the run directory."""
        cfg = self.cfg
        self._started = time.perf_counter()
        torch.set_num_threads(cfg.threads)
        learner = build_learner(cfg)
        rng = np.random.default_rng(cfg.seed)
        iteration, env_steps = 0, 0
        if self.ckpt_path.exists():
            if not resume:
                raise OutputExists(
                    f"{self.ckpt_path}: a run already exists here; resume it (--resume) or "
                    "choose another out_dir"
                )
            iteration, env_steps = self._restore(learner, rng)
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.metrics_path.write_text("")
        dump(cfg, self.run_dir / CONFIG)
        self._metrics = MetricsLog(
            self.run_dir, cfg.loggers, to_dict(cfg), resumed_after=iteration if resume else None
        )
        try:
            self._train(learner, rng, iteration, env_steps)
        finally:
            self._metrics.close()
        return self.run_dir

    def _train(
        self, learner: Learner, rng: np.random.Generator, iteration: int, env_steps: int
    ) -> None:
        cfg = self.cfg
        if iteration == 0 and env_steps == 0 and cfg.warm_start.tasks > 0:
            env_steps = self._warm_start(learner, rng)
        family = learner.sampler.family
        eval_tasks = list(
            family.sample_tasks(
                np.random.default_rng([cfg.seed, 7]), cfg.eval.tasks, cfg.eval.split
            )
        )
        try:
            self._loop(learner, rng, iteration, env_steps, eval_tasks)
        finally:
            learner.close()

    def _loop(
        self,
        learner: Learner,
        rng: np.random.Generator,
        iteration: int,
        env_steps: int,
        eval_tasks: list[Any],
    ) -> None:
        cfg = self.cfg
        deadline = self._started + 60.0 * cfg.budget.minutes if cfg.budget.minutes > 0 else None
        while iteration < cfg.budget.iterations and env_steps < cfg.budget.env_steps:
            t0 = time.perf_counter()
            try:
                metrics = learner.iteration(rng)
            except TrainingDiverged as err:
                saved = (
                    f"the last good checkpoint {self.ckpt_path} is intact"
                    if self.ckpt_path.exists()
                    else "no checkpoint was written yet"
                )
                raise TrainingDiverged(
                    f"iteration {iteration + 1}: {err} Training stopped; {saved}."
                ) from err
            iteration += 1
            env_steps += int(metrics["env_steps"])
            seconds = time.perf_counter() - t0
            out_of_time = deadline is not None and time.perf_counter() >= deadline
            last = (
                iteration >= cfg.budget.iterations
                or env_steps >= cfg.budget.env_steps
                or out_of_time
            )
            record: dict[str, Any] = {
                "iteration": iteration,
                "total_env_steps": env_steps,
                "env_steps_per_s": metrics["env_steps"] / max(seconds, 1e-9),
                "seconds": seconds,
                **metrics,
            }
            if iteration % cfg.eval.every == 0 or last:
                eval_rng = np.random.default_rng([cfg.seed, 11, iteration])
                record["eval"] = learner.evaluate(eval_tasks, eval_rng, cfg.eval.episodes_per_task)
            self._metrics.write(record)
            self._log(record)
            if iteration % cfg.checkpoint_every == 0 or last:
                self._save(learner, rng, iteration, env_steps)
            if out_of_time:
                print(
                    f"[train {cfg.algo.name}] budget.minutes={cfg.budget.minutes:g} reached "
                    f"after iteration {iteration}; checkpoint written",
                    file=sys.stderr,
                    flush=True,
                )
                break

    def _warm_start(self, learner: Learner, rng: np.random.Generator) -> int:
        """Clone the experts into the fresh params, log it as iteration 0, checkpoint it."""
        cfg = self.cfg
        sampler = learner.sampler
        print(
            f"[train {cfg.algo.name}] warm start: expert demonstrations on "
            f"{cfg.warm_start.tasks} train tasks x {cfg.warm_start.episodes_per_task} episodes",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.perf_counter()
        stats = warm_start(
            learner.policy, learner.params, sampler.family, sampler.engine, cfg.warm_start, cfg.seed
        )
        env_steps = int(stats["env_steps"])
        record = {
            "iteration": 0,
            "total_env_steps": env_steps,
            "seconds": time.perf_counter() - t0,
            "warm_start": stats,
        }
        self._metrics.write(record)
        print(
            f"[train {cfg.algo.name}] warm start: {env_steps} steps, expert success "
            f"{stats['demo_success']:.2f}, cloning loss {stats['loss_first']:.4f} -> "
            f"{stats['loss_last']:.4f} ({record['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        self._save(learner, rng, 0, env_steps)
        return env_steps

    def _save(
        self, learner: Learner, rng: np.random.Generator, iteration: int, env_steps: int
    ) -> None:
        for k, v in learner.params.items():
            if not bool(torch.isfinite(v).all()):
                raise TrainingDiverged(f"params.{k} is not finite; checkpoint not written")
        atomic_save(
            {
                "format": FORMAT,
                "iteration": iteration,
                "env_steps": env_steps,
                "algo": self.cfg.algo.name,
                "config": to_dict(self.cfg),
                "rng": json.dumps(rng.bit_generator.state),
                "learner": learner.state_dict(),
            },
            self.ckpt_path,
        )

    def _restore(self, learner: Learner, rng: np.random.Generator) -> tuple[int, int]:
        ckpt = load_checkpoint(self.ckpt_path)
        _check_same_run(ckpt["config"], to_dict(self.cfg))
        learner.load_state_dict(ckpt["learner"])
        rng.bit_generator.state = json.loads(ckpt["rng"])
        iteration = int(ckpt["iteration"])
        # Drop metrics of iterations after the checkpoint (they are about to be redone).
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        kept = [ln for ln in lines if (i := _iteration_of(ln)) is not None and i <= iteration]
        tmp = self.metrics_path.with_name(f".{METRICS}.tmp")
        tmp.write_text("".join(ln + "\n" for ln in kept))
        os.replace(tmp, self.metrics_path)
        return iteration, int(ckpt["env_steps"])

    def _log(self, r: dict[str, Any]) -> None:
        ev = r.get("eval")
        tail = (
            f" | eval pre {ev['pre_return']:.2f} post {ev['post_return']:.2f} "
            f"success {ev['pre_success']:.2f}->{ev['post_success']:.2f}"
            if ev
            else ""
        )
        post = f" post {r['post_return']:.2f}" if "post_return" in r else ""
        success = f" success {r['pre_success']:.2f}"
        if "post_success" in r:
            success += f"->{r['post_success']:.2f}"
        print(
            f"[train {self.cfg.algo.name}] it {r['iteration']}/{self.cfg.budget.iterations} "
            f"steps {r['total_env_steps']} ({r['env_steps_per_s']:.0f}/s) "
            f"return pre {r['pre_return']:.2f}{post}{success}{tail}",
            file=sys.stderr,
            flush=True,
        )


def _iteration_of(line: str) -> int | None:
    """Iteration of a metrics line; None for a blank or torn line (a kill mid-write)."""
    try:
        return int(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return None


def _check_same_run(saved: dict[str, Any], now: dict[str, Any]) -> None:
    """A resumed run must have the saved config, except its budget and its metric sinks.

    The budget may be extended; ``loggers`` change where figures go, not what is trained. The
    saved config is read with today's defaults first, so a setting added since the run
    started (at its default) does not block the resume.
    """
    saved = to_dict(build_train_config(saved))
    for key in sorted(set(saved) | set(now)):
        if key in ("budget", "loggers"):
            continue
        if saved.get(key) != now.get(key):
            raise ConfigError(
                f"{key}: differs from the checkpoint's config ({saved.get(key)!r} there, "
                f"{now.get(key)!r} now); resume with the same launch file and overrides"
            )
