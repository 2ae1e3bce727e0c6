"""Wire format of the adapter bridge (``docs/bridge_protocol.md`` is the normative description).

Every packet is one UDP datagram, little-endian, packed (no padding)::

    header (28 bytes)
      0  magic         4 bytes  b"ADPT"
      4  version       u16      PROTOCOL_VERSION
      6  type          u16      1 = OBS, 2 = ACTION, 3 = ERROR
      8  sequence      u32      chosen by the client, echoed by the server
     12  obs_dim       u16
     14  act_dim       u16
     16  flags         u32      per type (ObsFlag, ActionFlag, or a RejectReason for ERROR)
     20  timestamp_ns  u64      client's monotonic clock, echoed by the server
    OBS payload:    obs_dim x f32 observation, f32 reward, f32 done (0.0 or 1.0)
    ACTION payload: act_dim x f32 action, u32 params_version
    ERROR payload:  none

Decoding never raises anything but :class:`PacketError`, whose ``reason`` names the counter the
server increments.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"ADPT"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<4sHHIHHIQ")
HEADER_SIZE = HEADER.size
MAX_DATAGRAM = 65507
"""Largest UDP payload over IPv4; bounds the dimensions (obs_dim <= 16366)."""
SEQ_MODULUS = 1 << 32
_F32 = np.dtype("<f4")
_U32 = struct.Struct("<I")


class PacketType(enum.IntEnum):
    """Values of the header's ``type`` field."""

    OBS = 1
    """Client -> server: an observation and the outcome of the previous action."""
    ACTION = 2
    """Server -> client: the action for an OBS packet with the same sequence."""
    ERROR = 3
    """Server -> client: the OBS packet with this sequence was rejected (reason in flags)."""


class ObsFlag(enum.IntFlag):
    """Bits of an OBS packet's ``flags``."""

    NONE = 0
    REWARD_NONE = 1
    """The reward field carries no reward: the controller computes it on the device."""
    EPISODE_START = 2
    """First observation of an episode: it closes no transition."""


class ActionFlag(enum.IntFlag):
    """Bits of an ACTION packet's ``flags`` (status of the reply)."""

    NONE = 0
    FAULT = 1
    """The observation was not usable (NaN/inf): the action is the controller's safe action."""
    CONTROLLER_ERROR = 2
    """The controller raised: the action is all zeros."""
    EPISODE_END = 4
    """The OBS had ``done``: the transition was recorded, no action computed (all zeros)."""


class RejectReason(enum.IntEnum):
    """Why a datagram was rejected; the server keeps one counter per reason."""

    TRUNCATED = 1
    """Shorter than the header."""
    BAD_MAGIC = 2
    """The first four bytes are not ``ADPT``."""
    BAD_VERSION = 3
    """A protocol version this server does not speak."""
    BAD_TYPE = 4
    """Not an OBS packet."""
    BAD_SIZE = 5
    """Length differs from header + payload implied by the header's dimensions."""
    BAD_DIMS = 6
    """obs_dim/act_dim differ from the server's."""
    BAD_DONE = 7
    """The done field is neither 0.0 nor 1.0."""
    STALE_SEQUENCE = 8
    """Sequence older than the newest accepted from this client (a late or replayed packet)."""
    DUPLICATE_SEQUENCE = 9
    """Sequence equal to the newest accepted from this client (a duplicate or replay)."""


class PacketError(ValueError):
    """A datagram that does not decode; ``reason`` says which rule it broke."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(f"{reason.name.lower()}: {message}")
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Header:
    """The fixed 28-byte header of every packet."""

    version: int
    type: int
    sequence: int
    obs_dim: int
    act_dim: int
    flags: int
    timestamp_ns: int


@dataclass(frozen=True, kw_only=True)
class ObsPacket:
    """A decoded OBS packet."""

    header: Header
    obs: np.ndarray
    """float32 ``[obs_dim]`` (may hold NaN/inf: the controller handles those)."""
    reward: float | None
    """``None`` when the REWARD_NONE flag is set."""
    done: bool
    episode_start: bool


@dataclass(frozen=True, kw_only=True)
class ActionPacket:
    """A decoded ACTION packet."""

    header: Header
    action: np.ndarray
    """float32 ``[act_dim]``."""
    params_version: int
    status: ActionFlag


def obs_size(obs_dim: int) -> int:
    """Bytes of an OBS packet."""
    return HEADER_SIZE + 4 * obs_dim + 8


def action_size(act_dim: int) -> int:
    """Bytes of an ACTION packet."""
    return HEADER_SIZE + 4 * act_dim + 4


def _header(
    ptype: PacketType, seq: int, obs_dim: int, act_dim: int, flags: int, stamp: int
) -> bytes:
    return HEADER.pack(
        MAGIC, PROTOCOL_VERSION, int(ptype), seq % SEQ_MODULUS, obs_dim, act_dim, flags, stamp
    )


def encode_obs(
    sequence: int,
    obs: np.ndarray,
    act_dim: int,
    *,
    reward: float | None,
    done: bool,
    episode_start: bool = False,
    timestamp_ns: int = 0,
) -> bytes:
    """Bytes of an OBS packet."""
    values = np.asarray(obs, dtype=_F32).reshape(-1)
    flags = ObsFlag.NONE
    if reward is None:
        flags |= ObsFlag.REWARD_NONE
    if episode_start:
        flags |= ObsFlag.EPISODE_START
    tail = np.array([0.0 if reward is None else reward, 1.0 if done else 0.0], dtype=_F32)
    head = _header(PacketType.OBS, sequence, values.size, act_dim, int(flags), timestamp_ns)
    return head + values.tobytes() + tail.tobytes()


def encode_action(
    header: Header, action: np.ndarray, *, status: ActionFlag, params_version: int
) -> bytes:
    """Bytes of the ACTION reply to the OBS packet with ``header``."""
    values = np.asarray(action, dtype=_F32).reshape(-1)
    head = _header(
        PacketType.ACTION,
        header.sequence,
        header.obs_dim,
        values.size,
        int(status),
        header.timestamp_ns,
    )
    return head + values.tobytes() + _U32.pack(params_version % SEQ_MODULUS)


def encode_error(
    sequence: int, obs_dim: int, act_dim: int, reason: RejectReason, timestamp_ns: int
) -> bytes:
    """Bytes of an ERROR reply (the server's own version and dimensions)."""
    return _header(PacketType.ERROR, sequence, obs_dim, act_dim, int(reason), timestamp_ns)


def decode_header(data: bytes) -> Header:
    """The header of ``data``; checks length, magic and version only."""
    if len(data) < HEADER_SIZE:
        raise PacketError(
            RejectReason.TRUNCATED, f"{len(data)} bytes, the header alone is {HEADER_SIZE}"
        )
    magic, version, ptype, seq, obs_dim, act_dim, flags, stamp = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError(RejectReason.BAD_MAGIC, f"magic {magic!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise PacketError(
            RejectReason.BAD_VERSION, f"version {version}, this side speaks {PROTOCOL_VERSION}"
        )
    return Header(
        version=version,
        type=ptype,
        sequence=seq,
        obs_dim=obs_dim,
        act_dim=act_dim,
        flags=flags,
        timestamp_ns=stamp,
    )


def decode_obs(data: bytes, obs_dim: int, act_dim: int) -> ObsPacket:
    """Decode and validate an OBS packet for a server with these dimensions."""
    h = decode_header(data)
    if h.type != PacketType.OBS:
        raise PacketError(RejectReason.BAD_TYPE, f"type {h.type}, expected OBS (1)")
    if len(data) != obs_size(h.obs_dim):
        raise PacketError(
            RejectReason.BAD_SIZE,
            f"{len(data)} bytes, an OBS of obs_dim {h.obs_dim} is {obs_size(h.obs_dim)}",
        )
    if (h.obs_dim, h.act_dim) != (obs_dim, act_dim):
        raise PacketError(
            RejectReason.BAD_DIMS,
            f"dims (obs {h.obs_dim}, act {h.act_dim}), the server has (obs {obs_dim}, "
            f"act {act_dim})",
        )
    values = np.frombuffer(data, dtype=_F32, count=obs_dim + 2, offset=HEADER_SIZE)
    done = float(values[obs_dim + 1])
    if done not in (0.0, 1.0):
        raise PacketError(RejectReason.BAD_DONE, f"done field {done!r}, expected 0.0 or 1.0")
    flags = ObsFlag(h.flags & (ObsFlag.REWARD_NONE | ObsFlag.EPISODE_START))
    return ObsPacket(
        header=h,
        obs=values[:obs_dim].astype(np.float32),
        reward=None if flags & ObsFlag.REWARD_NONE else float(values[obs_dim]),
        done=done == 1.0,
        episode_start=bool(flags & ObsFlag.EPISODE_START),
    )


def decode_reply(data: bytes) -> ActionPacket | Header:
    """Decode a server reply: an :class:`ActionPacket`, or the :class:`Header` of an ERROR."""
    h = decode_header(data)
    if h.type == PacketType.ERROR:
        if len(data) != HEADER_SIZE:
            raise PacketError(RejectReason.BAD_SIZE, f"ERROR reply of {len(data)} bytes")
        return h
    if h.type != PacketType.ACTION:
        raise PacketError(RejectReason.BAD_TYPE, f"type {h.type}, expected ACTION or ERROR")
    if len(data) != action_size(h.act_dim):
        raise PacketError(
            RejectReason.BAD_SIZE,
            f"{len(data)} bytes, an ACTION of act_dim {h.act_dim} is {action_size(h.act_dim)}",
        )
    action = np.frombuffer(data, dtype=_F32, count=h.act_dim, offset=HEADER_SIZE)
    (version,) = _U32.unpack_from(data, HEADER_SIZE + 4 * h.act_dim)
    return ActionPacket(
        header=h,
        action=action.astype(np.float32),
        params_version=version,
        status=ActionFlag(h.flags & 0b111),
    )


def sequence_newer(seq: int, last: int) -> bool:
    """``seq`` comes after ``last`` in serial-number arithmetic (RFC 1982, 32 bits)."""
    diff = (seq - last) % SEQ_MODULUS
    return 0 < diff < SEQ_MODULUS // 2
