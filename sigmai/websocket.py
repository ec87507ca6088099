"""A blocking WebSocket over one socket, built on wsproto: the thin transport under sigmai.

This is the one module of the package that touches sockets. The servers run it under gevent (a blocking
call yields to other greenlets), the reference Mobile SDK on plain threads. Only binary messages are
carried; a message larger than ``max_message`` closes the connection (1009) before it is buffered whole.
"""

import socket
from dataclasses import dataclass

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

_READ_SIZE = 65536


class WebSocketClosed(Exception):
    """The peer closed, the socket failed, or the peer broke the WebSocket protocol."""


@dataclass(frozen=True)
class UpgradeRequest:
    host: str
    target: str
    forwarded_for: str | None = None  # X-Forwarded-For, believed only when a trusted proxy sent it


class WebSocket:
    def __init__(self, sock: socket.socket, connection_type: ConnectionType, max_message: int) -> None:
        self._sock = sock
        # Handshake messages and requests are small writes in a row: without this, Nagle's algorithm
        # meets delayed ACKs and every channel waits about 40 ms.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._ws = WSConnection(connection_type)
        self._max_message = max_message
        self._pending: list[object] = []
        self._partial = bytearray()
        self.closed = False

    # -- opening ---------------------------------------------------------------------------------------

    @classmethod
    def accept(cls, sock: socket.socket, *, max_message: int) -> tuple["WebSocket", UpgradeRequest]:
        """Server side: read the HTTP upgrade request and accept it."""
        ws = cls(sock, ConnectionType.SERVER, max_message)
        event = ws._next_event()
        if not isinstance(event, Request):
            ws.abort()
            raise WebSocketClosed("expected an upgrade request")
        ws._send(AcceptConnection())
        forwarded = [
            value.decode("latin-1")
            for name, value in event.extra_headers
            if name.lower() == b"x-forwarded-for"
        ]
        return ws, UpgradeRequest(
            host=event.host, target=event.target, forwarded_for=",".join(forwarded) or None
        )

    @classmethod
    def connect(cls, sock: socket.socket, host: str, target: str, *, max_message: int) -> "WebSocket":
        """Client side: send the upgrade request and wait for the server to accept it."""
        ws = cls(sock, ConnectionType.CLIENT, max_message)
        ws._send(Request(host=host, target=target))
        event = ws._next_event()
        if not isinstance(event, AcceptConnection):
            ws.abort()
            raise WebSocketClosed("the server refused the WebSocket upgrade")
        return ws

    # -- messages --------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closed:
            raise WebSocketClosed("connection closed")
        self._send(BytesMessage(data=data))

    def receive(self) -> bytes:
        """The next complete binary message. Raises WebSocketClosed when the connection ends."""
        while True:
            event = self._next_event()
            if isinstance(event, BytesMessage):
                if len(self._partial) + len(event.data) > self._max_message:
                    self.close(CloseReason.MESSAGE_TOO_BIG)
                    raise WebSocketClosed("message too big")
                self._partial += event.data
                if event.message_finished:
                    message, self._partial = bytes(self._partial), bytearray()
                    return message
            elif isinstance(event, TextMessage):
                self.close(CloseReason.UNSUPPORTED_DATA)
                raise WebSocketClosed("text messages are not part of this protocol")
            elif isinstance(event, Ping):
                self._send(event.response())
            elif isinstance(event, CloseConnection):
                self._close_after_peer(event)
                raise WebSocketClosed("peer closed")

    def close(self, code: int = CloseReason.NORMAL_CLOSURE) -> None:
        """Close without a reason text: failures never tell the peer why."""
        if not self.closed:
            try:
                self._send(CloseConnection(code=code))
            except (WebSocketClosed, LocalProtocolError):
                pass
        self.abort()

    def abort(self) -> None:
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

    # -- plumbing --------------------------------------------------------------------------------------

    def _close_after_peer(self, event: CloseConnection) -> None:
        try:
            self._send(event.response())
        except (WebSocketClosed, LocalProtocolError):
            pass
        self.abort()

    def _next_event(self) -> object:
        while not self._pending:
            if self.closed:
                raise WebSocketClosed("connection closed")
            try:
                data = self._sock.recv(_READ_SIZE)
            except (OSError, TimeoutError) as exc:
                self.abort()
                raise WebSocketClosed("socket error") from exc
            if not data:
                self.abort()
                raise WebSocketClosed("connection lost")
            try:
                self._ws.receive_data(data)
                self._pending.extend(self._ws.events())
            except RemoteProtocolError as exc:
                if exc.event_hint is not None:
                    self._send_raw(self._ws.send(exc.event_hint))
                self.abort()
                raise WebSocketClosed("WebSocket protocol violation") from exc
        return self._pending.pop(0)

    def _send(self, event: object) -> None:
        try:
            data = self._ws.send(event)  # type: ignore[arg-type]
        except LocalProtocolError as exc:
            raise WebSocketClosed("cannot send in this state") from exc
        self._send_raw(data)

    def _send_raw(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.abort()
            raise WebSocketClosed("socket error") from exc
