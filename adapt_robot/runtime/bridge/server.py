"""UDP bridge server: a controller in this process, driven by a robot controller elsewhere.

:class:`BridgeServer` binds a UDP socket on loopback and answers every valid OBS packet with an
ACTION packet carrying the same sequence number (``docs/bridge_protocol.md``). Per client
address it remembers the newest accepted sequence and whether an action awaits its outcome:

- an OBS that is not ``EPISODE_START`` closes the pending transition:
  ``controller.observe(reward, done, next_obs=obs)``;
- an OBS with ``done`` is answered with zeros and ``EPISODE_END`` (no new action);
- otherwise ``controller.act(obs)`` gives the action.

Malformed, stale and replayed datagrams are dropped and counted by reason; nothing a client
sends can raise out of the receive thread.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from adapt_robot.runtime.bridge import protocol as p
from adapt_robot.runtime.controller import FAULTS_KEY, PARAMS_VERSION_KEY, Controller

_REPLY_ON = frozenset(
    {p.RejectReason.BAD_VERSION, p.RejectReason.BAD_SIZE, p.RejectReason.BAD_DIMS}
)
"""Rejections answered with an ERROR packet: the header is ours, so the sender is a client
with the wrong settings, and an explicit error beats a timeout."""


@dataclass(frozen=True, kw_only=True)
class BridgeServerConfig:
    """Where the server listens and what it accepts."""

    obs_dim: int
    """Observation length the controller expects."""
    act_dim: int
    """Action length the controller returns."""
    host: str = "127.0.0.1"
    """Address to bind; must be a loopback address unless ``allow_remote``."""
    port: int = 0
    """UDP port (0: any free port; read it from :attr:`BridgeServer.address`)."""
    poll_s: float = 0.05
    """Receive timeout of the server thread: how quickly :meth:`BridgeServer.stop` returns."""
    max_clients: int = 16
    """Client addresses remembered (least recently seen is forgotten first)."""
    allow_remote: bool = False
    """Allow a non-loopback ``host`` (the protocol has no authentication: use with care)."""

    def __post_init__(self) -> None:
        max_obs = (p.MAX_DATAGRAM - p.HEADER_SIZE - 8) // 4
        if not 1 <= self.obs_dim <= max_obs:
            raise ValueError(f"obs_dim: expected 1 to {max_obs}, got {self.obs_dim}")
        max_act = (p.MAX_DATAGRAM - p.HEADER_SIZE - 4) // 4
        if not 1 <= self.act_dim <= max_act:
            raise ValueError(f"act_dim: expected 1 to {max_act}, got {self.act_dim}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: expected 0 to 65535, got {self.port}")
        if not self.poll_s > 0:
            raise ValueError(f"poll_s: expected a time > 0, got {self.poll_s}")
        if self.max_clients < 1:
            raise ValueError(f"max_clients: expected an integer >= 1, got {self.max_clients}")
        if not self.allow_remote and not _is_loopback(self.host):
            raise ValueError(
                f"host: {self.host!r} is not a loopback address; the bridge has no "
                "authentication, so bind 127.0.0.1 (or set allow_remote=True deliberately)"
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class BridgeCounters:
    """What the server has seen (a snapshot)."""

    received: int
    """Datagrams received."""
    replied: int
    """ACTION packets produced."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Dropped datagrams per :class:`~adapt_robot.runtime.bridge.protocol.RejectReason` name."""
    faults: int = 0
    """Replies flagged FAULT (non-finite observation, or the controller counted a fault)."""
    controller_errors: int = 0
    """Exceptions raised by the controller (answered with zeros and CONTROLLER_ERROR)."""
    bad_actions: int = 0
    """Controller actions of the wrong shape or non-finite (replaced by zeros)."""
    episodes: int = 0
    """OBS packets with ``done`` (episodes ended by clients)."""
    abandoned: int = 0
    """Pending transitions dropped because the client started a new episode."""
    internal_errors: int = 0
    """Unexpected exceptions while handling a datagram (a bug: please report)."""
    clients: int = 0
    """Client addresses currently remembered."""

    @property
    def rejected_total(self) -> int:
        """All dropped datagrams."""
        return sum(self.rejected.values())


@dataclass
class _Client:
    last_seq: int
    pending: bool = False


class BridgeServer:
    """Serve ``controller`` over UDP; :meth:`start` runs the receive loop in a thread."""

    def __init__(self, controller: Controller, config: BridgeServerConfig) -> None:
        self.controller = controller
        self.config = config
        self._clients: OrderedDict[object, _Client] = OrderedDict()
        self._zeros = np.zeros(config.act_dim, dtype=np.float32)
        self._rejected = dict.fromkeys((r.name.lower() for r in p.RejectReason), 0)
        self._received = self._replied = self._faults = self._controller_errors = 0
        self._bad_actions = self._episodes = self._abandoned = self._internal_errors = 0
        self._last_faults = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server is bound to (after :meth:`start`)."""
        if self._sock is None:
            raise RuntimeError("address: the server is not started; call start() first")
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> BridgeServer:
        """Bind the socket and start the receive thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("start: the server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"bridge: cannot bind UDP {self.config.host}:{self.config.port} ({exc}); "
                "pick another port or use port=0 for a free one"
            ) from exc
        sock.settimeout(self.config.poll_s)
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="adapt-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the receive thread and close the socket (safe from any thread, idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counters(self) -> BridgeCounters:
        """Snapshot of the counters."""
        return BridgeCounters(
            received=self._received,
            replied=self._replied,
            rejected=dict(self._rejected),
            faults=self._faults,
            controller_errors=self._controller_errors,
            bad_actions=self._bad_actions,
            episodes=self._episodes,
            abandoned=self._abandoned,
            internal_errors=self._internal_errors,
            clients=len(self._clients),
        )

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            reply = self.handle(data, addr)
            if reply is not None:
                try:
                    sock.sendto(reply, addr)
                except OSError:
                    self._internal_errors += 1

    def handle(self, data: bytes, addr: object) -> bytes | None:
        """Process one datagram from ``addr``; the reply to send back, or ``None``.

        Never raises: rejections and internal errors are counted. The receive thread calls it;
        call it directly only on a server that is not started (tests, another transport).
        """
        self._received += 1
        try:
            return self._handle(data, addr)
        except Exception:
            self._internal_errors += 1
            return None

    def _handle(self, data: bytes, addr: object) -> bytes | None:
        cfg = self.config
        try:
            pkt = p.decode_obs(data, cfg.obs_dim, cfg.act_dim)
        except p.PacketError as exc:
            return self._reject(exc.reason, data)
        seq = pkt.header.sequence
        client = self._clients.get(addr)
        if client is None:
            client = _Client(last_seq=seq)
            self._clients[addr] = client
            while len(self._clients) > cfg.max_clients:
                self._clients.popitem(last=False)
        elif not p.sequence_newer(seq, client.last_seq):
            reason = (
                p.RejectReason.DUPLICATE_SEQUENCE
                if seq == client.last_seq
                else p.RejectReason.STALE_SEQUENCE
            )
            return self._reject(reason, data)
        else:
            client.last_seq = seq
            self._clients.move_to_end(addr)
        status = p.ActionFlag.NONE
        if client.pending and pkt.episode_start:
            self._abandoned += 1
            client.pending = False
        if client.pending:
            client.pending = False
            try:
                self.controller.observe(pkt.reward, pkt.done, pkt.obs)
            except Exception:
                self._controller_errors += 1
                status |= p.ActionFlag.CONTROLLER_ERROR
        if pkt.done:
            self._episodes += 1
            return self._reply(pkt, self._zeros, status | p.ActionFlag.EPISODE_END)
        action = self._zeros
        try:
            action = self.controller.act(pkt.obs)
            client.pending = True
        except Exception:
            self._controller_errors += 1
            status |= p.ActionFlag.CONTROLLER_ERROR
        if not (
            isinstance(action, np.ndarray)
            and action.shape == (cfg.act_dim,)
            and bool(np.isfinite(action).all())
        ):
            self._bad_actions += 1
            action = self._zeros
            status |= p.ActionFlag.CONTROLLER_ERROR
        if not bool(np.isfinite(pkt.obs).all()):
            status |= p.ActionFlag.FAULT
        return self._reply(pkt, action, status)

    def _reply(self, pkt: p.ObsPacket, action: np.ndarray, status: p.ActionFlag) -> bytes:
        version = 0
        try:
            stats = self.controller.stats()
            version = int(stats.get(PARAMS_VERSION_KEY, 0))
            faults = int(stats.get(FAULTS_KEY, self._last_faults))
        except Exception:
            self._controller_errors += 1
            faults = self._last_faults
        if faults > self._last_faults:
            status |= p.ActionFlag.FAULT
        self._last_faults = faults
        if status & p.ActionFlag.FAULT:
            self._faults += 1
        self._replied += 1
        return p.encode_action(pkt.header, action, status=status, params_version=version)

    def _reject(self, reason: p.RejectReason, data: bytes) -> bytes | None:
        self._rejected[reason.name.lower()] += 1
        if reason not in _REPLY_ON or len(data) < p.HEADER_SIZE:
            return None
        _, _, _, seq, _, _, _, stamp = p.HEADER.unpack_from(data)
        return p.encode_error(seq, self.config.obs_dim, self.config.act_dim, reason, stamp)
