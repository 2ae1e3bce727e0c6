"""Sampler throughput on grasp (MuJoCo): 1 process, 2 processes and 2 Ray actors, one run.

``python -c "from adapt_robot.bench.sampler_bench import run_sampler_bench as r; print(r())"``
"""

from __future__ import annotations

import time

import numpy as np
import torch

from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.samplers import make_sampler
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.sim.registry import get_family


def run_sampler_bench(tasks: int = 8, episodes: int = 5, calls: int = 3) -> str:
    """Markdown table: env steps/s and per-call overhead (wall minus mean worker compute)."""
    family = get_family("grasp")
    pol = GaussianMLPPolicy(family.obs_spec.dim, family.action_spec.dim, PolicyConfig())
    params = pol.init_params(torch.Generator().manual_seed(0))
    task_list = family.sample_tasks(np.random.default_rng(0), tasks, "train")
    kinds: list[tuple[str, str, int]] = [("1 process", "process", 1), ("2 processes", "process", 2)]
    import importlib.util

    has_ray = importlib.util.find_spec("ray") is not None
    if has_ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        kinds.append(("2 Ray actors", "ray", 2))
    rows, base = [], 0.0
    for label, kind, n in kinds:
        cfg = SamplerConfig(kind=kind, num_workers=n, chunk_tasks=tasks // 2)  # type: ignore[arg-type]
        s = make_sampler(family, pol, cfg)
        try:
            s.sample(params, task_list, np.random.default_rng(0), episodes)  # warm-up
            steps, wall, over = 0, 0.0, 0.0
            for i in range(calls):
                t0 = time.perf_counter()
                r = s.sample(params, task_list, np.random.default_rng(i + 1), episodes)
                dt = time.perf_counter() - t0
                steps, wall = steps + r.env_steps, wall + dt
                over += dt - sum(s.last_chunk_seconds) / n
        finally:
            s.close()
        rate = steps / wall
        base = base or rate
        rows.append(f"| {label} | {rate:,.0f} | {rate / base:.2f}x | {1e3 * over / calls:.0f} |")
    if has_ray:
        ray.shutdown()
    head = (
        f"grasp/mujoco, {tasks} tasks x {episodes} episodes x {family.max_steps} steps per call, "
        f"{calls} calls after a warm-up\n\n"
        "| sampler | env steps/s | vs 1 process | overhead per call (ms) |\n|---|---|---|---|"
    )
    return "\n".join([head, *rows])
