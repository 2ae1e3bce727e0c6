"""The figures of ``adapt-robot bench runtime``: result records, targets, the table and JSON.

:mod:`adapt_robot.bench.runtime_bench` measures; this module holds what it measured
(:class:`RuntimeBenchResult`, ``to_json`` for the README and the demo job), evaluates the
issue's targets from those figures (:attr:`RuntimeBenchResult.targets`, never hard-coded) and
renders the one Markdown table.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TICK_MS = 10.0
"""One 100 Hz tick: the budget of a full adaptation."""
ACT_FLOOR_RATIO = 2.0
"""act() p99 target, as a multiple of the numpy floor's p99."""
RSS_LIMIT_MB = 120.0
"""Peak RSS target of a process running only the runtime."""
MISS_RATE_HZ = 100.0
"""The loop rate that must run without a deadline miss."""
_SCALE = {"us": 1e3, "ms": 1e6}


@dataclass(frozen=True, kw_only=True)
class Latency:
    """Percentiles of timed calls in ``unit``; with several runs, medians over the runs."""

    unit: str
    """``us`` or ``ms``."""
    p50: float
    """Median."""
    p99: float
    """99th percentile."""
    p999: float
    """99.9th percentile."""
    max: float
    """Slowest call of all runs."""
    calls: int
    """Timed calls in all runs (after warm-up)."""

    @classmethod
    def from_ns(cls, runs: Sequence[np.ndarray], unit: str) -> Latency:
        """Summary of runs of per-call nanoseconds (NaN figures for no calls)."""
        runs = [r for r in runs if len(r)] or [np.array([math.nan])]
        pct = np.array([np.percentile(r, [50, 99, 99.9]) for r in runs]) / _SCALE[unit]
        p50, p99, p999 = (float(v) for v in np.median(pct, axis=0))
        top = max(float(r.max()) for r in runs) / _SCALE[unit]
        calls = sum(int(np.isfinite(r).sum()) for r in runs)
        return cls(unit=unit, p50=p50, p99=p99, p999=p999, max=top, calls=calls)


@dataclass(frozen=True, kw_only=True)
class LoopResult:
    """One control-loop run with adaptations running alongside."""

    rate_hz: float
    """Requested tick rate."""
    seconds: float
    """Requested duration."""
    ticks: int
    """Ticks run."""
    misses: int
    """Ticks that overran into the next slot, episode-reset ticks included."""
    skipped_slots: int
    """Grid slots dropped to realign after overruns."""
    lateness_us: Latency
    """Tick start minus its deadline (p99.9: NaN; max over the whole run)."""
    compute_us: Latency
    """Tick compute time, act to observe (p99.9: NaN)."""
    adapt_every: int
    """Ticks between adaptation starts (when the worker is idle)."""
    adaptations: int
    """Adaptations that ran to a verdict (accepted or rolled back)."""
    accepted: int
    """Of those, accepted (swapped in)."""
    deferred: int
    """Ticks on which an adaptation was due but the worker was still busy."""
    adapt_ms: Latency
    """Duration of each adaptation on the worker, advantages to verdict."""


@dataclass(frozen=True, kw_only=True)
class RssResult:
    """Memory of a fresh process that imported only ``adapt_robot.runtime`` and acted."""

    rss_mb: float
    """``VmRSS`` after 1000 act() calls (NaN without ``/proc``)."""
    peak_mb: float
    """``VmHWM``, the peak RSS (NaN without ``/proc``)."""
    heavy: list[str]
    """torch, mujoco or pybullet found in ``sys.modules`` there (should be empty)."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """One target of the issue: ``value <= limit``."""

    name: str
    """Key in the JSON."""
    text: str
    """As printed in the table's target column."""
    value: float
    """Measured (NaN: could not be measured)."""
    limit: float
    """Largest value that meets the target."""

    @property
    def status(self) -> str:
        """``met``, ``NOT met`` or ``n/a`` (not measured)."""
        if not math.isfinite(self.value):
            return "n/a"
        return "met" if self.value <= self.limit else "NOT met"


@dataclass(frozen=True, kw_only=True)
class RuntimeBenchResult:
    """Every figure of one ``bench runtime`` run."""

    bundle: str
    """The bundle directory."""
    setup: dict[str, Any]
    """Bundle sizes and the measurement settings."""
    machine: dict[str, Any]
    """CPU, load, library versions, thread variables."""
    parity: dict[str, float]
    """Max abs error of the numpy floor vs ``policy.onnx`` (and of torch vs the floor)."""
    act_deterministic: Latency
    """``OnlineAdapter.act`` with ``deterministic=True`` (µs)."""
    act_sampled: Latency
    """``OnlineAdapter.act`` drawing the Gaussian sample (µs)."""
    numpy_forward: Latency
    """The same network in plain numpy, preallocated: the floor (µs)."""
    torch_forward: Latency | None
    """The same network in torch, 1 thread (µs); None without torch."""
    inner_step: Latency
    """One ``adapt_step.onnx`` call on ``capacity`` rows (ms)."""
    adaptation: Latency
    """``OnlineAdapter.adapt()`` on K episodes: advantages, n steps, verdict (ms)."""
    adaptation_reasons: dict[str, int]
    """Verdicts of those adaptations (``accepted`` or a rollback reason)."""
    loops: list[LoopResult]
    """One per rate."""
    rss: RssResult
    """Memory of a runtime-only process."""

    @property
    def targets(self) -> list[Target]:
        """The issue's targets, evaluated from the figures."""
        floor = self.numpy_forward.p99
        out = [
            Target(
                name=f"act_{kind}_p99_over_numpy",
                text=f"p99 <= {ACT_FLOOR_RATIO:g}x numpy",
                value=lat.p99 / floor,
                limit=ACT_FLOOR_RATIO,
            )
            for kind, lat in (
                ("deterministic", self.act_deterministic),
                ("sampled", self.act_sampled),
            )
        ]
        out.append(
            Target(
                name="adaptation_p99_ms",
                text=f"p99 <= {TICK_MS:g} ms",
                value=self.adaptation.p99,
                limit=TICK_MS,
            )
        )
        out += [
            Target(name=_miss_key(lp), text="0 misses", value=float(lp.misses), limit=0.0)
            for lp in self.loops
            if lp.rate_hz == MISS_RATE_HZ
        ]
        out.append(
            Target(
                name="peak_rss_mb",
                text=f"peak <= {RSS_LIMIT_MB:g} MB",
                value=self.rss.peak_mb,
                limit=RSS_LIMIT_MB,
            )
        )
        out.append(Target(name="heavy_imports", text="none", value=len(self.rss.heavy), limit=0.0))
        return out

    def to_json(self) -> str:
        """Every figure and target status as JSON (non-finite numbers as null)."""
        data = dataclasses.asdict(self)
        data["targets"] = [{**dataclasses.asdict(t), "status": t.status} for t in self.targets]
        return json.dumps(_finite_or_none(data), indent=2)

    def table(self) -> str:
        """Set-up lines, the Markdown table, and how it was measured."""
        return _render(self)


def _miss_key(lp: LoopResult) -> str:
    return f"misses_{lp.rate_hz:g}hz"


def _f(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _render(r: RuntimeBenchResult) -> str:
    s, mc = r.setup, r.machine
    by_name = {t.name: t for t in r.targets}
    num, tor = r.numpy_forward, r.torch_forward

    def row(name: str, lat: Latency | None, ratio: str, *keys: str, worst: bool = False) -> str:
        if lat is None:
            cells = ["n/a"] * 3
        else:
            cells = [_f(lat.p50), _f(lat.p99), _f(lat.max if worst else lat.p999)]
        chosen = [by_name[k] for k in keys if k in by_name]
        target = "; ".join(t.text for t in chosen)
        status = "; ".join(t.status for t in chosen)
        return f"| {name} | {' | '.join(cells)} | {ratio} | {target} | {status} |"

    def versus(lat: Latency) -> str:
        text = f"{lat.p50 / num.p50:.2f}x / {lat.p99 / num.p99:.2f}x numpy"
        if tor is not None and lat is not tor:
            text += f"; {lat.p50 / tor.p50:.2f}x / {lat.p99 / tor.p99:.2f}x torch"
        return text

    def of_tick(lat: Latency) -> str:
        return f"p99 = {lat.p99 / TICK_MS:.2f} of a {TICK_MS:g} ms tick"

    adapt_name = f"full adaptation, {s['adapt_episodes']} x {s['horizon']} steps, n={s['steps']}"
    rows = [
        "| measure | p50 | p99 | p99.9 / *max* | ratio (p50 / p99) | target | status |",
        "|---|---|---|---|---|---|---|",
        row("act(), deterministic (us)", r.act_deterministic, versus(r.act_deterministic),
            "act_deterministic_p99_over_numpy"),
        row("act(), sampled (us)", r.act_sampled, versus(r.act_sampled),
            "act_sampled_p99_over_numpy"),
        row("numpy forward, the floor (us)", num, "1.00x"),
        row("torch forward (us)", tor, "n/a" if tor is None else versus(tor)),
        row(f"one {s.get('step_name', 'inner step')}, {s['capacity']} rows (ms)", r.inner_step,
            of_tick(r.inner_step), worst=True),
        row(f"{adapt_name} (ms)", r.adaptation, of_tick(r.adaptation), "adaptation_p99_ms",
            worst=True),
    ]  # fmt: skip
    for lp in r.loops:
        hz = f"loop {lp.rate_hz:g} Hz, {lp.seconds:g} s"
        ticks = (
            f"{lp.ticks} ticks, {lp.misses} misses, {lp.skipped_slots} slots skipped; tick "
            f"compute p50 {_f(lp.compute_us.p50)} / p99 {_f(lp.compute_us.p99)} / max "
            f"{_f(lp.compute_us.max)} us"
        )
        adapts = (
            f"{lp.adaptations} done ({lp.accepted} accepted), one every {lp.adapt_every} "
            f"ticks when idle, {lp.deferred} ticks deferred"
        )
        rows.append(row(f"{hz}: tick lateness (us)", lp.lateness_us, ticks, _miss_key(lp),
                        worst=True))  # fmt: skip
        rows.append(row(f"{hz}: adaptations alongside (ms)", lp.adapt_ms, adapts, worst=True))
    rss = Latency(unit="MB", p50=r.rss.rss_mb, p99=math.nan, p999=math.nan, max=r.rss.peak_mb,
                  calls=1)  # fmt: skip
    heavy = ", ".join(r.rss.heavy) or "none"
    rows.append(row("process RSS, runtime only (MB: now, -, *peak*)", rss,
                    f"torch/mujoco/pybullet imported: {heavy}", "peak_rss_mb", "heavy_imports",
                    worst=True))  # fmt: skip
    threads = " ".join(f"{k}={v}" for k, v in mc["threads_env"].items())
    parity = ", ".join(f"{k} {v:.2g}" for k, v in r.parity.items())
    reward = "by reward.onnx on the device" if s["device_reward"] else "-|action|^2 by the robot"
    head = [
        f"bench runtime: {s['family']} bundle {r.bundle} (obs {s['obs_dim']}, act {s['act_dim']}, "
        f"MLP {'x'.join(map(str, s['hidden']))} {s['activation']}, adapt {s['adapt']}, "
        f"capacity {s['capacity']} rows, {s['steps']} x {s.get('step_name', 'inner step')} per "
        f"adaptation, episodes of {s['horizon']})",
        f"machine: {mc['cpu']}, {mc['cpus']} CPUs ({mc['usable_cpus']} usable), load "
        f"{mc['load_1min']:.2f} at start; Python {mc['python']}, numpy {mc['numpy']}, "
        f"onnxruntime {mc['onnxruntime']}, torch {mc.get('torch', 'not installed')}",
        f"threads: {threads}; ONNX Runtime 1 intra-op, 1 inter-op; torch 1",
        f"max abs error: {parity}",
        "",
    ]
    foot = [
        "",
        f"act() and forwards: {s['calls']} calls x {s['repeats']} repeats, interleaved, after "
        "warm-up; gc off; perf_counter_ns around each call; p50/p99/p99.9 are medians over the "
        "repeats. Inner step and adaptation: *max* is the slowest call. Loop: random "
        f"observations, episodes of {s['horizon']} ticks, rewards {reward}; the adapter's "
        f"worker adapts on the last {s['capacity']} transitions (sliding window) every 1/5 s; "
        "misses include episode-reset ticks. RSS: a fresh `python -c` importing "
        "adapt_robot.runtime only, loading the bundle, 1000 act() calls. Timings depend on the "
        "machine and its load.",
    ]
    return "\n".join([*head, *rows, *foot])


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite_or_none(v) for v in x]
    return x
