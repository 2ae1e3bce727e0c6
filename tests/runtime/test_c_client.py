"""The C client shipped in the package: built with the commands of docs/bridge_protocol.md by the
system compiler, then run against a Python bridge server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.runtime.bridge import c_sources
from adapt_robot.runtime.bridge.server import BridgeServer, BridgeServerConfig
from adapt_robot.runtime.controller import Controller
from tests.runtime.loop_fakes import LinearController

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "bridge_protocol.md"
OBS, ACT = 5, 3

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None, reason="no C compiler: `cc` is not on PATH"
)


def build_commands() -> str:
    """The shell block of the doc's "The C client" section."""
    section = DOC.read_text().split("## The C client", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "docs/bridge_protocol.md: no ```sh block in 'The C client'"
    return match.group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("c_client")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = "set -eu\n" + build_commands()
    done = subprocess.run(
        ["bash", "-c", script], cwd=out, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"building the C client failed:\n{done.stderr}"
    binary = out / "adapt_bridge_example"
    assert binary.is_file()
    return binary


@pytest.fixture
def server() -> Iterator[tuple[BridgeServer, LinearController]]:
    ctrl = LinearController(OBS, ACT, seed=3)
    ctrl.params_version = 7
    srv = BridgeServer(ctrl, BridgeServerConfig(obs_dim=OBS, act_dim=ACT)).start()
    try:
        yield srv, ctrl
    finally:
        srv.stop()


def run_example(
    binary: Path, port: int, obs: int, act: int, steps: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), str(port), str(obs), str(act), str(steps)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def parse_steps(stdout: str) -> tuple[np.ndarray, list[tuple[int, int]], str]:
    """Actions, (status, version) per step, and the last line."""
    lines = stdout.strip().splitlines()
    actions, status = [], []
    for t, line in enumerate(lines[:-1]):
        m = re.fullmatch(r"step (\d+) action (.*) status (\d+) version (\d+)", line)
        assert m and int(m.group(1)) == t, line
        actions.append([float(x) for x in m.group(2).split()])
        status.append((int(m.group(3)), int(m.group(4))))
    return np.asarray(actions, dtype=np.float32), status, lines[-1]


def test_sources_ship_inside_the_package() -> None:
    names = {p.name for p in c_sources().iterdir()}
    assert {"adapt_bridge.h", "adapt_bridge.c", "example_main.c"} <= names
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"runtime/bridge/c/*.h"' in pyproject and '"runtime/bridge/c/*.c"' in pyproject


def test_c_client_drives_the_controller_for_an_episode(
    example: Path, server: tuple[BridgeServer, LinearController]
) -> None:
    srv, ctrl = server
    steps = 4
    done = run_example(example, srv.address[1], OBS, ACT, steps)
    assert done.returncode == 0, done.stderr
    actions, status, last = parse_steps(done.stdout)

    assert actions.shape == (steps, ACT)
    assert status == [(0, 7)] * steps
    assert last == "episode_end status 4"
    # The server saw the observations the example documents, and the C client printed exactly
    # (to the last float32 bit) the actions the controller computed from them.
    sent = np.stack(ctrl.acted)
    t, i = np.meshgrid(np.arange(steps), np.arange(OBS), indexing="ij")
    np.testing.assert_allclose(sent, 0.1 * (t + 1) - 0.05 * i, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(actions, np.stack([ctrl.W @ o for o in sent]))
    # Each observe() got the outcome of the previous action: reward -|a|^2, done at the end.
    rewards = [r for r, _, _ in ctrl.observed]
    np.testing.assert_allclose(rewards, -(actions.astype(np.float64) ** 2).sum(1), rtol=1e-5)
    assert [d for _, d, _ in ctrl.observed] == [False] * (steps - 1) + [True]
    c = srv.counters()
    assert c.replied == steps + 1 and c.rejected_total == 0 and c.episodes == 1


def test_c_client_reports_a_rejection_by_name(
    example: Path, server: tuple[BridgeServer, LinearController]
) -> None:
    srv, _ = server
    done = run_example(example, srv.address[1], OBS + 1, ACT, 2)
    assert done.returncode == 1
    assert "act: the server rejected the request" in done.stderr
    assert srv.counters().rejected["bad_dims"] == 1


def test_c_client_fails_cleanly_without_a_server(example: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound but never answers: a timeout
        done = run_example(example, silent.getsockname()[1], OBS, ACT, 2)
    assert done.returncode == 1
    assert "act: timed out waiting for the reply" in done.stderr


def test_c_client_drives_the_online_adapter(example: Path, grasp_bundle: Path) -> None:
    from adapt_robot.runtime.adapter import OnlineAdapter

    adapter = OnlineAdapter(grasp_bundle, deterministic=True, auto_adapt=False)
    reference = OnlineAdapter(grasp_bundle, deterministic=True, auto_adapt=False)
    controller: Controller = adapter
    obs_dim = adapter.bundle.manifest.observation.dim
    act_dim = adapter.bundle.manifest.action.dim
    srv = BridgeServer(controller, BridgeServerConfig(obs_dim=obs_dim, act_dim=act_dim)).start()
    try:
        done = run_example(example, srv.address[1], obs_dim, act_dim, 3)
    finally:
        srv.stop()
        adapter.close()
    assert done.returncode == 0, done.stderr
    actions, status, last = parse_steps(done.stdout)
    assert last == "episode_end status 4"
    assert all(s == (0, 0) for s in status)
    for t, action in enumerate(actions):
        f32 = np.float32
        obs = f32(0.1) * f32(t + 1) - f32(0.05) * np.arange(obs_dim, dtype=f32)
        np.testing.assert_allclose(action, reference.act(obs), rtol=0, atol=1e-5)
        reference.observe(None, False, obs)
    assert adapter.stats()["acts"] == 3
    reference.close()
