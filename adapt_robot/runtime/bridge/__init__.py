"""Binary UDP bridge so a robot controller in another process or language drives the adapter.

The wire format is in :mod:`adapt_robot.runtime.bridge.protocol` and ``docs/bridge_protocol.md``;
:class:`~adapt_robot.runtime.bridge.server.BridgeServer` serves a controller,
:class:`~adapt_robot.runtime.bridge.client.BridgeClient` is the Python client, and a dependency-free
C client ships with the package (:func:`c_sources`).
"""

from pathlib import Path

from adapt_robot.runtime.bridge.client import BridgeClient, BridgeRejected, BridgeTimeout
from adapt_robot.runtime.bridge.protocol import PROTOCOL_VERSION, PacketError, RejectReason
from adapt_robot.runtime.bridge.server import BridgeCounters, BridgeServer, BridgeServerConfig


def c_sources() -> Path:
    """Directory holding the C client: ``adapt_bridge.h``, ``adapt_bridge.c``, ``example_main.c``.

    Build it as ``docs/bridge_protocol.md`` shows, e.g.
    ``cc -std=c99 -I"$DIR" "$DIR/adapt_bridge.c" your_controller.c``.
    """
    return Path(__file__).resolve().parent / "c"


__all__ = [
    "PROTOCOL_VERSION",
    "BridgeClient",
    "BridgeCounters",
    "BridgeRejected",
    "BridgeServer",
    "BridgeServerConfig",
    "BridgeTimeout",
    "PacketError",
    "RejectReason",
    "c_sources",
]
