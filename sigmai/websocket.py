"""A blocking WebSocket over one socket, built on the sans-I/O protocol of ``websockets``: the thin
transport under sigmai. A server reads the opening handshake with ``sigmai.upgrade`` and hands the frames
after it to ``websockets``; a client does all of it with ``websockets``.

This is the one module of the package that touches sockets. The servers run it under gevent (a blocking
call yields to other greenlets), the reference Mobile SDK on plain threads. Only binary messages are
carried; a message larger than ``max_message`` closes the connection (1009) before it is buffered whole.
The protocol answers pings and close frames itself; what it has to send goes out before the next read.
"""

import logging
import socket
from dataclasses import dataclass
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from sigmai import upgrade

_READ_SIZE = 65536
# websockets' own loggers, looked up once: its protocols look them up per connection otherwise, under
# logging's lock.
_SERVER_LOG = logging.getLogger("websockets.server")
_CLIENT_LOG = logging.getLogger("websockets.client")
_DATA = (Opcode.BINARY, Opcode.CONT)


class WebSocketClosed(Exception):
    """The peer closed, the socket failed, or the peer broke the WebSocket protocol."""


@dataclass(frozen=True)
class UpgradeRequest:
    host: str
    target: str
    forwarded_for: str | None = None  # X-Forwarded-For, believed only when a trusted proxy sent it


class WebSocket:
    def __init__(
        self, sock: socket.socket, protocol: ClientProtocol | ServerProtocol, max_message: int
    ) -> None:
        self._sock = sock
        # Handshake messages and requests are small writes in a row: without this, Nagle's algorithm
        # meets delayed ACKs and every channel waits about 40 ms.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._protocol = protocol
        self._max_message = max_message
        self._pending: list[Any] = []
        self._partial = bytearray()
        self.closed = False

    # -- opening ---------------------------------------------------------------------------------------

    @classmethod
    def accept(cls, sock: socket.socket, *, max_message: int) -> tuple["WebSocket", UpgradeRequest]:
        """Server side: read the HTTP upgrade request and accept it (or answer why not, and close)."""
        head = bytearray()
        end = -1
        while end < 0:
            if len(head) > upgrade.MAX_HEAD:
                _abort_socket(sock)
                raise WebSocketClosed("upgrade request too large")
            try:
                data = sock.recv(_READ_SIZE)
            except (OSError, TimeoutError) as exc:
                _abort_socket(sock)
                raise WebSocketClosed("socket error") from exc
            if not data:
                _abort_socket(sock)
                raise WebSocketClosed("connection lost")
            searched = len(head)
            head += data
            end = upgrade.head_end(head, searched)
        try:
            request = upgrade.parse(bytes(head[:end]))
        except upgrade.NotHttp as exc:
            _abort_socket(sock)
            raise WebSocketClosed("expected an upgrade request") from exc
        except upgrade.Refused as exc:
            try:
                _send_all(sock, exc.answer)
            except OSError:
                pass  # the client went away: nothing to tell it
            _abort_socket(sock)
            raise WebSocketClosed("not a WebSocket upgrade request") from exc
        protocol = ServerProtocol(max_size=max_message, logger=_SERVER_LOG, state=State.OPEN)
        ws = cls(sock, protocol, max_message)
        ws._send_raw(request.answer)
        if end < len(head):  # frames the client sent right behind its request
            protocol.receive_data(bytes(head[end:]))
            ws._pending.extend(protocol.events_received())
            ws._flush()
        found = UpgradeRequest(host=request.host, target=request.target, forwarded_for=request.forwarded_for)
        return ws, found

    @classmethod
    def connect(cls, sock: socket.socket, host: str, target: str, *, max_message: int) -> "WebSocket":
        """Client side: send the upgrade request and wait for the server to accept it."""
        protocol = ClientProtocol(parse_uri(f"ws://{host}{target}"), max_size=max_message, logger=_CLIENT_LOG)
        ws = cls(sock, protocol, max_message)
        request = protocol.connect()
        del request.headers["Host"]
        request.headers["Host"] = host  # as given: the URI's port, or none
        protocol.send_request(request)
        ws._flush()
        response = ws._next_event()
        if not isinstance(response, Response) or protocol.state is not State.OPEN:
            ws.abort()
            raise WebSocketClosed("the server refused the WebSocket upgrade")
        return ws

    # -- messages --------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.closed or self._protocol.state is not State.OPEN:
            raise WebSocketClosed("connection closed")
        self._protocol.send_binary(data)
        self._flush()

    def receive(self) -> bytes:
        """The next complete binary message. Raises WebSocketClosed when the connection ends."""
        while True:
            frame = self._next_event()
            if not isinstance(frame, Frame):
                self.abort()
                raise WebSocketClosed("unexpected event")
            if frame.opcode in _DATA:
                self._partial += frame.data
                if frame.fin:
                    message, self._partial = bytes(self._partial), bytearray()
                    return message
            elif frame.opcode is Opcode.TEXT:
                self.close(CloseCode.UNSUPPORTED_DATA)
                raise WebSocketClosed("text messages are not part of this protocol")
            elif frame.opcode is Opcode.CLOSE:
                self.abort()  # the protocol has answered it already
                raise WebSocketClosed("peer closed")
            # Pings are answered by the protocol; pongs need nothing.

    def close(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Close without a reason text: failures never tell the peer why."""
        if not self.closed and self._protocol.state is State.OPEN:
            self._protocol.send_close(code)
            try:
                self._flush()
            except WebSocketClosed:
                pass
        self.abort()

    def abort(self) -> None:
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

    # -- plumbing --------------------------------------------------------------------------------------

    def _next_event(self) -> Any:
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
            protocol = self._protocol
            protocol.receive_data(data)
            self._pending.extend(protocol.events_received())
            try:
                self._flush()  # pongs, the answer to a close, a refusal of what broke the protocol
            except WebSocketClosed:
                if not self._pending:
                    raise
                # The peer went away after its last frames (say, right after its close): they still count.
            if protocol.parser_exc is not None and not self._pending:
                self.abort()
                raise WebSocketClosed("WebSocket protocol violation") from protocol.parser_exc
        return self._pending.pop(0)

    def _send_raw(self, data: bytes) -> None:
        try:
            _send_all(self._sock, data)
        except OSError as exc:
            self.abort()
            raise WebSocketClosed("socket error") from exc

    def _flush(self) -> None:
        done = False
        for data in self._protocol.data_to_send():
            if not data:  # the protocol is done with the connection (a server closes it)
                done = True
                continue
            self._send_raw(data)
        if done:
            self.abort()


def _abort_socket(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _send_all(sock: socket.socket, data: bytes) -> None:
    # One send for what fits the socket's buffer, as nearly all messages do; gevent's sendall() asks the
    # kernel for the buffer's size first, every time.
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
