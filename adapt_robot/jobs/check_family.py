"""``adapt-robot check-family [MODULE:]NAME``: the plug-in contract, checked on a user's family.

In the spirit of Stable-Baselines3's ``check_env``: each check runs the family through the
code paths training, evaluation, the scoreboard and deploy use (its task sampler, the vector
env, pickling for worker processes, the reports' task records, the expert if it has one) and
says what failed and how to fix it. ``MODULE`` is imported first (it registers the family);
built-in families need none (``adapt-robot check-family grasp``).
"""

from __future__ import annotations

import importlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.config import ConfigError
from adapt_robot.reporting.tables import markdown_table

ROLLOUT_SEED = 123
"""Seed of the reset and the random actions of the determinism checks."""


@dataclass(frozen=True)
class Check:
    """One check's verdict."""

    name: str
    ok: bool
    detail: str


def _family(spec: str) -> Any:
    from adapt_robot.sim.registry import get_family

    module, _, name = spec.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(
                f"check-family: cannot import {module!r} ({err}); put its folder on PYTHONPATH"
            ) from None
    try:
        return get_family(name)
    except ValueError as err:
        raise ConfigError(f"check-family: {err}") from None


def _rollout(family: Any, engine: str, tasks: list[Any], steps: int) -> np.ndarray:
    """Observations ``[steps + 1, B, O]`` of ``tasks`` under seeded random actions."""
    from adapt_robot.sim.envs.vector import VectorTaskEnv

    env = VectorTaskEnv(family, engine, len(tasks))
    try:
        env.set_tasks(tasks)
        obs = [env.reset(np.random.default_rng(ROLLOUT_SEED))]
        rng = np.random.default_rng(ROLLOUT_SEED + 1)
        for _ in range(steps):
            action = rng.uniform(-1, 1, (len(tasks), family.action_spec.dim))
            obs.append(env.step(action)[0])
        return np.stack(obs)
    finally:
        env.close()


def _episode(family: Any, engine: str, task: Any) -> tuple[int, bool, bool]:
    """Ticks until done with zero actions, whether it ended, and its episode success flag."""
    from adapt_robot.sim.envs.vector import VectorTaskEnv

    env = VectorTaskEnv(family, engine, 1)
    try:
        env.set_tasks([task])
        env.reset(np.random.default_rng(ROLLOUT_SEED))
        ticks = 0
        while not env.done[0] and ticks < family.max_steps + 1:
            env.step(np.zeros((1, family.action_spec.dim)))
            ticks += 1
        return ticks, bool(env.done[0]), bool(env.episode_success[0])
    finally:
        env.close()


def check_family(spec: str, engine: str | None = None, tasks: int = 4) -> list[Check]:
    """Run every check on family ``[MODULE:]NAME`` in ``engine`` (default: its first)."""
    family = _family(spec)
    engine = engine or family.engines[0]
    out: list[Check] = []

    def run(name: str, fn: Callable[[], str]) -> None:
        try:
            out.append(Check(name, True, fn()))
        except Exception as err:  # a broken family: report it, go on with the other checks
            out.append(Check(name, False, f"{type(err).__name__}: {err}"))

    def spaces() -> str:
        obs, act = family.obs_spec, family.action_spec
        if obs.dim < 1 or act.dim < 1:
            raise ValueError(f"empty observation ({obs.dim}) or action ({act.dim}) vector")
        if (np.asarray(act.low) < -1).any() or (np.asarray(act.high) > 1).any():
            raise ValueError("actions must lie in [-1, 1]; rescale them inside the env")
        return f"observation {obs.dim}, action {act.dim} in [-1, 1], {family.max_steps} steps"

    drawn: dict[str, list[Any]] = {}

    def sampler() -> str:
        for split in ("train", "test"):
            a = family.sample_tasks(np.random.default_rng(7), tasks, split)
            b = family.sample_tasks(np.random.default_rng(7), tasks, split)
            if len(a) != tasks:
                raise ValueError(f"{split}: asked {tasks} tasks, got {len(a)}")
            if [family.describe_task(t) for t in a] != [family.describe_task(t) for t in b]:
                raise ValueError(f"{split}: the same seed drew different tasks")
            drawn[split] = list(a)
        return f"{tasks} train and {tasks} test tasks, the same for the same seed"

    def records() -> str:
        rec = [family.describe_task(t) for t in drawn["train"]]
        json.dumps(rec)
        pickle.loads(pickle.dumps(drawn["train"]))
        return f"JSON task records (e.g. {json.dumps(rec[0])[:60]}), tasks pickle"

    def pickles() -> str:
        again = pickle.loads(pickle.dumps(family))
        if again.name != family.name:
            raise ValueError(f"unpickled as {again.name!r}")
        return "the family pickles by name (worker processes find it)"

    def seeds() -> str:
        a = _rollout(family, engine, drawn["train"][:2], 5)
        b = _rollout(family, engine, drawn["train"][:2], 5)
        if not np.array_equal(a, b):
            raise ValueError("the same seed and actions gave different observations")
        return "same seed, same actions -> the same observations"

    def isolation() -> str:
        a, b, c = drawn["train"][0], drawn["train"][1], drawn["test"][0]
        first = _rollout(family, engine, [a, b], 5)[:, 0]  # env 0's task is the same in both;
        second = _rollout(family, engine, [a, c], 5)[:, 0]  # only env 1's differs
        if not np.allclose(first, second, atol=1e-6):
            raise ValueError(
                "env 0's observations depend on env 1's task: set_task must act on its own env"
            )
        return "each env follows its own task (set_task isolation)"

    def time_limit() -> str:
        ticks, ended, _ = _episode(family, engine, drawn["train"][0])
        if not ended or ticks > family.max_steps:
            raise ValueError(f"an episode did not end within max_steps={family.max_steps}")
        return f"an episode ends by max_steps ({ticks} ticks with zero actions)"

    def success() -> str:
        rule = family.success_rule
        if rule not in ("any", "final"):
            raise ValueError(f"success_rule {rule!r}: expected 'any' or 'final'")
        _, _, ok = _episode(family, engine, drawn["train"][0])
        return f"success_rule {rule!r}; zero actions succeed: {ok}"

    def expert() -> str:
        from adapt_robot.sim.experts.evaluate import run_experts

        try:
            family.expert(drawn["train"][0])
        except ValueError as err:
            return f"none ({err})"
        result = run_experts(family, engine, drawn["train"], seed=0, batch=len(drawn["train"]))
        rate = float(np.mean(result.success))
        return f"the expert told each task succeeds on {rate:.0%} of {tasks} train tasks"

    run("spaces", spaces)
    run("task sampler", sampler)
    run("pickling", pickles)
    for name, fn in (
        ("task records", records),
        ("seeds", seeds),
        ("set_task isolation", isolation),
        ("time limit", time_limit),
        ("success", success),
        ("expert", expert),
    ):
        if "train" not in drawn:  # these run on sampled tasks
            out.append(Check(name, False, "not run: the task sampler failed"))
        else:
            run(name, fn)
    return out


def report(spec: str, checks: list[Check]) -> str:
    """The checks as a Markdown table with a verdict line."""
    rows = [[c.name, "ok" if c.ok else "FAILED", c.detail.replace("|", "\\|")] for c in checks]
    failed = [c.name for c in checks if not c.ok]
    verdict = (
        f"{spec}: every check passed"
        if not failed
        else f"{spec}: {len(failed)} check(s) failed: {', '.join(failed)}"
    )
    return markdown_table(["check", "result", "detail"], rows) + "\n\n" + verdict
