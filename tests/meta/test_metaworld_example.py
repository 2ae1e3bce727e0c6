"""Meta-World ML1 through the plug-in protocol: check-family, train -> export -> the adapter.

Runs where Meta-World is installed (``make metaworld`` builds that venv: Meta-World 3.1.1 pins
MuJoCo 3.3.0, so it cannot share the main venv's MuJoCo 4); skipped elsewhere, CI included.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("metaworld", reason="Meta-World is not installed here (make metaworld)")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LAUNCH = EXAMPLES / "metaworld_door_open.yaml"
TINY = [
    "family=mw_door_open_150",
    "budget.iterations=1",
    "sampler.tasks_per_iter=2",
    "sampler.episodes_per_task=2",
    "sampler.kind=local",
    "warm_start.tasks=2",
    "warm_start.episodes_per_task=1",
    "warm_start.epochs=1",
    "eval.tasks=2",
    "eval.episodes_per_task=1",
]


@pytest.fixture(scope="module")
def ml1() -> object:
    if str(EXAMPLES) not in sys.path:
        sys.path.append(str(EXAMPLES))
    return importlib.import_module("metaworld_ml1")


def test_ml1_families_pass_check_family(ml1: object) -> None:
    from adapt_robot.jobs.check_family import check_family, report

    checks = check_family("mw_door_open_150", tasks=2)
    assert all(c.ok for c in checks), report("mw_door_open_150", checks)


def test_train_and_test_tasks_are_ml1s_own_lists(ml1: object) -> None:
    from adapt_robot.sim.registry import get_family

    family = get_family("mw_pick_place")
    train = family.sample_tasks(np.random.default_rng(0), 50, "train")
    test = family.sample_tasks(np.random.default_rng(0), 3, "test")
    assert sorted(t.index for t in train) == list(range(50))  # without replacement up to 50
    assert {t.split for t in test} == {"test"}
    bench = ml1.benchmark("pick-place-v3")  # type: ignore[attr-defined]
    assert test[0].metaworld_task() is bench.test_tasks[test[0].index]


def test_train_export_and_torch_free_adapter_in_metaworlds_loop(
    ml1: object, tmp_path: Path
) -> None:
    from adapt_robot.export.bundle import export_bundle
    from adapt_robot.jobs.train import run_train
    from adapt_robot.runtime import Bundle, EpisodicMode, OnlineAdapter
    from adapt_robot.sim.registry import get_family

    run = run_train(LAUNCH, [*TINY, f"out_dir={tmp_path / 'run'}"], resume=False)
    bundle = Bundle.load(export_bundle(run, tmp_path / "bundle"))
    assert bundle.manifest.family == "mw_door_open_150"
    family = get_family("mw_door_open_150")
    task = family.sample_tasks(np.random.default_rng(1), 1, "test")[0]
    env = ml1.ML1Env("door-open-v3")  # type: ignore[attr-defined]
    env.set_task(task)
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=1), auto_adapt=False, seed=0)
    try:
        for _ in range(2):  # an episode, one adaptation on it, and the next episode
            obs, _ = env.reset(seed=0)
            for _t in range(family.max_steps):
                action = adapter.act(obs)
                assert np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1.0)
                obs, reward, terminated, truncated, _ = env.step(action)
                done = terminated or truncated or _t == family.max_steps - 1
                adapter.observe(reward, done, obs)
                if done:
                    break
            result = adapter.adapt()
            assert result.reason, result
    finally:
        adapter.close()
        env.close()
