"""The runtime runs with torch, mujoco, pybullet (and the training code) unimportable.

A robot installs ``adapt-robot`` without the ``train`` extra. A subprocess blocks those
packages with a ``sys.meta_path`` finder, imports every module of ``adapt_robot.runtime``,
loads a bundle and runs the whole adapter: act, observe (with the reward given, and computed
by ``reward.onnx``), adapt synchronously and in the background; for an RL² bundle, a trial of
two episodes with the recurrent state carried (and ``adapt()`` refused: it has no step); for a
PEARL bundle, the same as a gradient bundle, its adaptation the posterior of ``encoder.onnx``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = (
    "torch",
    "mujoco",
    "pybullet",
    "pybullet_data",
    "gymnasium",
    "onnx",
    "sim",
    "export",
    "adapt_robot.sim",
    "adapt_robot.export",
)

SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"{name} is blocked: the runtime must not import it")
            return None

    sys.meta_path.insert(0, Block())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker did not block torch")

    import numpy as np
    import adapt_robot.runtime as rt

    for info in pkgutil.walk_packages(rt.__path__, "adapt_robot.runtime."):
        importlib.import_module(info.name)

    for path in sys.argv[2:]:
        bundle = rt.Bundle.load(path)
        m = bundle.manifest
        il = m.inner_loop
        if m.memory.recurrent:  # RL2: a trial of two episodes, the state carried; no step
            adapter = rt.OnlineAdapter(bundle, seed=0)
            obs = np.zeros(m.observation.dim, dtype=np.float32)
            for t in range(2 * il.horizon):
                action = adapter.act(obs)
                assert np.all(np.isfinite(action))
                nxt = obs + 0.001 * np.ones_like(obs)
                reward = None if bundle.has_reward else 0.5
                adapter.observe(reward, done=(t + 1) % il.horizon == 0, next_obs=nxt)
                obs = nxt
            stats = adapter.stats()
            assert stats["adapts_in_state"] == 1 and stats["adapt_attempts"] == 0, stats
            try:
                adapter.adapt()
            except RuntimeError as err:
                assert "recurrent state" in str(err)
            else:
                raise SystemExit("adapt() ran on a recurrent bundle")
            adapter.close()
            print(m.family, "recurrent", stats["episodes"])
            continue
        adapter = rt.OnlineAdapter(bundle, mode=rt.EpisodicMode(episodes=1), seed=0)
        rng = np.random.default_rng(0)
        obs = rng.normal(size=m.observation.dim).astype(np.float32) * 0.01
        for t in range(il.horizon):
            action = adapter.act(obs)
            nxt = obs + 0.001 * rng.normal(size=obs.shape).astype(np.float32)
            reward = None if bundle.has_reward else -float(np.abs(action).sum())
            adapter.observe(reward, done=t == il.horizon - 1, next_obs=nxt)
            obs = nxt
        assert np.all(np.isfinite(adapter.act(np.full(m.observation.dim, np.nan))))
        adapter.close()  # waits for the background adaptation auto_adapt started
        stats = adapter.stats()
        assert stats["adapt_attempts"] == 1 and stats["obs_faults"] == 1, stats
        sync = rt.OnlineAdapter(bundle, mode=rt.EpisodicMode(episodes=1), auto_adapt=False)
        for t in range(il.horizon):
            sync.act(obs)
            sync.observe(0.1 * t, done=t == il.horizon - 1)
        result = sync.adapt()
        assert result.reason in ("accepted", "loss_increase"), result
        if m.memory.posterior:  # PEARL: z from the prior first, then the posterior mean
            assert stats["adapts_by_posterior"] == 1 and result.steps == 1, (stats, result)
            assert np.all(np.isfinite(sync.params["context"])), sync.params["context"]
            assert np.isfinite(sync.stats()["last_posterior_var"])
            print(m.family, "posterior", result.reason, stats["adaptations"])
            continue
        print(m.family, result.reason, stats["adaptations"])

    leaked = sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED)
    assert not leaked, leaked
    print("runtime-ok")
    """
)


def test_runtime_runs_without_the_training_stack(
    point_bundle: Path, grasp_bundle: Path, rl2_grasp_bundle: Path, pearl_bundle: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bundles = [str(b) for b in (point_bundle, grasp_bundle, rl2_grasp_bundle, pearl_bundle)]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(BLOCKED), *bundles],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "runtime-ok" in proc.stdout
    assert "point" in proc.stdout and "grasp" in proc.stdout
    assert "grasp recurrent 2" in proc.stdout
    assert "point posterior accepted 1" in proc.stdout
