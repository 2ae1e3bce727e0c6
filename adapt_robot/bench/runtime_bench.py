"""``adapt-robot bench runtime BUNDLE``: latency, control loop and memory of the on-device adapter.

In one run, on one thread, for one bundle:

- ``act()`` p50/p99/p99.9, deterministic and sampled, next to the **floor**: the same network
  (normaliser, MLP, tanh, clamp to the action bounds) as plain numpy with preallocated buffers,
  checked against ``policy.onnx`` before it is timed; and a torch forward of the same weights
  (``torch.no_grad``, 1 thread) when torch is installed;
- one inner step (``adapt_step.onnx`` on a full batch of ``capacity`` rows; for a posterior
  bundle, PEARL, one ``encoder.onnx`` pass on a full context) and a full adaptation
  (returns, baseline, advantages, ``n`` steps, verdict; a posterior: context, encoder pass,
  verdict) on 10 episodes of the bundle's length, through the adapter's own ``adapt()``,
  against a 10 ms (100 Hz) tick;
- the control loop at each rate for ``seconds`` while adaptations run on the adapter's worker
  (sliding-window mode over the whole capacity, started every 1/5 s when the worker is idle):
  deadline misses, tick lateness, adaptations completed and their duration;
- the peak RSS of a fresh ``python -c`` that imports only ``adapt_robot.runtime``, loads the
  bundle and acts 1000 times, and whether torch, mujoco or pybullet got imported there.

Targets, ``met`` or ``NOT met`` from the figures: act() p99 <= 2x the numpy floor; a full
adaptation within one 100 Hz tick; no deadline miss at 100 Hz; peak RSS <= 120 MB.

**One thread.** Numpy's BLAS reads ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` once, when numpy is first imported, so they must be ``1`` before that:
``adapt-robot bench runtime`` sets them before importing anything heavy; from Python, export them
before starting the interpreter. ONNX Runtime sessions already run one intra-op and one inter-op
thread (:class:`~adapt_robot.runtime.sessions.SessionSettings`); torch is pinned with
``torch.set_num_threads(1)``. The table prints the variables as the bench saw them. Timings
depend on the machine and its load: a benchmark, not a test.

:func:`measure_runtime` returns a :class:`~adapt_robot.bench.runtime_report.RuntimeBenchResult`
(``table()``, ``to_json()``, ``targets``); :func:`run_runtime_bench` returns the table. The
floor lives in :mod:`adapt_robot.bench.runtime_floor`, the table in
:mod:`adapt_robot.bench.runtime_report`.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from adapt_robot import BLAS_THREAD_VARS
from adapt_robot.bench.runtime_floor import NumpyPolicy, check_floor, torch_forward
from adapt_robot.bench.runtime_report import Latency, LoopResult, RssResult, RuntimeBenchResult
from adapt_robot.errors import UsageError
from adapt_robot.runtime import (
    AdaptResult,
    Bundle,
    EpisodicMode,
    OnlineAdapter,
    SafetyConfig,
    SessionSettings,
    SlidingWindowMode,
)
from adapt_robot.runtime.adaptation import InnerLoop
from adapt_robot.runtime.bundle_format import Manifest
from adapt_robot.runtime.loop import ControlLoop, LoopConfig
from adapt_robot.runtime.posterior import PosteriorUpdate
from adapt_robot.runtime.sessions import CPU, create_session

ADAPT_EPISODES = 10
"""Episodes per full adaptation (fewer when the bundle's capacity holds fewer)."""
ADAPTS_PER_S = 5.0
"""Adaptations started per second in the loop (when the worker is idle)."""
HEAVY = ("torch", "mujoco", "pybullet")
"""Packages a runtime-only process must not import."""


# ------------------------------------------------------------------ timing
def _time_calls(fn: Callable[[np.ndarray], object], inputs: list[np.ndarray], n: int) -> np.ndarray:
    """Nanoseconds of each of ``n`` calls of ``fn`` (inputs cycled), the collector off."""
    out = np.empty(n, dtype=np.int64)
    clock, k = time.perf_counter_ns, len(inputs)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(n):
            x = inputs[i % k]
            t0 = clock()
            fn(x)
            out[i] = clock() - t0
    finally:
        if enabled:
            gc.enable()
    return out


def _interleaved(
    fns: Mapping[str, Callable[[np.ndarray], object]],
    inputs: list[np.ndarray],
    calls: int,
    repeats: int,
) -> dict[str, Latency]:
    """µs latencies of each function; repeats alternate between them (same load for all)."""
    for fn in fns.values():
        _time_calls(fn, inputs, min(calls, 2000))
    runs: dict[str, list[np.ndarray]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            runs[k].append(_time_calls(fn, inputs, calls))
    return {k: Latency.from_ns(v, "us") for k, v in runs.items()}


# ------------------------------------------------------------------ a cheap robot
class BenchRobot:
    """Random finite observations (a pool cycled), episodes of ``horizon`` ticks.

    The reward is ``-|action|^2``, or None when ``device_reward`` (``reward.onnx`` computes it).
    """

    def __init__(self, pool: np.ndarray, act_dim: int, horizon: int, device_reward: bool) -> None:
        self._pool, self._act_dim, self.horizon = list(pool), act_dim, horizon
        self._device_reward = device_reward
        self._i = self._t = 0
        self._reward = 0.0

    @property
    def obs_dim(self) -> int:
        """Observation length."""
        return int(self._pool[0].shape[0])

    @property
    def action_dim(self) -> int:
        """Action length."""
        return self._act_dim

    def reset(self) -> np.ndarray:
        """A new episode."""
        self._t = 0
        return self.read_obs()

    def read_obs(self) -> np.ndarray:
        """The current observation."""
        return self._pool[self._i]

    def send_action(self, action: np.ndarray) -> None:
        """Score the action and move to the next observation."""
        self._reward = -float(np.dot(action, action))
        self._i = (self._i + 1) % len(self._pool)
        self._t += 1

    def reward(self) -> float | None:
        """The synthetic reward, or None for a device-computed one."""
        return None if self._device_reward else self._reward

    def done(self) -> bool:
        """The episode reached ``horizon`` ticks."""
        return self._t >= self.horizon

    def success(self) -> bool | None:
        """Unknown."""
        return None

    def drive(self, adapter: OnlineAdapter, episodes: int) -> None:
        """Run ``episodes`` whole episodes of act/observe on ``adapter`` (no clock)."""
        for _ in range(episodes):
            obs = self.reset()
            while True:
                self.send_action(adapter.act(obs))
                obs = self.read_obs()
                adapter.observe(self.reward(), self.done(), obs)
                if self.done():
                    break


class _AdaptingController:
    """The adapter, plus an adaptation started every ``every`` ticks when the worker is idle.

    The adapter's own ``adapt_async`` runs it (``auto_adapt`` off only so that each result's
    duration can be collected from its future).
    """

    def __init__(self, adapter: OnlineAdapter, every: int) -> None:
        self.adapter, self.every = adapter, every
        self.since = self.deferred = self.errors = 0
        self.durations_ms: list[float] = []
        self.reasons: Counter[str] = Counter()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.adapter.act(obs)

    def observe(self, reward: float | None, done: bool, next_obs: np.ndarray | None = None) -> None:
        self.adapter.observe(reward, done, next_obs)
        self.since += 1
        if self.since < self.every:
            return
        if self.adapter.adapting:
            self.deferred += 1
            return
        self.since = 0
        self.adapter.adapt_async().add_done_callback(self._done)

    def _done(self, future: Future[AdaptResult]) -> None:
        if future.exception() is not None:
            self.errors += 1
            return
        result = future.result()
        self.durations_ms.append(result.duration_ms)
        self.reasons[result.reason] += 1

    def stats(self) -> dict[str, float | int]:
        return self.adapter.stats()


# ------------------------------------------------------------------ measurements
def _obs_pool(manifest: Manifest, n: int, seed: int) -> np.ndarray:
    """``n`` observations around the normaliser's statistics (float32)."""
    norm = manifest.normalizer
    rng = np.random.default_rng(seed)
    mean = np.asarray(norm.mean) if norm.enabled else np.zeros(manifest.observation.dim)
    std = np.sqrt(np.asarray(norm.var)) if norm.enabled else np.ones(manifest.observation.dim)
    return (mean + std * rng.standard_normal((n, mean.size))).astype(np.float32)


def _inner_step(bundle: Bundle, pool: np.ndarray, calls: int) -> Latency:
    """One adaptation step on a full batch of ``capacity`` rows, as the adapter runs it.

    ``adapt_step.onnx`` through an ``InnerLoop``; for a posterior bundle ``encoder.onnx``
    through a ``PosteriorUpdate`` (transitions between consecutive pool observations).
    """
    m = bundle.manifest
    rng = np.random.default_rng(1)
    n = m.inner_loop.capacity
    rows = np.arange(n) % len(pool)
    params = dict(bundle.params)
    step: Callable[[], object]
    if m.memory.posterior:
        session = create_session(bundle.graph_path("encoder"), [CPU], SessionSettings())
        update = PosteriorUpdate(session, m, SafetyConfig())
        ctx = update.batch
        ctx.obs[:], ctx.next_obs[:] = pool[rows], pool[(rows + 1) % len(pool)]
        ctx.act[:] = rng.uniform(-1, 1, ctx.act.shape)
        ctx.rew[:] = rng.standard_normal(n)
        ctx.mask[:] = 1.0
        step = functools.partial(update.posterior, params)
    else:
        session = create_session(bundle.graph_path("adapt_step"), [CPU], SessionSettings())
        inner = InnerLoop(session, m, bundle.lrs, SafetyConfig())
        inner.batch.obs[:] = pool[rows]
        inner.batch.act[:] = rng.uniform(-1, 1, inner.batch.act.shape)
        inner.batch.adv[:] = rng.standard_normal(n)
        inner.batch.mask[:] = 1.0
        step = functools.partial(inner.step, params)
    runs = _time_calls(lambda _: step(), [pool[0]], calls + 3)[3:]
    return Latency.from_ns([runs], "ms")


def _adaptation(bundle: Bundle, pool: np.ndarray, calls: int) -> tuple[Latency, Counter[str], int]:
    """Wall time of ``adapter.adapt()`` after K fresh episodes each time; reasons; K."""
    il = bundle.manifest.inner_loop
    k = max(1, min(ADAPT_EPISODES, il.capacity // il.horizon))
    robot = BenchRobot(pool, bundle.manifest.action.dim, il.horizon, bundle.has_reward)
    adapter = OnlineAdapter(bundle, mode=EpisodicMode(episodes=k, once=False), auto_adapt=False)
    times, reasons = [], Counter[str]()
    with adapter:
        for i in range(calls + 2):
            robot.drive(adapter, k)
            t0 = time.perf_counter_ns()
            result = adapter.adapt()
            if i >= 2:  # warm-up
                times.append(time.perf_counter_ns() - t0)
                reasons[result.reason] += 1
    return Latency.from_ns([np.array(times)], "ms"), reasons, k


def _loop(bundle: Bundle, pool: np.ndarray, rate: float, seconds: float) -> LoopResult:
    """The control loop at ``rate`` for ``seconds`` with adaptations alongside."""
    il = bundle.manifest.inner_loop
    every = max(1, round(rate / ADAPTS_PER_S))
    mode = SlidingWindowMode(every=every, window=il.capacity, steps=il.steps)
    adapter = OnlineAdapter(bundle, mode=mode, auto_adapt=False, seed=1)
    controller = _AdaptingController(adapter, every)
    robot = BenchRobot(pool, bundle.manifest.action.dim, il.horizon, bundle.has_reward)
    window = max(65536, int(rate * seconds) + 16)
    loop = ControlLoop(
        robot, controller, LoopConfig(rate_hz=rate, duration_s=seconds, window=window)
    )
    with adapter:  # close() waits for the last adaptation
        stats = loop.run()
    nan = math.nan
    return LoopResult(
        rate_hz=rate,
        seconds=seconds,
        ticks=stats.ticks,
        misses=stats.misses + stats.reset_misses,
        skipped_slots=stats.skipped_slots,
        lateness_us=Latency(
            unit="us",
            p50=stats.jitter_us_p50,
            p99=stats.jitter_us_p99,
            p999=nan,
            max=stats.jitter_us_max,
            calls=stats.ticks,
        ),
        compute_us=Latency(
            unit="us",
            p50=stats.compute_us_p50,
            p99=stats.compute_us_p99,
            p999=nan,
            max=stats.compute_us_max,
            calls=stats.ticks,
        ),
        adapt_every=every,
        adaptations=len(controller.durations_ms),
        accepted=controller.reasons["accepted"],
        deferred=controller.deferred,
        adapt_ms=Latency.from_ns([np.array(controller.durations_ms) * 1e6], "ms"),
    )


_RSS_SCRIPT = """
import json, sys
import numpy as np
import adapt_robot.runtime as rt
bundle = rt.Bundle.load(sys.argv[1])
adapter = rt.OnlineAdapter(bundle, auto_adapt=False)
rng = np.random.default_rng(0)
obs = rng.standard_normal((16, bundle.manifest.observation.dim)).astype(np.float32)
for i in range(1000):
    adapter.act(obs[i % 16])
adapter.close()
mb = {}
try:
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                mb[key] = int(value.split()[0]) / 1024.0
except OSError:
    pass
heavy = sorted({n.partition(".")[0] for n in sys.modules} & set(sys.argv[2].split(",")))
print(json.dumps({"rss_mb": mb.get("VmRSS"), "hwm_mb": mb.get("VmHWM"), "heavy": heavy}))
"""


def runtime_rss(bundle_dir: str | Path) -> RssResult:
    """Memory of a fresh process running only the runtime (see the module docstring)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **dict.fromkeys(BLAS_THREAD_VARS, "1")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(bundle_dir), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"bench runtime: the RSS probe process failed ({proc.returncode}): "
            f"{proc.stderr.strip()[-2000:]}"
        )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    nan = math.nan
    return RssResult(
        rss_mb=nan if out["rss_mb"] is None else float(out["rss_mb"]),
        peak_mb=nan if out["hwm_mb"] is None else float(out["hwm_mb"]),
        heavy=list(out["heavy"]),
    )


def machine_info() -> dict[str, Any]:
    """CPU model and count, load, library versions and the thread variables."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model
            )
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "threads_env": {v: os.environ.get(v, "unset") for v in BLAS_THREAD_VARS},
    }


def measure_runtime(
    bundle: str | Path,
    *,
    seconds: float = 60.0,
    rates: Sequence[float] = (100.0, 1000.0),
    calls: int = 20000,
    repeats: int = 3,
    adapt_calls: int = 30,
    step_calls: int = 200,
) -> RuntimeBenchResult:
    """Run every measurement of the module docstring on ``bundle`` (a directory)."""
    if min(calls, repeats, adapt_calls, step_calls) < 1 or not seconds > 0:
        raise UsageError("bench runtime: calls, repeats, adapt_calls, step_calls >= 1; seconds > 0")
    b = Bundle.load(bundle)
    b.require_adaptation_step("adapt-robot bench runtime")
    m = b.manifest
    machine = machine_info()
    pool = _obs_pool(m, 1024, seed=0)
    parity = {"numpy_vs_onnx": check_floor(b, pool[:64])}
    rss = runtime_rss(b.root)  # first: a quiet machine, nothing else running
    floor = NumpyPolicy(m, b.params)
    det = OnlineAdapter(b, deterministic=True, auto_adapt=False)
    sampled = OnlineAdapter(b, deterministic=False, auto_adapt=False)
    fns: dict[str, Callable[[np.ndarray], object]] = {
        "act_deterministic": det.act,
        "act_sampled": sampled.act,
        "numpy": floor,
    }
    torch_fn = torch_forward(floor)
    if torch_fn is not None:
        fns["torch"], machine["torch"] = torch_fn
        parity["torch_vs_numpy"] = float(np.max(np.abs(torch_fn[0](pool[:1]) - floor(pool[:1]))))
    inputs = list(pool)
    lat = _interleaved(fns, inputs, calls, repeats)
    det.close()
    sampled.close()
    step = _inner_step(b, pool, step_calls)
    adaptation, reasons, k = _adaptation(b, pool, adapt_calls)
    loops = [_loop(b, pool, float(r), seconds) for r in rates]
    il = m.inner_loop
    setup = {
        "family": m.family,
        "obs_dim": m.observation.dim,
        "act_dim": m.action.dim,
        "hidden": list(m.policy.hidden),
        "activation": m.policy.activation,
        "adapt": m.policy.adapt,
        "capacity": il.capacity,
        "steps": il.steps,
        "step_name": "encoder pass" if m.memory.posterior else "inner step",
        "horizon": il.horizon,
        "adapt_episodes": k,
        "device_reward": b.has_reward,
        "calls": calls,
        "repeats": repeats,
        "seconds": seconds,
    }
    return RuntimeBenchResult(
        bundle=str(b.root),
        setup=setup,
        machine=machine,
        parity=parity,
        act_deterministic=lat["act_deterministic"],
        act_sampled=lat["act_sampled"],
        numpy_forward=lat["numpy"],
        torch_forward=lat.get("torch"),
        inner_step=step,
        adaptation=adaptation,
        adaptation_reasons=dict(reasons),
        loops=loops,
        rss=rss,
    )


def run_runtime_bench(
    bundle: str | Path,
    seconds: float = 60.0,
    rates: Sequence[float] = (100.0, 1000.0),
    calls: int = 20000,
    repeats: int = 3,
) -> str:
    """Measure ``bundle`` (see :func:`measure_runtime`) and return the Markdown table."""
    return measure_runtime(
        bundle, seconds=seconds, rates=rates, calls=calls, repeats=repeats
    ).table()
