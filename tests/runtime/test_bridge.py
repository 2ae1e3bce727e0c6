"""The UDP bridge: round trips, transition pairing, rejection counters, fuzzing, timeouts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapt_robot.runtime.bridge import protocol as p
from adapt_robot.runtime.bridge.client import BridgeClient, BridgeRejected, BridgeTimeout
from adapt_robot.runtime.bridge.server import BridgeServer, BridgeServerConfig
from tests.runtime.loop_fakes import LinearController

OBS, ACT = 5, 3
ADDR = ("127.0.0.1", 40000)


@pytest.fixture
def served() -> Iterator[tuple[BridgeServer, LinearController]]:
    ctrl = LinearController(OBS, ACT)
    server = BridgeServer(ctrl, BridgeServerConfig(obs_dim=OBS, act_dim=ACT)).start()
    try:
        yield server, ctrl
    finally:
        server.stop()


def _obs(seq: int, **kw: object) -> bytes:
    values = np.arange(OBS, dtype=np.float32) * 0.1 + seq
    kw.setdefault("reward", None)
    kw.setdefault("done", False)
    return p.encode_obs(seq, values, ACT, **kw)  # type: ignore[arg-type]


def test_round_trip_pairs_each_outcome_with_the_previous_action(
    served: tuple[BridgeServer, LinearController],
) -> None:
    server, ctrl = served
    ctrl.params_version = 3
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((4, OBS)).astype(np.float32)
    with BridgeClient(server.address, act_dim=ACT, timeout_s=2.0) as client:
        a0 = client.act(obs[0])
        a1 = client.act(obs[1], reward=0.5, done=False)
        a2 = client.act(obs[2], reward=None, done=False)
        end = client.act(obs[3], reward=-1.0, done=True)
        assert client.last_reply is not None
        assert client.last_reply.status == p.ActionFlag.EPISODE_END
        assert client.last_reply.params_version == 3
        assert client.last_rtt_ns > 0
        again = client.act(obs[0])  # a new episode: closes no transition
    for a, o in zip((a0, a1, a2, again), (obs[0], obs[1], obs[2], obs[0]), strict=True):
        np.testing.assert_array_equal(a, ctrl.W @ o)
    np.testing.assert_array_equal(end, np.zeros(ACT))
    assert [(r, d) for r, d, _ in ctrl.observed] == [(0.5, False), (None, False), (-1.0, True)]
    for (_, _, nxt), o in zip(ctrl.observed, obs[1:], strict=True):
        np.testing.assert_array_equal(nxt, o)
    counters = server.counters()
    assert counters.replied == counters.received == 5
    assert counters.episodes == 1 and counters.rejected_total == 0


def test_nan_observation_gives_a_finite_action_flagged_fault(
    served: tuple[BridgeServer, LinearController],
) -> None:
    server, _ = served
    with BridgeClient(server.address, act_dim=ACT, timeout_s=2.0) as client:
        action = client.act(np.full(OBS, np.nan, dtype=np.float32))
        assert client.last_reply is not None
        assert client.last_reply.status & p.ActionFlag.FAULT
        assert np.isfinite(action).all()
        client.act(np.ones(OBS, dtype=np.float32), reward=float("inf"))
        assert not client.last_reply.status & p.ActionFlag.FAULT
    assert server.counters().faults == 1


def test_controller_exceptions_are_answered_with_zeros() -> None:
    ctrl = LinearController(OBS, ACT)

    def boom(n: int) -> None:
        raise RuntimeError("nope")

    ctrl.hooks["act"] = boom
    server = BridgeServer(ctrl, BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    reply = p.decode_reply(server.handle(_obs(1), ADDR) or b"")
    assert isinstance(reply, p.ActionPacket)
    assert reply.status == p.ActionFlag.CONTROLLER_ERROR
    np.testing.assert_array_equal(reply.action, np.zeros(ACT))
    assert server.counters().controller_errors == 1


def _bad_packets() -> dict[str, bytes]:
    good = _obs(1)
    return {
        "truncated": good[:10],
        "bad_magic": b"XXXX" + good[4:],
        "bad_version": good[:4] + (2).to_bytes(2, "little") + good[6:],
        "bad_type": good[:6] + (2).to_bytes(2, "little") + good[8:],
        "bad_size": good[:-4],
        "bad_dims": p.encode_obs(1, np.zeros(OBS + 1), ACT, reward=None, done=False),
        "bad_done": good[:-4] + np.float32(0.5).tobytes(),
    }


@pytest.mark.parametrize("reason", list(_bad_packets()))
def test_malformed_packets_are_rejected_and_counted(reason: str) -> None:
    ctrl = LinearController(OBS, ACT)
    server = BridgeServer(ctrl, BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    reply = server.handle(_bad_packets()[reason], ADDR)
    counters = server.counters()
    assert counters.rejected[reason] == 1 and counters.rejected_total == 1
    assert counters.replied == 0 and not ctrl.acted
    if reason in ("bad_version", "bad_size", "bad_dims"):
        assert reply is not None
        header = p.decode_reply(reply)
        assert isinstance(header, p.Header) and header.type == p.PacketType.ERROR
        assert p.RejectReason(header.flags).name.lower() == reason
        assert (header.obs_dim, header.act_dim, header.sequence) == (OBS, ACT, 1)
    else:
        assert reply is None
    # The server still serves a good packet afterwards.
    assert isinstance(p.decode_reply(server.handle(_obs(2), ADDR) or b""), p.ActionPacket)


def test_replayed_and_stale_sequences_are_rejected_per_client() -> None:
    ctrl = LinearController(OBS, ACT)
    server = BridgeServer(ctrl, BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    other = ("127.0.0.1", 40001)
    assert server.handle(_obs(10), ADDR) is not None
    assert server.handle(_obs(10), ADDR) is None  # replay
    assert server.handle(_obs(9), ADDR) is None  # late
    assert server.handle(_obs(9), other) is not None  # another client has its own sequence
    assert server.handle(_obs(11), ADDR) is not None
    rejected = server.counters().rejected
    assert rejected["duplicate_sequence"] == 1 and rejected["stale_sequence"] == 1
    assert len(ctrl.acted) == 3 and len(ctrl.observed) == 1


def test_sequence_numbers_wrap_around() -> None:
    server = BridgeServer(LinearController(OBS, ACT), BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    for seq in (p.SEQ_MODULUS - 2, p.SEQ_MODULUS - 1, 0, 1):
        assert server.handle(_obs(seq), ADDR) is not None, seq
    assert server.handle(_obs(p.SEQ_MODULUS - 1), ADDR) is None
    assert server.counters().rejected["stale_sequence"] == 1


def test_episode_start_while_an_action_is_pending_drops_that_transition() -> None:
    ctrl = LinearController(OBS, ACT)
    server = BridgeServer(ctrl, BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    server.handle(_obs(1, episode_start=True), ADDR)
    server.handle(_obs(2, episode_start=True), ADDR)
    assert server.counters().abandoned == 1 and not ctrl.observed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
def test_fuzzed_datagrams_never_crash_the_server(data: bytes) -> None:
    server = BridgeServer(LinearController(OBS, ACT), BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    reply = server.handle(data, ADDR)
    c = server.counters()
    assert c.internal_errors == 0
    assert c.received == 1 == c.replied + c.rejected_total
    if reply is not None:
        p.decode_reply(reply)  # whatever the server sends back is a valid reply


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, p.obs_size(OBS) - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    cut=st.integers(0, p.obs_size(OBS)),
)
def test_mutated_packets_are_answered_or_counted(edits: list[tuple[int, int]], cut: int) -> None:
    ctrl = LinearController(OBS, ACT)
    server = BridgeServer(ctrl, BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    server.handle(_obs(5), ADDR)  # a first packet fixes the client's sequence
    data = bytearray(_obs(6))
    for i, v in edits:
        data[i] = v
    reply = server.handle(bytes(data[:cut]) if cut < len(data) else bytes(data), ADDR)
    c = server.counters()
    assert c.internal_errors == 0
    assert c.received == 2 == c.replied + c.rejected_total
    if reply is not None:
        decoded = p.decode_reply(reply)
        if isinstance(decoded, p.ActionPacket):
            assert np.isfinite(decoded.action).all()


def test_garbage_over_the_socket_is_counted_and_the_server_keeps_serving(
    served: tuple[BridgeServer, LinearController],
) -> None:
    server, ctrl = served
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for bad in _bad_packets().values():
            raw.sendto(bad, server.address)
    with BridgeClient(server.address, act_dim=ACT, timeout_s=2.0) as client:
        action = client.act(np.ones(OBS, dtype=np.float32))
    np.testing.assert_array_equal(action, ctrl.W @ np.ones(OBS, dtype=np.float32))
    c = server.counters()
    assert c.rejected_total == len(_bad_packets()) and c.internal_errors == 0


def test_client_times_out_when_nobody_answers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with BridgeClient(silent.getsockname(), act_dim=ACT, timeout_s=0.05) as client:
            with pytest.raises(BridgeTimeout, match="no reply to sequence 1"):
                client.act(np.zeros(OBS))
            assert client.timeouts == 1


def test_client_skips_replies_to_older_requests() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fake:
        fake.bind(("127.0.0.1", 0))

        def answer_late_then_right() -> None:
            data, addr = fake.recvfrom(65536)
            req = p.decode_obs(data, OBS, ACT)
            old = p.Header(**{**req.header.__dict__, "sequence": req.header.sequence - 1})
            fake.sendto(b"junk", addr)
            for h, value in ((old, 9.0), (req.header, 1.0)):
                fake.sendto(
                    p.encode_action(
                        h, np.full(ACT, value), status=p.ActionFlag.NONE, params_version=0
                    ),
                    addr,
                )

        thread = threading.Thread(target=answer_late_then_right)
        thread.start()
        with BridgeClient(fake.getsockname(), act_dim=ACT, timeout_s=5.0) as client:
            client.act(np.zeros(OBS))  # sequence 1; its "late" reply has sequence 0
            np.testing.assert_array_equal(client.last_reply.action, np.ones(ACT))  # type: ignore[union-attr]
            assert client.stale_replies == 1 and client.bad_replies == 1
        thread.join(5)


def test_client_with_wrong_dimensions_gets_a_clear_rejection(
    served: tuple[BridgeServer, LinearController],
) -> None:
    server, _ = served
    with BridgeClient(server.address, act_dim=ACT + 1, timeout_s=2.0) as client:
        with pytest.raises(BridgeRejected, match="bad_dims") as info:
            client.act(np.zeros(OBS))
    assert info.value.reason == p.RejectReason.BAD_DIMS
    assert f"obs_dim {OBS}, act_dim {ACT}" in str(info.value)


def test_server_config_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        BridgeServerConfig(obs_dim=OBS, act_dim=ACT, host="0.0.0.0")
    BridgeServerConfig(obs_dim=OBS, act_dim=ACT, host="0.0.0.0", allow_remote=True)


def test_stop_ends_the_receive_thread() -> None:
    server = BridgeServer(LinearController(OBS, ACT), BridgeServerConfig(obs_dim=OBS, act_dim=ACT))
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.address
    server.start()
    thread = server._thread
    server.stop()
    server.stop()  # idempotent
    assert thread is not None and not thread.is_alive()
