"""The sigmai listener of a service: WebSocket upgrade, handshake under a deadline, then requests.

Runs one greenlet per connection under gevent's StreamServer. Any protocol failure closes the socket
with a bare policy-violation close code: the peer learns nothing about what went wrong; the log does.
"""

import logging
import socket
from collections.abc import Callable

import gevent
from prometheus_client import Counter, Gauge, Histogram

from authserver.config import Network
from authserver.operations import ChannelContext, Operations
from authserver.outage import OutageLog
from authserver.ratelimit import client_ip
from authserver.transport.inflight import InFlight
from sigmai import HandshakeComplete, MessageReceived, PeerKey, ProtocolError, ServerConnection, messages
from sigmai.connection import KeyLookup
from sigmai.constants import RECORD_OVERHEAD
from sigmai.websocket import WebSocket, WebSocketClosed

log = logging.getLogger("nextauth.sigmai")

_POLICY_VIOLATION = 1008
_TRY_AGAIN_LATER = 1013

HANDSHAKES = Counter(
    "nextauth_sigmai_handshakes_total", "sigmai handshakes by outcome", ["component", "outcome"]
)
# livesum: with several workers (multiprocess metrics), the channels open in the live ones, added up.
OPEN_CHANNELS = Gauge(
    "nextauth_sigmai_open_channels", "Established sigmai channels", ["component"], multiprocess_mode="livesum"
)
REQUESTS = Histogram(
    "nextauth_sigmai_request_seconds", "Time to answer one request on a channel", ["component", "op"]
)


class SigmaiEndpoint:
    def __init__(
        self,
        component: str,
        key_lookup: KeyLookup,
        operations: Operations,
        *,
        max_message: int,
        handshake_timeout: float,
        idle_timeout: float = 300.0,
        on_handshake: Callable[[PeerKey], None] | None = None,
        trusted_proxies: tuple[Network, ...] = (),
        inflight: InFlight | None = None,
    ) -> None:
        self.component = component
        self._key_lookup = key_lookup
        self._operations = operations
        self._max_message = max_message
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._on_handshake = on_handshake
        self._trusted_proxies = trusted_proxies
        self._inflight = inflight or InFlight()
        self._hook_failures = OutageLog(log, f"{component} sigmai handshake hook")
        # Resolved once: looking a metric's labels up costs about as much as the count itself.
        self._handshakes_ok = HANDSHAKES.labels(component, "ok")
        self._open_channels = OPEN_CHANNELS.labels(component)
        self._request_timers: dict[str, Histogram] = {}  # by operation name, or "?" for one not offered

    def __call__(self, sock: socket.socket, address: tuple) -> None:
        """gevent StreamServer handler: owns the socket until the channel ends."""
        with self._inflight.track():
            self._inflight.hand_over()
            self._channel(sock, address)

    def _channel(self, sock: socket.socket, address: tuple) -> None:
        ws: WebSocket | None = None
        try:
            with gevent.Timeout(self._handshake_timeout):
                ws, request = WebSocket.accept(sock, max_message=self._max_message + RECORD_OVERHEAD)
                connection, done = self._handshake(ws)
        except gevent.Timeout:
            HANDSHAKES.labels(self.component, "timeout").inc()
            log.info("sigmai handshake from %s timed out", address[0])
            self._close(ws, sock)
            return
        except ProtocolError as exc:
            HANDSHAKES.labels(self.component, "failed").inc()
            log.info("sigmai handshake from %s failed: %s", address[0], exc)
            self._close(ws, sock)
            return
        except WebSocketClosed:
            HANDSHAKES.labels(self.component, "closed").inc()
            self._close(ws, sock)
            return
        self._handshakes_ok.inc()
        assert ws is not None
        context = ChannelContext(
            component=self.component,
            peer=done.peer,
            server_key_hash=done.server_key_hash,
            transcript_hash=done.transcript_hash,
            export=connection.export,
            client_ip=client_ip(str(address[0]), request.forwarded_for, self._trusted_proxies),
        )
        if self._on_handshake is not None:
            try:
                self._on_handshake(done.peer)
            except Exception as exc:  # a database outage: refuse this channel, keep the listener whole
                HANDSHAKES.labels(self.component, "refused").inc()
                self._hook_failures.failed(exc)
                ws.close(_TRY_AGAIN_LATER)
                return
        self._open_channels.inc()
        try:
            sock.settimeout(self._idle_timeout)
            self._serve(ws, connection, context)
        finally:
            self._open_channels.dec()

    def _handshake(self, ws: WebSocket) -> tuple[ServerConnection, HandshakeComplete]:
        connection = ServerConnection(self._key_lookup, max_message=self._max_message)
        while True:
            events = connection.receive(ws.receive())
            for frame in connection.frames_to_send():
                ws.send(frame)
            for event in events:
                if isinstance(event, HandshakeComplete):
                    return connection, event
                raise ProtocolError("application data before the handshake completed")

    def _serve(self, ws: WebSocket, connection: ServerConnection, context: ChannelContext) -> None:
        try:
            while True:
                for event in connection.receive(ws.receive()):
                    assert isinstance(event, MessageReceived)
                    request = messages.decode(event.data)
                    with self._request_timer(request.get("op")).time():
                        response = self._operations.dispatch(context, request)
                    ws.send(connection.send(messages.encode(response)))
        except ProtocolError as exc:
            log.info("sigmai channel with %s closed: %s", context.peer.thumbprint(), exc)
            ws.close(_POLICY_VIOLATION)
        except WebSocketClosed:
            ws.abort()

    def _request_timer(self, op: object) -> Histogram:
        label = op if isinstance(op, str) and self._operations.offers(op) else "?"
        timer = self._request_timers.get(label)
        if timer is None:
            timer = self._request_timers[label] = REQUESTS.labels(self.component, label)
        return timer

    @staticmethod
    def _close(ws: WebSocket | None, sock: socket.socket) -> None:
        if ws is not None:
            ws.close(_POLICY_VIOLATION)
        else:
            try:
                sock.close()
            except OSError:
                pass
