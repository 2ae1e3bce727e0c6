"""``bench runtime`` on the tiny point bundle: every row, sane figures, parity, a clean RSS probe.

No timing assertions: the figures depend on the machine and its load. The run is short
(0.5 s loops, a few hundred calls) so that the whole module stays within seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.bench import runtime_floor
from adapt_robot.bench.runtime_bench import measure_runtime
from adapt_robot.bench.runtime_report import Latency, RuntimeBenchResult
from adapt_robot.cli import main
from adapt_robot.runtime import Bundle

ROWS = (
    "act(), deterministic (us)",
    "act(), sampled (us)",
    "numpy forward, the floor (us)",
    "torch forward (us)",
    "one inner step,",
    "full adaptation,",
    "loop 100 Hz, 0.5 s: tick lateness (us)",
    "loop 100 Hz, 0.5 s: adaptations alongside (ms)",
    "loop 1000 Hz, 0.5 s: tick lateness (us)",
    "loop 1000 Hz, 0.5 s: adaptations alongside (ms)",
    "process RSS, runtime only",
)


@pytest.fixture(scope="module")
def result(point_bundle: Path) -> RuntimeBenchResult:
    return measure_runtime(
        point_bundle,
        seconds=0.5,
        rates=(100.0, 1000.0),
        calls=300,
        repeats=2,
        adapt_calls=3,
        step_calls=5,
    )


def _sane(lat: Latency, *, worst_only: bool = False) -> None:
    figures = [lat.p50, lat.p99, lat.max] if worst_only else [lat.p50, lat.p99, lat.p999, lat.max]
    assert all(math.isfinite(f) and f > 0 for f in figures), lat
    assert figures == sorted(figures), lat
    assert lat.calls > 0


def test_table_has_every_row_and_a_status_per_target(result: RuntimeBenchResult) -> None:
    table = result.table()
    body = [ln for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(body) == len(ROWS)
    for row, label in zip(body, ROWS, strict=True):
        assert row.startswith(f"| {label}"), (label, row)
    statuses = [t.status for t in result.targets]
    assert len(statuses) == 6  # act x2, adaptation, misses at 100 Hz, peak RSS, heavy imports
    assert set(statuses) <= {"met", "NOT met"}
    for t in result.targets:
        assert t.status == ("met" if t.value <= t.limit else "NOT met")
        assert t.text in table


def test_figures_are_finite_and_positive(result: RuntimeBenchResult) -> None:
    for lat in (result.act_deterministic, result.act_sampled, result.numpy_forward):
        _sane(lat)
    assert result.torch_forward is not None  # torch is installed in the dev environment
    _sane(result.torch_forward)
    _sane(result.inner_step)
    _sane(result.adaptation)
    assert sum(result.adaptation_reasons.values()) == 3
    assert [lp.rate_hz for lp in result.loops] == [100.0, 1000.0]
    for lp in result.loops:
        assert lp.ticks > 0 and lp.misses >= 0 and lp.skipped_slots >= 0
        assert lp.accepted <= lp.adaptations
        if lp.ticks >= 2 * lp.adapt_every:  # a loaded machine may run fewer ticks at 1 kHz
            assert lp.adaptations >= 1
            _sane(lp.adapt_ms, worst_only=True)
        _sane(lp.compute_us, worst_only=True)
        assert math.isfinite(lp.lateness_us.p50) and math.isfinite(lp.lateness_us.max)
    data = json.loads(result.to_json())
    assert {t["status"] for t in data["targets"]} <= {"met", "NOT met"}
    assert data["setup"]["family"] == "point"


def test_numpy_floor_matches_policy_onnx(result: RuntimeBenchResult, point_bundle: Path) -> None:
    assert 0 <= result.parity["numpy_vs_onnx"] <= runtime_floor.PARITY_ATOL
    assert result.parity["torch_vs_numpy"] <= runtime_floor.PARITY_ATOL
    bundle = Bundle.load(point_bundle)
    obs = np.zeros((4, bundle.manifest.observation.dim), dtype=np.float32)
    assert runtime_floor.check_floor(bundle, obs) <= runtime_floor.PARITY_ATOL


def test_a_floor_that_differs_from_policy_onnx_is_refused(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = Bundle.load(point_bundle)
    exact = runtime_floor.NumpyPolicy.__call__

    def off(self: runtime_floor.NumpyPolicy, obs: np.ndarray) -> np.ndarray:
        return exact(self, obs) + np.float32(1e-3)

    monkeypatch.setattr(runtime_floor.NumpyPolicy, "__call__", off)
    obs = np.zeros((4, bundle.manifest.observation.dim), dtype=np.float32)
    with pytest.raises(ValueError, match="does not compute the same network"):
        runtime_floor.check_floor(bundle, obs)


def test_rss_probe_imports_no_training_stack(result: RuntimeBenchResult) -> None:
    assert result.rss.heavy == []
    assert 0 < result.rss.rss_mb <= result.rss.peak_mb


def test_cli_needs_a_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "runtime"]) == 2
    assert "give the bundle directory" in capsys.readouterr().err


def test_cli_prints_the_table_and_writes_json(
    point_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "4")  # restored afterwards; the CLI pins them to 1
    out = tmp_path / "figures.json"
    argv = ["bench", "runtime", str(point_bundle), "--seconds", "0.2", "--rates", "100"]
    argv += ["--calls", "100", "--repeats", "1", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1" in printed
    assert "| loop 100 Hz, 0.2 s: tick lateness (us) |" in printed
    data = json.loads(out.read_text())
    assert [lp["rate_hz"] for lp in data["loops"]] == [100.0]
    assert data["setup"]["calls"] == 100


def test_a_posterior_bundle_is_timed_by_its_encoder_pass(pearl_bundle: Path) -> None:
    """PEARL: the step timed is one encoder.onnx pass; its adaptations are posterior updates."""
    r = measure_runtime(
        pearl_bundle, seconds=0.5, rates=(100.0,), calls=100, repeats=1, adapt_calls=3,
        step_calls=5,
    )  # fmt: skip
    capacity = Bundle.load(pearl_bundle).manifest.inner_loop.capacity
    assert f"| one encoder pass, {capacity} rows (ms) |" in r.table()
    assert r.setup["step_name"] == "encoder pass" and r.setup["steps"] == 1
    _sane(r.inner_step)
    _sane(r.adaptation)
    assert r.adaptation_reasons == {"accepted": 3}
    assert r.parity["numpy_vs_onnx"] <= runtime_floor.PARITY_ATOL  # the floor skips enc.*
    lp = r.loops[0]
    if lp.ticks >= 2 * lp.adapt_every:  # a loaded machine may run fewer ticks
        assert lp.accepted >= 1
