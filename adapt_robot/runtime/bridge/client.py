"""Python client of the adapter bridge: send an observation, get an action, with a timeout.

Typical robot-side loop::

    with BridgeClient(("127.0.0.1", port), act_dim=4, timeout_s=0.01) as client:
        obs, reward, done = robot.reset(), None, False
        while True:
            action = client.act(obs, reward, done)   # reward/done: outcome of the last action
            if done:
                obs, reward, done = robot.reset(), None, False
                continue
            obs, reward, done = robot.step(action)

The first call and the first call after ``done`` are flagged ``EPISODE_START`` automatically.
"""

from __future__ import annotations

import socket
import time

import numpy as np

from adapt_robot.runtime.bridge import protocol as p


class BridgeTimeout(TimeoutError):
    """No reply with the request's sequence number arrived in time."""


class BridgeRejected(RuntimeError):
    """The server answered ERROR: the request broke a protocol rule (see ``reason``)."""

    def __init__(self, reason: p.RejectReason | int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class BridgeClient:
    """One client of a :class:`~adapt_robot.runtime.bridge.server.BridgeServer`."""

    def __init__(self, address: tuple[str, int], *, act_dim: int, timeout_s: float = 0.05) -> None:
        if act_dim < 1:
            raise ValueError(f"act_dim: expected an integer >= 1, got {act_dim}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s: expected a time > 0, got {timeout_s}")
        self.address = address
        self.act_dim = act_dim
        self.timeout_s = timeout_s
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.connect(address)
        self._seq = 0
        self._episode_start = True
        self.last_reply: p.ActionPacket | None = None
        """The last ACTION received (status flags, params version, echoed header)."""
        self.last_rtt_ns = 0
        """Round-trip time of the last successful :meth:`act`."""
        self.timeouts = 0
        """Requests that got no reply in time."""
        self.stale_replies = 0
        """Replies to older requests (late after a timeout), skipped."""
        self.bad_replies = 0
        """Datagrams that did not decode as a reply, skipped."""

    def new_episode(self) -> None:
        """Flag the next request as the first observation of an episode."""
        self._episode_start = True

    def act(self, obs: np.ndarray, reward: float | None = None, done: bool = False) -> np.ndarray:
        """The controller's action for ``obs``.

        ``reward`` and ``done`` are the outcome of the previous action (``reward=None`` lets the
        controller compute it on the device). With ``done`` the episode ends and the reply is
        zeros. Raises :class:`BridgeTimeout` after ``timeout_s`` without the matching reply and
        :class:`BridgeRejected` when the server refuses the request.
        """
        self._seq = (self._seq + 1) % p.SEQ_MODULUS
        seq = self._seq
        sent_ns = time.perf_counter_ns()
        packet = p.encode_obs(
            seq,
            obs,
            self.act_dim,
            reward=reward,
            done=done,
            episode_start=self._episode_start,
            timestamp_ns=sent_ns,
        )
        self._sock.send(packet)
        reply = self._receive(seq, sent_ns + int(self.timeout_s * 1e9))
        self._episode_start = done
        self.last_rtt_ns = time.perf_counter_ns() - sent_ns
        self.last_reply = reply
        return reply.action

    def _receive(self, seq: int, deadline_ns: int) -> p.ActionPacket:
        while True:
            remaining = deadline_ns - time.perf_counter_ns()
            if remaining <= 0:
                self.timeouts += 1
                raise BridgeTimeout(
                    f"bridge: no reply to sequence {seq} from {self.address} within "
                    f"{self.timeout_s * 1e3:g} ms; is the server running with these dimensions?"
                )
            self._sock.settimeout(remaining / 1e9)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionRefusedError as exc:
                raise ConnectionRefusedError(
                    f"bridge: {self.address} refused the datagram: no server is listening "
                    "there (start the BridgeServer first, or check the port)"
                ) from exc
            try:
                reply = p.decode_reply(data)
            except p.PacketError:
                self.bad_replies += 1
                continue
            if reply_seq(reply) != seq:
                self.stale_replies += 1
                continue
            if isinstance(reply, p.Header):
                reason = _reason(reply.flags)
                raise BridgeRejected(
                    reason,
                    f"bridge: server rejected sequence {seq}: {_reason_name(reason)} (server "
                    f"speaks version {reply.version} with obs_dim {reply.obs_dim}, "
                    f"act_dim {reply.act_dim})",
                )
            if reply.action.shape != (self.act_dim,):
                self.bad_replies += 1
                continue
            return reply

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reply_seq(reply: p.ActionPacket | p.Header) -> int:
    """Sequence number of a decoded reply."""
    return reply.sequence if isinstance(reply, p.Header) else reply.header.sequence


def _reason(code: int) -> p.RejectReason | int:
    try:
        return p.RejectReason(code)
    except ValueError:
        return code


def _reason_name(reason: p.RejectReason | int) -> str:
    return reason.name.lower() if isinstance(reason, p.RejectReason) else f"reason {reason}"
