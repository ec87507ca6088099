"""Open a sigmai channel from the app to a service and make requests over it."""

import itertools
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from sigmai import (
    ClientConnection,
    DeviceIdentity,
    HandshakeComplete,
    MessageReceived,
    PeerKey,
    ProtocolError,
    messages,
)
from sigmai.constants import DEFAULT_MAX_MESSAGE, RECORD_OVERHEAD
from sigmai.websocket import WebSocket, WebSocketClosed


class ChannelError(Exception):
    """The channel could not be opened or broke; the message says what the user can do."""


class RemoteError(Exception):
    """The service answered a request with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def tls_client_context(cafile: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


class Channel:
    """An authenticated, encrypted channel to one service. Use as a context manager."""

    def __init__(self, ws: WebSocket, connection: ClientConnection, server: PeerKey) -> None:
        self._ws = ws
        self._connection = connection
        self.server = server
        self.transcript_hash = connection.transcript_hash
        self._ids = itertools.count(1)

    def request(self, op: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = next(self._ids)
        try:
            self._ws.send(self._connection.send(messages.encode(messages.request(request_id, op, params))))
            while True:
                for event in self._connection.receive(self._ws.receive()):
                    assert isinstance(event, MessageReceived)
                    response = messages.decode(event.data)
                    if response.get("id") != request_id:
                        raise ProtocolError("response to another request")
                    if "error" in response:
                        error = response["error"]
                        raise RemoteError(str(error.get("code")), str(error.get("message")))
                    return dict(response["result"])
        except (ProtocolError, WebSocketClosed) as exc:
            self.close()
            raise ChannelError("the channel to the server broke; try again") from exc

    def export(self, label: bytes, context: bytes = b"", length: int = 32) -> bytes:
        return self._connection.export(label, context, length)

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_channel(
    uri: str,
    identity: DeviceIdentity,
    server_key_hash: bytes,
    *,
    timeout: float = 10.0,
    cafile: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> Channel:
    """Connect to ``ws://`` or ``wss://`` ``uri`` and run the handshake against the pinned key hash."""
    parts = urlsplit(uri)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ChannelError(f"not a ws:// or wss:// URI: {uri!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    except OSError as exc:
        raise ChannelError(f"cannot reach {parts.hostname}:{port} ({exc.strerror or exc})") from exc
    try:
        if parts.scheme == "wss":
            sock = tls_client_context(cafile).wrap_socket(sock, server_hostname=parts.hostname)
        host = parts.netloc
        ws = WebSocket.connect(sock, host, target, max_message=max_message + RECORD_OVERHEAD)
        connection = ClientConnection(identity, server_key_hash, max_message=max_message)
        ws.send(connection.initiate())
        (done,) = connection.receive(ws.receive())
        assert isinstance(done, HandshakeComplete)
        for frame in connection.frames_to_send():
            ws.send(frame)
    except ssl.SSLError as exc:
        sock.close()
        raise ChannelError(f"TLS with {parts.hostname} failed: {exc.reason}") from exc
    except (ProtocolError, WebSocketClosed, OSError) as exc:
        sock.close()
        raise ChannelError(
            f"could not establish a secure channel with {uri}: the server is not the one pinned, "
            "or the connection broke"
        ) from exc
    return Channel(ws, connection, done.peer)
