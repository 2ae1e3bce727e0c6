"""``adapt-robot check-family``: the plug-in contract, on a good and on broken families."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from adapt_robot.cli import main
from adapt_robot.jobs.check_family import check_family, report
from adapt_robot.sim.core.family import Split
from adapt_robot.sim.families.gym_family import gym_task_family
from adapt_robot.sim.registry import family_names, register_family
from tests.meta import plugin_env


class SharedGoalSlider(plugin_env.SliderEnv):
    """set_task writes a class attribute: every env of a batch follows the last task set."""

    shared = plugin_env.SliderTask(goal=0.5)

    def set_task(self, task: plugin_env.SliderTask) -> None:
        SharedGoalSlider.shared = task

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.task = SharedGoalSlider.shared
        self.x = float(np.clip(self.x + 0.1 * float(action[0]) * self.task.goal, -2.0, 2.0))
        return np.array([self.x], dtype=np.float32), 0.0, False, False, {"success": False}


_FRESH = np.random.default_rng()
"""Entropy from the OS: what a sampler that ignores its rng draws from."""


def unseeded_tasks(rng: np.random.Generator, n: int, split: Split) -> list[plugin_env.SliderTask]:
    """Ignores the rng: the same seed draws different tasks."""
    del rng, split
    return [plugin_env.SliderTask(goal=float(_FRESH.uniform(0.3, 0.7))) for _ in range(n)]


def _register(name: str, make_env: Any, sampler: Any) -> None:
    if name not in family_names():
        cls = gym_task_family(name, make_env, sampler, task_type=plugin_env.SliderTask, max_steps=8)
        cls.__module__ = __name__  # pickled by name: this module registers it on import
        register_family(name, cls)


_register("shared_slider", SharedGoalSlider, plugin_env.sample_slider_tasks)
_register("unseeded_slider", plugin_env.make_slider_env, unseeded_tasks)


def test_the_example_plugin_passes_every_check() -> None:
    checks = check_family("tests.meta.plugin_env:slider")
    assert [c.name for c in checks if not c.ok] == []
    assert "every check passed" in report("slider", checks)
    expert = next(c for c in checks if c.name == "expert")
    assert "100%" in expert.detail


def test_a_shared_set_task_fails_the_isolation_check() -> None:
    checks = {c.name: c for c in check_family("shared_slider")}
    assert not checks["set_task isolation"].ok
    assert "set_task must act on its own env" in checks["set_task isolation"].detail
    assert checks["spaces"].ok and checks["time limit"].ok
    assert "none" in checks["expert"].detail and checks["expert"].ok  # no expert: not an error


def test_an_unseeded_sampler_fails_and_the_checks_on_tasks_are_not_run() -> None:
    checks = {c.name: c for c in check_family("unseeded_slider")}
    assert not checks["task sampler"].ok and "the same seed drew different tasks" in (
        checks["task sampler"].detail
    )
    assert checks["seeds"].detail == "not run: the task sampler failed"


def test_cli_prints_the_table_and_exits_2_on_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-family", "tests.meta.plugin_env:slider"]) == 0
    assert main(["check-family", "shared_slider"]) == 2
    captured = capsys.readouterr()
    assert "| set_task isolation | FAILED |" in captured.out
    assert "1 check(s) failed" in captured.err
    assert main(["check-family", "no_such_module_xyz:slider"]) == 2
    assert "cannot import 'no_such_module_xyz'" in capsys.readouterr().err
