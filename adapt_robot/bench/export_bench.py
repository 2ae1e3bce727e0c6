"""Benchmark: one inner step in ONNX Runtime vs torch autograd and torch.func (same process).

Every timing runs on one thread (``torch.set_num_threads(1)``, ONNX Runtime ``intra_op=1``) on
the same random batch; a figure is the median of repeated runs after warm-up. The policy has
the grasp family's sizes (obs 38, action 4) and adapts all parameters with scalar rates. This
is not a timed test: timings depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from adapt_robot.export import graphs, parity
from adapt_robot.meta.inner import init_raw_rates, inner_step, positive_rates
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.reporting.tables import markdown_table
from adapt_robot.runtime.bundle_format import LR_PREFIX

HIDDEN: tuple[tuple[int, ...], ...] = ((64, 64), (256, 256))
CAPACITIES: tuple[int, ...] = (256, 1024, 4096)
OBS_DIM, ACT_DIM = 38, 4


def _median_ms(fn: Callable[[], object], budget_s: float, min_reps: int = 10) -> float:
    """Median wall time of ``fn`` in ms (3 warm-up calls, then until ``budget_s`` or min_reps)."""
    for _ in range(3):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 2000:
            break
    return 1e3 * statistics.median(times)


def bench_one(hidden: tuple[int, ...], n: int, workdir: Path, budget_s: float) -> dict[str, float]:
    """Median ms of one inner step for a policy of ``hidden`` widths and batch capacity ``n``."""
    policy = GaussianMLPPolicy(OBS_DIM, ACT_DIM, PolicyConfig(hidden=hidden))
    params = policy.init_params(torch.Generator().manual_seed(0))
    names = list(params)
    lrs = positive_rates(init_raw_rates(params, policy.adapted_names(params), 0.05, False))
    path = workdir / f"step_{'x'.join(map(str, hidden))}_{n}.onnx"
    graphs.export_adapt_step(path, policy, params, lrs, n)
    rng = np.random.default_rng(0)
    batch = parity.random_batch(policy, params, n, rng)
    sess = parity.session(path, threads=1)
    feed = {k: v.numpy() for k, v in params.items()}
    feed.update({LR_PREFIX + k: v.numpy() for k, v in lrs.items()})
    feed.update(
        obs=batch.obs.numpy(), act=batch.act.numpy(), adv=batch.adv.numpy(), mask=batch.mask.numpy()
    )
    func_step = graphs.adapt_step_fn(policy, names, list(lrs))
    flat = (*params.values(), *lrs.values(), batch.obs, batch.act, batch.adv, batch.mask)
    return {
        "onnxruntime": _median_ms(lambda: sess.run(None, feed), budget_s),
        "autograd": _median_ms(
            lambda: inner_step(policy, params, lrs, batch, create_graph=False), budget_s
        ),
        "func": _median_ms(lambda: func_step(*flat), budget_s),
    }


def run_export_bench(
    budget_s: float = 1.0,
    hidden: Sequence[tuple[int, ...]] = HIDDEN,
    capacities: Sequence[int] = CAPACITIES,
) -> str:
    """Markdown table of medians (ms) and speed-ups of ONNX Runtime over torch.

    One row per policy width in ``hidden`` and batch capacity in ``capacities``; each timing
    runs for about ``budget_s`` seconds.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    head = [
        "policy",
        "N",
        "ONNX Runtime (ms)",
        "torch autograd (ms)",
        "torch.func (ms)",
        "autograd / ORT",
        "torch.func / ORT",
    ]
    rows: list[list[object]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="adapt-robot-bench-") as tmp:
            for widths in hidden:
                for n in capacities:
                    r = bench_one(widths, n, Path(tmp), budget_s)
                    ort_ms = r["onnxruntime"]
                    rows.append(
                        [
                            "x".join(map(str, widths)),
                            n,
                            f"{ort_ms:.3f}",
                            f"{r['autograd']:.3f}",
                            f"{r['func']:.3f}",
                            f"{r['autograd'] / ort_ms:.2f}x",
                            f"{r['func'] / ort_ms:.2f}x",
                        ]
                    )
    finally:
        torch.set_num_threads(threads)
    note = (
        f"\nOne inner step (loss, gradient, SGD update), obs {OBS_DIM}, action {ACT_DIM}, all "
        "parameters adapted; 1 thread; medians of repeated runs in one process. Timings depend "
        "on the machine and its load."
    )
    return markdown_table(head, rows) + "\n" + note
