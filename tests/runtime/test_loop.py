"""The fixed-rate control loop: grid scheduling, deadline accounting, budgets, stop, faults.

No assertion depends on how fast this machine is: counts and the recorded trace must agree
with each other, and deliberate overruns (sleeps longer than a period) must be counted.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from adapt_robot.runtime.loop import ControlLoop, LoopAborted, LoopConfig, TickTrace
from adapt_robot.runtime.timing import sleep_until, timer_slack
from tests.runtime.loop_fakes import LinearController, ScriptedRobot


def _expected_misses(trace: TickTrace) -> tuple[int, int]:
    """Overrunning ticks and skipped slots, recomputed from the trace."""
    period, t0 = trace.period_ns, trace.t0_ns
    next_deadline = t0 + (trace.slot + 1) * period
    overran = trace.end_ns > next_deadline
    behind = (trace.end_ns - t0) // period + 1
    skipped = np.where(overran, behind - (trace.slot + 1), 0)
    return int(overran.sum()), int(skipped.sum())


def test_ticks_follow_an_absolute_grid_and_the_accounting_matches_the_trace() -> None:
    robot, ctrl = ScriptedRobot(horizon=1000), LinearController()
    loop = ControlLoop(robot, ctrl, LoopConfig(rate_hz=1000, max_ticks=150))
    stats = loop.run()
    trace = loop.trace()

    assert stats.ticks == 150 == len(trace.slot) == len(robot.sent) == len(ctrl.acted)
    assert stats.stop_reason == "max_ticks=150 reached"
    assert trace.period_ns == 1_000_000
    assert np.all(np.diff(trace.slot) >= 1), "slots must strictly increase"
    assert np.all(np.diff(trace.deadline_ns) % trace.period_ns == 0), "deadlines drifted"
    assert np.all(trace.start_ns >= trace.deadline_ns), "a tick started before its deadline"
    assert np.all(trace.end_ns >= trace.start_ns)
    # Ticks never overlap and a slot is skipped only after an overrun.
    assert np.all(trace.start_ns[1:] >= trace.end_ns[:-1])
    misses, skipped = _expected_misses(trace)
    assert stats.misses + stats.reset_misses == misses
    assert stats.skipped_slots == skipped
    assert int(trace.slot[-1]) == stats.ticks - 1 + skipped - _last_skip(trace)
    jitter_us = (trace.start_ns - trace.deadline_ns) / 1e3
    compute_us = (trace.end_ns - trace.start_ns) / 1e3
    assert stats.jitter_us_max == pytest.approx(jitter_us.max())
    assert stats.compute_us_max == pytest.approx(compute_us.max())
    assert stats.jitter_us_p50 <= stats.jitter_us_p99 <= stats.jitter_us_max
    assert stats.compute_us_p50 <= stats.compute_us_p99 <= stats.compute_us_max


def _last_skip(trace: TickTrace) -> int:
    end, t0, period = int(trace.end_ns[-1]), trace.t0_ns, trace.period_ns
    nxt = int(trace.slot[-1]) + 1
    return max(0, (end - t0) // period + 1 - nxt) if end > t0 + nxt * period else 0


def test_each_tick_reads_acts_sends_and_observes_in_order() -> None:
    robot, ctrl = ScriptedRobot(horizon=4), LinearController()
    stats = ControlLoop(robot, ctrl, LoopConfig(rate_hz=1000, max_episodes=3)).run()

    assert stats.episodes == 3 and stats.ticks == 12
    assert stats.stop_reason == "max_episodes=3 reached"
    assert robot.resets == 3  # the initial reset and one per following episode
    assert stats.successes == 2  # episodes 0 and 2 report success
    for obs, sent in zip(ctrl.acted, robot.sent, strict=True):
        np.testing.assert_array_equal(sent, ctrl.W @ obs)
    dones = [done for _, done, _ in ctrl.observed]
    assert dones == [False, False, False, True] * 3
    rewards = [r for r, _, _ in ctrl.observed]
    assert rewards == [1.0, 2.0, 3.0, 4.0] * 3
    # next_obs of a transition is the observation after the action was executed.
    assert [int(n[0]) for _, _, n in ctrl.observed if n is not None] == [1, 2, 3, 4] * 3
    assert [int(o[1]) for o in ctrl.acted] == [0] * 4 + [1] * 4 + [2] * 4


def test_stop_from_another_thread_ends_the_run() -> None:
    robot, ctrl = ScriptedRobot(horizon=50), LinearController()
    robot.event_after = 20
    loop = ControlLoop(robot, ctrl, LoopConfig(rate_hz=500))
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.setdefault("stats", loop.run()))
    thread.start()
    assert robot.sent_event.wait(30), "the loop never ticked 20 times"
    assert loop.running
    loop.stop()
    thread.join(30)
    assert not thread.is_alive()
    stats = result["stats"]
    assert stats.stop_reason == "stop() called"  # type: ignore[attr-defined]
    assert stats.ticks >= 20  # type: ignore[attr-defined]
    assert not loop.running


def test_exceptions_are_counted_and_answered_with_the_safe_action() -> None:
    fail = {"read_obs": {4, 5}, "send_action": {20}}
    robot, ctrl = ScriptedRobot(horizon=1000, fail=fail), LinearController()

    def boom(n: int) -> None:
        if n in (10, 11):
            raise RuntimeError("policy exploded")

    ctrl.hooks["act"] = boom
    ctrl.hooks["observe"] = lambda n: boom(n - 3)  # observe fails on its 13th/14th call
    safe = (0.5, -0.5, 0.0)
    config = LoopConfig(rate_hz=1000, max_ticks=40, safe_action=safe)
    stats = ControlLoop(robot, ctrl, config).run()

    assert stats.ticks == 40
    assert stats.robot_errors == 2 + 1
    assert stats.controller_errors == 2 + 2
    assert stats.last_error == "robot.send_action: OSError: send_action failed (call 20)"
    sent_safe = [i for i, a in enumerate(robot.sent) if np.array_equal(a, safe)]
    # read_obs failures (ticks 2, 3: each tick reads twice), act failures, and the retry after
    # the failed send are all answered with the safe action.
    assert stats.safe_actions == len(sent_safe) >= 2 + 2 + 1


def test_bad_actions_are_replaced_by_the_safe_action() -> None:
    robot = ScriptedRobot(horizon=1000)
    ctrl = LinearController()
    outputs = {3: np.array([np.nan, 0, 0], np.float32), 7: np.zeros(2, np.float32)}
    original = ctrl.act

    def act(obs: np.ndarray) -> np.ndarray:
        out = original(obs)
        return outputs.get(len(ctrl.acted) - 1, out)

    ctrl.act = act  # type: ignore[method-assign]
    stats = ControlLoop(robot, ctrl, LoopConfig(rate_hz=1000, max_ticks=10)).run()

    assert stats.bad_actions == 2 and stats.safe_actions == 2
    assert stats.errors == 0
    np.testing.assert_array_equal(robot.sent[3], np.zeros(3))
    np.testing.assert_array_equal(robot.sent[7], np.zeros(3))
    assert all(np.isfinite(a).all() and a.shape == (3,) for a in robot.sent)


def test_keep_alive_false_stops_with_the_stats_after_sending_the_safe_action() -> None:
    robot, ctrl = ScriptedRobot(horizon=1000), LinearController()

    def fail_sixth(n: int) -> None:
        if n == 5:
            raise ValueError("bad")

    ctrl.hooks["act"] = fail_sixth
    loop = ControlLoop(robot, ctrl, LoopConfig(rate_hz=1000, max_ticks=50, keep_alive=False))
    with pytest.raises(LoopAborted, match=r"keep_alive=False in controller\.act") as info:
        loop.run()
    assert info.value.stats.ticks == 6
    assert info.value.stats.controller_errors == 1
    assert isinstance(info.value.__cause__, ValueError)
    np.testing.assert_array_equal(robot.sent[-1], np.zeros(3))
    assert not loop.running


def test_a_dead_robot_stops_the_loop_after_the_consecutive_error_limit() -> None:
    robot = ScriptedRobot(horizon=1000, fail={"read_obs": set(range(10**6))})
    config = LoopConfig(rate_hz=1000, max_ticks=500, max_consecutive_errors=7)
    with pytest.raises(LoopAborted, match="7 faulty ticks in a row") as info:
        ControlLoop(robot, LinearController(), config).run()
    assert info.value.stats.ticks == 7 and info.value.stats.robot_errors == 7


def test_overruns_are_counted_as_misses_and_realigned() -> None:
    # A controller that sleeps 2.5 periods every 4th tick must miss at least those deadlines.
    robot, ctrl = ScriptedRobot(horizon=1000), LinearController()

    def slow_every_fourth(n: int) -> None:
        if n % 4 == 0:
            time.sleep(0.0025)

    ctrl.hooks["act"] = slow_every_fourth
    loop = ControlLoop(robot, ctrl, LoopConfig(rate_hz=1000, max_ticks=20))
    stats = loop.run()
    assert stats.misses >= 5
    assert stats.skipped_slots >= 2 * 5
    assert stats.compute_us_max >= 2500
    misses, skipped = _expected_misses(loop.trace())
    assert (stats.misses, stats.skipped_slots) == (misses, skipped)


def test_slow_resets_are_counted_apart_from_tick_misses() -> None:
    robot = ScriptedRobot(horizon=3, delay_s={"reset": 0.003})
    stats = ControlLoop(robot, LinearController(), LoopConfig(rate_hz=1000, max_episodes=4)).run()
    assert stats.episodes == 4
    assert stats.reset_misses == 3  # the resets of episodes 2-4 ran inside ticks
    assert stats.ticks == 12


def test_duration_budget_bounds_the_grid() -> None:
    loop = ControlLoop(
        ScriptedRobot(horizon=1000), LinearController(), LoopConfig(rate_hz=1000, duration_s=0.03)
    )
    stats = loop.run()
    assert stats.stop_reason == "duration_s=0.03 reached"
    assert 1 <= stats.ticks <= 31
    assert int(loop.trace().slot.max()) <= 30


def test_table_lists_the_figures_and_the_controller_counters() -> None:
    stats = ControlLoop(
        ScriptedRobot(horizon=5), LinearController(), LoopConfig(rate_hz=200, max_ticks=10)
    ).run()
    table = stats.table()
    for needle in ("200 Hz requested", "ticks", "deadline misses", "jitter p50/p99/max"):
        assert needle in table
    assert "controller.acts" in table and "10" in table.split("controller.acts")[1]
    assert stats.achieved_hz > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate_hz": 50}, "rate_hz: expected 100 to 1000 Hz"),
        ({"rate_hz": 2000}, "rate_hz: expected 100 to 1000 Hz"),
        ({"max_ticks": 0}, "max_ticks"),
        ({"spin_us": 500}, "spin_us"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"safe_action": (0.0, float("nan"), 0.0)}, "safe_action: expected finite"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoopConfig(**kwargs)  # type: ignore[arg-type]


def test_safe_action_length_must_match_the_robot() -> None:
    with pytest.raises(ValueError, match=r"safe_action: expected 3 entries \(robot.action_dim\)"):
        ControlLoop(ScriptedRobot(), LinearController(), LoopConfig(safe_action=(0.0, 0.0)))


def test_a_failing_initial_reset_aborts_before_the_first_tick() -> None:
    robot = ScriptedRobot(fail={"reset": {0}})
    with pytest.raises(LoopAborted, match=r"robot\.reset failed before the first tick") as info:
        ControlLoop(robot, LinearController(), LoopConfig(max_ticks=5)).run()
    assert info.value.stats.ticks == 0 and info.value.stats.robot_errors == 1
    assert info.value.stats.stop_reason == "robot.reset failed before the first tick"


def test_loop_robot_and_bridge_import_no_simulator_or_torch() -> None:
    code = (
        "import sys\n"
        "import adapt_robot.runtime.loop, adapt_robot.runtime.robot, adapt_robot.runtime.bridge\n"
        "heavy = ('torch', 'mujoco', 'pybullet', 'sim', 'gymnasium')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("spin_ns", [0, 200_000])
def test_sleep_until_never_returns_before_the_deadline(spin_ns: int) -> None:
    for _ in range(20):
        deadline = time.perf_counter_ns() + 300_000
        sleep_until(deadline, spin_ns)
        assert time.perf_counter_ns() >= deadline


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux-only")
def test_timer_slack_is_set_inside_the_block_and_restored() -> None:
    import ctypes

    prctl = ctypes.CDLL(None).prctl
    before = prctl(30, 0, 0, 0, 0)
    with timer_slack(1) as changed:
        assert changed and prctl(30, 0, 0, 0, 0) == 1
    assert prctl(30, 0, 0, 0, 0) == before
    with timer_slack(None) as changed:
        assert not changed and prctl(30, 0, 0, 0, 0) == before


def test_loop_drives_the_online_adapter_on_a_sim_robot(grasp_bundle: Path) -> None:
    from adapt_robot.deploy import SimRobot, SimRobotConfig
    from adapt_robot.runtime.adapter import OnlineAdapter

    config = SimRobotConfig(family="grasp", engine="pybullet", split="test", seed=0)
    with SimRobot(config) as robot, OnlineAdapter(grasp_bundle, seed=0) as adapter:
        stats = ControlLoop(robot, adapter, LoopConfig(rate_hz=1000, max_episodes=2)).run()
    assert stats.episodes == 2 and stats.errors == 0 and stats.bad_actions == 0
    assert stats.ticks == 2 * robot.family.max_steps
    assert stats.controller["acts"] == stats.ticks
    assert "controller.acts" in stats.table()
