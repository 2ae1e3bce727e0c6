"""``adapt-robot bench sim``: env steps/s next to the raw physics ceiling, in one run.

Per (family, engine):
- ``one env``: the Gymnasium env, closed loop with a small MLP policy (2 x 64, tanh) evaluated
  in numpy between steps;
- ``vector``: :class:`VectorTaskEnv` with B envs, same policy on the batch;
- ceilings on the same scenes, measured in the same run: MuJoCo replays the controls the closed
  loop produced, open loop through ``mujoco.rollout`` calls of the same frame skip (sub-steps)
  with states chained (no threads for one env, 2 threads for B); PyBullet runs a bare
  ``stepSimulation`` loop of the same length.
Figures are medians over ``repeats``; a ratio is closed-loop rate / ceiling.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.errors import UsageError
from adapt_robot.sim.core import gripper


@dataclass(frozen=True)
class BenchRow:
    """Measured rates (env steps per second) for one (family, engine)."""

    family: str
    engine: str
    one_env: float
    one_ceiling: float
    vector: float
    vector_ceiling: float
    batch: int

    @property
    def one_ratio(self) -> float:
        """One env vs its single-thread ceiling."""
        return self.one_env / self.one_ceiling

    @property
    def vector_ratio(self) -> float:
        """Vector env vs its threaded ceiling."""
        return self.vector / self.vector_ceiling


class MlpPolicy:
    """A random tanh MLP in numpy (the cost of a small policy between steps)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        dims = [obs_dim, hidden, hidden, act_dim]
        self.layers = [
            (rng.normal(0, 1 / np.sqrt(i), (i, o)).astype(np.float32), np.zeros(o, np.float32))
            for i, o in itertools.pairwise(dims)
        ]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] for a batch (or one) observation."""
        x = obs.astype(np.float32)
        for w, b in self.layers:
            x = np.tanh(x @ w + b)
        return x


def _median_rate(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def _closed_loop_one(family_name: str, engine: str, steps: int, seed: int) -> float:
    import gymnasium

    from adapt_robot.sim.registry import GYM_IDS, get_family

    env = gymnasium.make(GYM_IDS[family_name], engine=engine, split="train")
    obs_dim, act_dim = get_family(family_name).obs_spec.dim, get_family(family_name).action_spec.dim
    policy = MlpPolicy(obs_dim, act_dim, seed=seed)
    obs, _ = env.reset(seed=seed)
    n, t0 = 0, time.perf_counter()
    while n < steps:
        obs, _, term, trunc, _ = env.step(policy(obs))
        n += 1
        if term or trunc:
            obs, _ = env.reset()
    rate = n / (time.perf_counter() - t0)
    env.close()
    return rate


def _closed_loop_vector(env: Any, steps: int, seed: int) -> tuple[float, list[np.ndarray]]:
    """Steps/s of the vector env and the controls it produced (for the open-loop replay)."""
    policy = MlpPolicy(env.obs_dim, env.act_dim, seed=seed)
    ctrls: list[np.ndarray] = []
    inner_step = env.physics.step

    def recording_step(ctrl: np.ndarray) -> np.ndarray:
        ctrls.append(ctrl.copy())
        return inner_step(ctrl)

    env.physics.step = recording_step
    obs = env.reset(np.random.default_rng(seed))
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, *_ = env.step(policy(obs))
    rate = env.batch * steps / (time.perf_counter() - t0)
    env.physics.step = inner_step
    return rate, ctrls


def _mujoco_ceiling(physics: Any, ctrls: list[np.ndarray], nthread: int, batch: int) -> float:
    """Replay the recorded controls open loop, one ``SUBSTEPS`` rollout per control step.

    States are chained; no policy and no observation code run in between.
    """
    import mujoco
    from mujoco import rollout

    models = physics.models[:batch]
    datas = [mujoco.MjData(models[0]) for _ in range(max(nthread, 1))]
    state = physics.state[:batch].copy()
    out = np.zeros((batch, gripper.SUBSTEPS, state.shape[1]))
    control = np.zeros((batch, gripper.SUBSTEPS, ctrls[0].shape[1]))
    with rollout.Rollout(nthread=nthread) as r:
        t0 = time.perf_counter()
        for ctrl in ctrls:
            control[:] = ctrl[:batch, None, :]
            r.rollout(
                models, datas, state, control, nstep=gripper.SUBSTEPS, state=out, skip_checks=True
            )
            state[:] = out[:, -1]
        dt = time.perf_counter() - t0
    return batch * len(ctrls) / dt


def _bullet_ceiling(physics: Any, steps: int) -> float:
    import pybullet as pb

    client = physics.clients[0]
    t0 = time.perf_counter()
    for _ in range(steps * gripper.SUBSTEPS):
        pb.stepSimulation(physicsClientId=client)
    return steps / (time.perf_counter() - t0)


def bench_pair(
    family_name: str, engine: str, batch: int, steps: int, repeats: int, seed: int = 0
) -> BenchRow:
    """Measure one (family, engine)."""
    from adapt_robot.sim.envs.vector import VectorTaskEnv
    from adapt_robot.sim.registry import get_family

    family = get_family(family_name)
    steps = min(steps, family.max_steps)
    one = _median_rate(lambda: _closed_loop_one(family_name, engine, steps, seed), repeats)
    env = VectorTaskEnv(family, engine, batch)
    env.set_tasks(family.sample_tasks(np.random.default_rng(seed), batch, "train"))
    vec_rates, one_ceil, vec_ceil = [], [], []
    for r in range(repeats):
        rate, ctrls = _closed_loop_vector(env, steps, seed + r)
        vec_rates.append(rate)
        env.reset(np.random.default_rng(seed + r))
        if engine == "mujoco":
            one_ceil.append(_mujoco_ceiling(env.physics, ctrls, 0, 1))
            vec_ceil.append(_mujoco_ceiling(env.physics, ctrls, 2, batch))
        else:
            rate1 = _bullet_ceiling(env.physics, steps)
            one_ceil.append(rate1)
            vec_ceil.append(rate1)
    env.close()
    return BenchRow(
        family_name,
        engine,
        one,
        statistics.median(one_ceil),
        statistics.median(vec_rates),
        statistics.median(vec_ceil),
        batch,
    )


def run_sim_bench(
    families: Sequence[str], engines: Sequence[str], batch: int, steps: int, repeats: int
) -> str:
    """Run the benchmark and return the Markdown table."""
    from adapt_robot.progress import progress
    from adapt_robot.sim.registry import get_family

    if batch < 1 or steps < 1 or repeats < 1:
        raise UsageError("bench: --batch, --steps and --repeats must be >= 1")
    pairs = [(f, e) for f in families for e in engines if e in get_family(f).engines]
    rows = [bench_pair(f, e, batch, steps, repeats) for f, e in progress(pairs, "bench sim")]
    head = (
        f"physics: timestep {gripper.TIMESTEP * 1000:g} ms x {gripper.SUBSTEPS} sub-steps = "
        f"{gripper.CONTROL_HZ:g} Hz control; medians of {repeats} runs; env steps/s\n\n"
        f"| family | engine | one env | ceiling (1 thread) | ratio | vector B={batch} | "
        "ceiling | ratio |\n|---|---|---|---|---|---|---|---|"
    )
    body = [
        f"| {r.family} | {r.engine} | {r.one_env:,.0f} | {r.one_ceiling:,.0f} | "
        f"{r.one_ratio:.0%} | {r.vector:,.0f} | {r.vector_ceiling:,.0f} | {r.vector_ratio:.0%} |"
        for r in rows
    ]
    return "\n".join([head, *body])
