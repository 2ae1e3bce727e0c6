"""Execution providers by name with a logged CPU fallback; quiet threads; bound buffers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.runtime import Bundle
from adapt_robot.runtime.sessions import (
    CPU,
    BoundRunner,
    SessionSettings,
    create_session,
    resolve_providers,
)

CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def test_missing_providers_fall_back_to_cpu_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="adapt_robot.runtime.sessions"):
        chosen = resolve_providers(("tensorrt", "cuda"), available=[CPU])
    assert chosen == [CPU]
    records = warnings_of(caplog)
    assert len(records) == 1
    assert TRT in records[0].getMessage() and CUDA in records[0].getMessage()


def test_available_providers_keep_their_order_and_cpu_comes_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="adapt_robot.runtime.sessions"):
        chosen = resolve_providers(("cuda", "CPU", "cuda"), available=[CPU, CUDA])
        full = resolve_providers((CUDA,), available=[CUDA, CPU])
    assert chosen == [CUDA, CPU]
    assert full == [CUDA, CPU]
    assert warnings_of(caplog) == []


@pytest.mark.parametrize("bad", [("cdua",), (), "cpu"])
def test_bad_provider_requests_are_refused(bad: tuple[str, ...] | str) -> None:
    with pytest.raises(ValueError, match="providers"):
        resolve_providers(bad, available=[CPU])


def test_session_settings_default_to_one_quiet_thread() -> None:
    opts = SessionSettings().session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(ValueError, match="optimization"):
        SessionSettings(optimization="max")
    with pytest.raises(ValueError, match="intra_op_threads"):
        SessionSettings(intra_op_threads=0)


def test_bound_runner_writes_outputs_in_place(point_bundle: Path) -> None:
    bundle = Bundle.load(point_bundle)
    session = create_session(bundle.graph_path("policy"), [CPU], SessionSettings())
    o, a = bundle.manifest.observation.dim, bundle.manifest.action.dim
    obs = np.zeros((1, o), dtype=np.float32)
    mean = np.full((1, a), np.nan, dtype=np.float32)
    log_std = np.zeros(a, dtype=np.float32)
    runner = BoundRunner(
        session,
        {"obs": obs, **bundle.params},
        {"action_mean": mean, "action_log_std": log_std},
    )
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs[:] = rng.normal(size=(1, o))  # the bound input is read in place
        runner.run()
        ref = session.run(None, {"obs": obs, **bundle.params})
        np.testing.assert_array_equal(mean, ref[0])
        np.testing.assert_array_equal(log_std, ref[1])
    shifted = bundle.params["log_std"] + np.float32(1.0)
    runner.bind_input("log_std", shifted)
    runner.run()
    np.testing.assert_allclose(log_std, shifted)
    with pytest.raises(ValueError, match="C-contiguous"):
        runner.bind_input("obs", np.zeros((o, 2), dtype=np.float32).T)


def test_provider_options_reach_onnx_runtime_as_strings(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    settings = SessionSettings(
        provider_options={
            "tensorrt": {"trt_fp16_enable": True, "trt_engine_cache_path": "/tmp/trt"},
            CUDA: {"device_id": 1},
        }
    )
    assert settings.providers_with_options([TRT, CUDA, CPU]) == [
        (TRT, {"trt_fp16_enable": "1", "trt_engine_cache_path": "/tmp/trt"}),
        (CUDA, {"device_id": "1"}),
        CPU,
    ]
    graph = Bundle.load(point_bundle).graph_bytes("policy")  # the load opens sessions too
    seen: list[object] = []
    real = ort.InferenceSession

    def spy(source: object, opts: object, providers: list[object]) -> object:
        seen.append(providers)
        return real(source, opts, providers=[CPU])

    monkeypatch.setattr(ort, "InferenceSession", spy)
    # On a CPU-only build the TensorRT and CUDA options belong to dropped providers: ignored.
    chosen = resolve_providers(["tensorrt", "cpu"], available=[CPU])
    create_session(graph, chosen, settings)
    assert seen == [[CPU]]


@pytest.mark.parametrize(
    "options",
    [{"nosuch": {"a": 1}}, {"cuda": ["device_id", 0]}, {"cuda": {"device_id": [0]}}],
)
def test_bad_provider_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="provider"):
        SessionSettings(provider_options=options)  # type: ignore[arg-type]


def test_the_runtime_names_both_onnx_runtime_packages_when_neither_is_installed() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['onnxruntime'] = None\n"
        "try:\n"
        "    import adapt_robot.runtime\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "adapt-robot[cpu]" in done.stdout and "adapt-robot[gpu]" in done.stdout


def test_the_adapter_reports_the_providers_its_sessions_really_run_on(
    point_bundle: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime-gpu without the CUDA libraries lists CUDA as available, then falls back to
    the CPU when the session starts: the adapter must not claim CUDA."""
    from adapt_robot.runtime import OnlineAdapter
    from adapt_robot.runtime import adapter as adapter_module

    monkeypatch.setattr(adapter_module, "resolve_providers", lambda requested: [CUDA, CPU])
    real = adapter_module.create_session
    monkeypatch.setattr(
        adapter_module,
        "create_session",
        lambda model, providers, settings: real(model, [CPU], settings),
    )
    with caplog.at_level(logging.WARNING):
        adapter = OnlineAdapter(point_bundle, providers=("cuda", "cpu"), auto_adapt=False)
    try:
        assert adapter.providers == [CPU]
        assert any("did not start" in r.getMessage() for r in warnings_of(caplog))
    finally:
        adapter.close()
