"""sigmai: the mutually authenticated, encrypted channel between the mobile app and ns, sfs and mc.

This package is sans-IO: it turns bytes into events and events into bytes and never touches a socket,
so the servers (gevent) and the reference Mobile SDK (blocking sockets) share one implementation.
The normative specification is docs/sigmai.md; docs/sigmai-test-vectors.json pins the wire bytes.
"""

from sigmai.connection import ClientConnection, ServerConnection, State
from sigmai.errors import ProtocolError
from sigmai.events import Event, HandshakeComplete, MessageReceived
from sigmai.identity import (
    DeviceIdentity,
    PeerKey,
    ServerIdentity,
    server_key_hash,
)

__all__ = [
    "ClientConnection",
    "DeviceIdentity",
    "Event",
    "HandshakeComplete",
    "MessageReceived",
    "PeerKey",
    "ProtocolError",
    "ServerConnection",
    "ServerIdentity",
    "State",
    "server_key_hash",
]
