"""A local APNs provider API: HTTP/2 only, over TLS, written with the sans-IO ``h2`` library.

Like Apple's servers it speaks nothing but HTTP/2 negotiated by ALPN: a client that does not select
"h2" in the TLS handshake has its connection closed before any HTTP byte (``refused_connections``
counts those). Each connection gets its own thread and its own ``h2.connection.H2Connection``; every
request is a stream on it, so a client that reuses its connection shows up as one entry in
``connections`` with many requests.

``POST /3/device/<token>`` is checked as APNs does:

- the provider token: ``authorization: bearer <JWT>``, ES256 with header ``kid`` = the key id, signature
  (raw r||s) verified with the key's public half, ``iss`` = the team id, ``iat`` not in the future and
  not older than an hour (``ExpiredProviderToken``; also for tokens a test expired with
  ``expire_provider_tokens``);
- headers: ``apns-topic`` = the bundle id, ``apns-push-type`` known, ``apns-priority`` 1/5/10 (5 or 1 for
  background pushes), ``apns-expiration`` a number, ``apns-collapse-id`` <= 64 bytes, ``apns-id`` a
  UUID, no header twice;
- the device token: 64 hex characters (``BadDeviceToken``), not unregistered (410 ``Unregistered`` with a
  ``timestamp``);
- the payload: present, <= 4096 bytes (413 ``PayloadTooLarge``), a JSON object with an ``aps`` object; a
  background push carries ``content-available: 1`` and no alert. (Apple names no reason for a malformed
  payload; this server answers 400 ``BadPayload``.)

It answers 200 with an ``apns-id`` header, or the status and ``{"reason": ...}`` APNs uses.
"""

import base64
import binascii
import json
import re
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.pushservers import ServerCertificate

MAX_PAYLOAD_BYTES = 4096
PUSH_TYPES = frozenset(
    {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity"}
)
_DEVICE_PATH = re.compile(r"/3/device/([^/?#]*)")
_DEVICE_TOKEN = re.compile(r"[0-9a-fA-F]{64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass
class ApnsRequest:
    connection: int
    stream_id: int
    method: str
    path: str
    device_token: str
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class _Failure:
    status: int
    reason: str
    retry_after: str | None


class _Refused(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        extra: dict[str, Any] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.extra, self.headers = status, reason, extra or {}, headers or []


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[ApnsRequest] = field(default_factory=list)
    provider_tokens: list[str] = field(default_factory=list)
    expired_tokens: set[str] = field(default_factory=set)
    unregistered: dict[str, int] = field(default_factory=dict)
    failures: list[_Failure] = field(default_factory=list)
    connections: int = 0
    refused_connections: int = 0
    alpn: list[str | None] = field(default_factory=list)


def _b64url_decode(part: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_\-]*", part):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


class ApnsServer:
    """Serves on 127.0.0.1, a free port; ``url`` is the provider's ``base_url``."""

    def __init__(
        self,
        certificate: ServerCertificate,
        public_key: ec.EllipticCurvePublicKey,
        *,
        key_id: str,
        team_id: str,
        topic: str,
        clock_skew: int = 60,
    ) -> None:
        self.public_key, self.key_id, self.team_id, self.topic = public_key, key_id, team_id, topic
        self.clock_skew = clock_skew
        self._context = certificate.context(alpn=["h2"])
        self._state = _State()
        self._listener = socket.create_server(("127.0.0.1", 0))
        # accept() wakes up now and then to notice stop(); closing a socket does not wake it on Linux.
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._stopping = threading.Event()
        self._live: set[ssl.SSLSocket] = set()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept, name="apns-server", daemon=True)
        self._accept_thread.start()

    # -- steering and inspection -------------------------------------------------------------------

    @property
    def requests(self) -> list[ApnsRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def provider_tokens(self) -> list[str]:
        """Distinct provider tokens seen, in the order they first came."""
        with self._state.lock:
            return list(self._state.provider_tokens)

    @property
    def connections(self) -> int:
        """Connections that negotiated h2."""
        with self._state.lock:
            return self._state.connections

    @property
    def refused_connections(self) -> int:
        """Connections closed because the TLS handshake failed or did not select h2."""
        with self._state.lock:
            return self._state.refused_connections

    @property
    def alpn_protocols(self) -> list[str | None]:
        """What each connection's TLS handshake selected by ALPN (None: nothing)."""
        with self._state.lock:
            return list(self._state.alpn)

    def unregister(self, device_token: str, timestamp_ms: int | None = None) -> None:
        with self._state.lock:
            self._state.unregistered[device_token.lower()] = timestamp_ms or int(time.time() * 1000)

    def expire_provider_tokens(self) -> None:
        """Every provider token seen so far gets 403 ExpiredProviderToken from now on."""
        with self._state.lock:
            self._state.expired_tokens.update(self._state.provider_tokens)

    def fail_next(self, status: int, reason: str, *, retry_after: str | None = None, count: int = 1) -> None:
        """The next ``count`` authenticated pushes get ``status`` with ``reason``."""
        with self._state.lock:
            self._state.failures.extend(_Failure(status, reason, retry_after) for _ in range(count))

    def reset(self) -> None:
        with self._state.lock:
            self._state.requests.clear()
            self._state.unregistered.clear()
            self._state.failures.clear()
            self._state.expired_tokens.update(self._state.provider_tokens)
            self._state.provider_tokens.clear()
            self._state.connections = 0
            self._state.refused_connections = 0
            self._state.alpn.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._accept_thread.join(timeout=5)
        self._listener.close()
        with self._state.lock:
            live = list(self._live)
        for sock in live:
            # shutdown() wakes a thread blocked in recv() on this socket; close() would not.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    # -- connections -------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(10)
            thread = threading.Thread(target=self._connection, args=(raw,), name="apns-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _connection(self, raw: socket.socket) -> None:
        # wrap_socket takes over raw's file descriptor (raw is detached): from here on only tls is open.
        tls = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        with self._state.lock:
            self._live.add(tls)
        try:
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError):
                self._refuse(None)
                return
            protocol = tls.selected_alpn_protocol()
            if protocol != "h2":
                # APNs is HTTP/2 only: no HTTP/1.1 answer, no h2c upgrade, just a closed connection.
                self._refuse(protocol)
                return
            with self._state.lock:
                self._state.connections += 1
                self._state.alpn.append(protocol)
                number = self._state.connections
            self._serve_h2(tls, number)
        except OSError:
            pass
        finally:
            with self._state.lock:
                self._live.discard(tls)
            tls.close()

    def _refuse(self, protocol: str | None) -> None:
        with self._state.lock:
            self._state.refused_connections += 1
            self._state.alpn.append(protocol)

    def _serve_h2(self, tls: ssl.SSLSocket, number: int) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        while not self._stopping.is_set():
            try:
                data = tls.recv(65536)
            except (TimeoutError, OSError):
                return
            if not data:
                return
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                # Not HTTP/2 after all (or broken): h2 has queued a GOAWAY; send it and hang up.
                tls.sendall(conn.data_to_send())
                return
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    pairs = [(str(name), str(value)) for name, value in event.headers or []]
                    streams[event.stream_id] = (pairs, bytearray())
                    if event.stream_ended is not None:
                        self._respond(conn, number, event.stream_id, *streams.pop(event.stream_id))
                elif isinstance(event, h2.events.DataReceived):
                    if (
                        event.stream_id in streams
                        and len(streams[event.stream_id][1]) <= 2 * MAX_PAYLOAD_BYTES
                    ):
                        streams[event.stream_id][1].extend(event.data)
                    # Give the flow-control window back, or a client could only ever send 64 KiB.
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    if event.stream_id in streams:
                        self._respond(conn, number, event.stream_id, *streams.pop(event.stream_id))
                elif isinstance(event, h2.events.StreamReset):
                    streams.pop(event.stream_id, None)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    tls.sendall(conn.data_to_send())
                    return
            outgoing = conn.data_to_send()
            if outgoing:
                tls.sendall(outgoing)

    def _respond(
        self,
        conn: h2.connection.H2Connection,
        number: int,
        stream_id: int,
        header_list: list[tuple[str, str]],
        body: bytearray,
    ) -> None:
        headers: dict[str, str] = {}
        duplicate = False
        for name, value in header_list:
            duplicate = duplicate or name in headers
            headers[name] = value
        apns_id = headers.get("apns-id") if _UUID.fullmatch(headers.get("apns-id", "")) else None
        apns_id = (apns_id or str(uuid.uuid4())).upper()
        try:
            self._answer(conn, number, stream_id, headers, bytes(body), duplicate, apns_id)
        except h2.exceptions.StreamClosedError:
            pass  # the client reset the stream meanwhile; nobody to answer

    def _answer(
        self,
        conn: h2.connection.H2Connection,
        number: int,
        stream_id: int,
        headers: dict[str, str],
        body: bytes,
        duplicate: bool,
        apns_id: str,
    ) -> None:
        try:
            if duplicate:
                raise _Refused(400, "DuplicateHeaders")
            self._handle(number, stream_id, headers, body)
        except _Refused as refused:
            answer = json.dumps({"reason": refused.reason, **refused.extra}).encode()
            response = [
                (":status", str(refused.status)),
                ("apns-id", apns_id),
                ("content-type", "application/json"),
                ("content-length", str(len(answer))),
                *refused.headers,
            ]
            conn.send_headers(stream_id, response)
            conn.send_data(stream_id, answer, end_stream=True)
            return
        conn.send_headers(stream_id, [(":status", "200"), ("apns-id", apns_id)], end_stream=True)

    # -- one push ------------------------------------------------------------------------------------

    def _handle(self, number: int, stream_id: int, headers: dict[str, str], body: bytes) -> None:
        if headers.get(":method") != "POST":
            raise _Refused(405, "MethodNotAllowed")
        path = headers.get(":path", "")
        match = _DEVICE_PATH.fullmatch(path)
        if match is None:
            raise _Refused(404, "BadPath")
        device_token = match.group(1)
        if not device_token:
            raise _Refused(400, "MissingDeviceToken")
        with self._state.lock:
            failure = self._state.failures.pop(0) if self._state.failures else None
        if failure is not None:
            retry = [("retry-after", failure.retry_after)] if failure.retry_after is not None else []
            raise _Refused(failure.status, failure.reason, headers=retry)
        self._verify_provider_token(headers.get("authorization"))
        topic = headers.get("apns-topic")
        if not topic:
            raise _Refused(400, "MissingTopic")
        if topic != self.topic:
            raise _Refused(400, "TopicDisallowed")
        push_type = headers.get("apns-push-type")
        if push_type not in PUSH_TYPES:
            raise _Refused(400, "InvalidPushType")
        priority = headers.get("apns-priority", "10")
        # Apple: a background push at priority 10 is an error; it goes at 5 (or 1).
        if priority not in {"1", "5", "10"} or (push_type == "background" and priority == "10"):
            raise _Refused(400, "BadPriority")
        if "apns-expiration" in headers and not headers["apns-expiration"].isdigit():
            raise _Refused(400, "BadExpirationDate")
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            raise _Refused(400, "BadCollapseId")
        if "apns-id" in headers and not _UUID.fullmatch(headers["apns-id"]):
            raise _Refused(400, "BadMessageId")
        if not _DEVICE_TOKEN.fullmatch(device_token):
            raise _Refused(400, "BadDeviceToken")
        if not body:
            raise _Refused(400, "PayloadEmpty")
        if len(body) > MAX_PAYLOAD_BYTES:
            raise _Refused(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "BadPayload") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            raise _Refused(400, "BadPayload")
        aps = payload["aps"]
        if push_type == "background" and (
            aps.get("content-available") != 1 or {"alert", "sound", "badge"} & aps.keys()
        ):
            raise _Refused(400, "BadPayload")
        with self._state.lock:
            unregistered_at = self._state.unregistered.get(device_token.lower())
        if unregistered_at is not None:
            raise _Refused(410, "Unregistered", {"timestamp": unregistered_at})
        with self._state.lock:
            self._state.requests.append(
                ApnsRequest(number, stream_id, "POST", path, device_token, dict(headers), payload)
            )

    def _verify_provider_token(self, authorization: str | None) -> None:
        if not authorization:
            raise _Refused(403, "MissingProviderToken")
        scheme, _, token = authorization.partition(" ")
        parts = token.split(".")
        if scheme.lower() != "bearer" or len(parts) != 3:
            raise _Refused(403, "InvalidProviderToken")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise _Refused(403, "InvalidProviderToken") from None
        if (
            not isinstance(header, dict)
            or not isinstance(claims, dict)
            or header.get("alg") != "ES256"
            or header.get("kid") != self.key_id
            or len(signature) != 64
        ):
            raise _Refused(403, "InvalidProviderToken")
        # JWS carries r||s; cryptography verifies the DER form.
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self.public_key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise _Refused(403, "InvalidProviderToken") from None
        iat = claims.get("iat")
        if (
            claims.get("iss") != self.team_id
            or not isinstance(iat, int)
            or iat > time.time() + self.clock_skew
        ):
            raise _Refused(403, "InvalidProviderToken")
        with self._state.lock:
            if token not in self._state.provider_tokens:
                self._state.provider_tokens.append(token)
            expired = token in self._state.expired_tokens
        if expired or time.time() - iat > 3600:
            raise _Refused(403, "ExpiredProviderToken")
