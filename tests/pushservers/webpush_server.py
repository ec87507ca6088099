"""A local Web Push service over TLS, as a browser vendor runs one: RFC 8030 delivery, RFC 8292 VAPID, and
the user agent's side of RFC 8291 (it decrypts what it receives, as the browser would).

``subscribe(vapid_public_key)`` plays the browser's ``pushManager.subscribe``: a fresh P-256 key pair and
auth secret, an endpoint on this server, bound to the application server key given (RFC 8292 section
4), and answers what ``PushSubscription.toJSON()`` would.

What it checks on ``POST /push/<id>``, as push services do:

- the subscription exists (else 404) and is not gone (a test can ``drop`` it: 410);
- ``TTL`` is present and a non-negative integer (RFC 8030 section 5.2: a push without one is refused);
  ``Urgency`` is one of the four values; ``Topic`` is at most 32 base64url characters;
- ``Authorization: vapid t=<JWT>, k=<key>``: ``k`` is the key the subscription was bound to (else 403);
  the JWT is ES256 over ``{typ, alg}``, its signature verifies with ``k``, ``aud`` is this service's
  origin, ``exp`` is in the future and at most 24 h ahead, ``sub`` is a mailto: or https: URI (else 401
  or 403 as RFC 8292 section 4.2 says);
- ``Content-Encoding: aes128gcm`` and a body that decrypts with the subscription's private key and auth
  secret (RFC 8291; else 400). The decryption here is written apart from the MC's encryption on purpose:
  a shared mistake would otherwise pass.

Accepted pushes answer ``201 Created`` with a ``Location``; tests read them from ``received``.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.pushservers import ServerCertificate

URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_PUSH_PATH = re.compile(r"/push/([A-Za-z0-9_\-]{16,64})")
_VAPID = re.compile(r"vapid\s+t=([A-Za-z0-9_\-.]+)\s*,\s*k=([A-Za-z0-9_\-]+)")
MAX_BODY = 4096  # RFC 8030 section 7.2: what every push service must take, and what this one takes


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_\-]*", text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _expand_one(prk: bytes, info: bytes, length: int) -> bytes:
    # HKDF-Expand for outputs of at most one hash length: T(1) = HMAC(PRK, info || 0x01).
    return _hmac(prk, info + b"\x01")[:length]


def decrypt(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """The user agent's side of RFC 8291: the aes128gcm body back to the message. ValueError if it is not
    well formed or does not authenticate."""
    if len(body) < 21:
        raise ValueError("shorter than the aes128gcm header")
    salt, (record_size, id_length) = body[:16], struct.unpack("!IB", body[16:21])
    sender_public = body[21 : 21 + id_length]
    if id_length != 65 or record_size < 18:
        raise ValueError("the key id is not a P-256 public key, or the record size is too small")
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    receiver_public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = private_key.exchange(ec.ECDH(), sender)
    ikm = _expand_one(_hmac(auth, shared), b"WebPush: info\x00" + receiver_public + sender_public, 32)
    prk = _hmac(salt, ikm)
    key = _expand_one(prk, b"Content-Encoding: aes128gcm\x00", 16)
    base_nonce = _expand_one(prk, b"Content-Encoding: nonce\x00", 12)
    records = body[21 + id_length :]
    chunks = [records[i : i + record_size] for i in range(0, len(records), record_size)] or [b""]
    message = b""
    for sequence, chunk in enumerate(chunks):
        nonce = (int.from_bytes(base_nonce, "big") ^ sequence).to_bytes(12, "big")
        try:
            padded = AESGCM(key).decrypt(nonce, chunk, None)
        except InvalidTag:
            raise ValueError("a record does not authenticate") from None
        unpadded = padded.rstrip(b"\x00")
        last = sequence == len(chunks) - 1
        if not unpadded or unpadded[-1] != (2 if last else 1):
            raise ValueError("wrong padding delimiter")
        message += unpadded[:-1]
    return message


@dataclass
class WebPushSubscription:
    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str

    def to_json(self) -> dict[str, Any]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "keys": {"p256dh": _b64(public), "auth": _b64(self.auth)}}


@dataclass
class ReceivedPush:
    subscription: str
    headers: dict[str, str]
    claims: dict[str, Any]
    plaintext: bytes


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscriptions: dict[str, WebPushSubscription] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    received: list[ReceivedPush] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


class WebPushServer:
    """Serves on 127.0.0.1, a free port, HTTPS only."""

    def __init__(self, certificate: ServerCertificate, *, host: str = "127.0.0.1") -> None:
        self._state = _State()
        server = self

        class Handler(_Handler):
            service = server

        self._httpd = _QuietServer((host, 0), Handler)
        self._httpd.socket = certificate.context().wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port: int = self._httpd.server_address[1]
        self.origin = f"https://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="webpush-server",
            daemon=True,
        )
        self._thread.start()

    # -- steering and inspection -------------------------------------------------------------------

    def subscribe(self, application_server_key: str, *, host: str | None = None) -> WebPushSubscription:
        """``host``: name this service by another name in the endpoint (``localhost``); its certificate
        is for both."""
        subscription_id = secrets.token_urlsafe(24)
        origin = f"https://{host}:{self.port}" if host else self.origin
        subscription = WebPushSubscription(
            id=subscription_id,
            endpoint=f"{origin}/push/{subscription_id}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=secrets.token_bytes(16),
            application_server_key=application_server_key,
        )
        with self._state.lock:
            self._state.subscriptions[subscription_id] = subscription
        return subscription

    def find(self, endpoint: str) -> WebPushSubscription:
        with self._state.lock:
            return next(s for s in self._state.subscriptions.values() if s.endpoint == endpoint)

    def drop(self, subscription: WebPushSubscription) -> None:
        """The browser unsubscribed: pushes to it get 410 Gone from now on."""
        with self._state.lock:
            self._state.gone.add(subscription.id)

    @property
    def received(self) -> list[ReceivedPush]:
        with self._state.lock:
            return list(self._state.received)

    @property
    def refused(self) -> list[tuple[int, str]]:
        with self._state.lock:
            return list(self._state.refused)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedPush]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(received := self.received) >= count:
                return received
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} pushes arrived, not {count}; refused: {self.refused}")

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- the protocol ------------------------------------------------------------------------------

    def push(self, path: str, headers: dict[str, str], body: bytes) -> str:
        match = _PUSH_PATH.fullmatch(path)
        with self._state.lock:
            subscription = self._state.subscriptions.get(match.group(1)) if match else None
            gone = subscription is not None and subscription.id in self._state.gone
        if subscription is None:
            raise _Refused(404, "no such subscription")
        if gone:
            raise _Refused(410, "the subscription has expired or was unsubscribed")
        ttl = headers.get("ttl")
        if ttl is None or not ttl.isdigit():
            raise _Refused(400, "TTL missing or not a whole number")
        if headers.get("urgency", "normal") not in URGENCIES:
            raise _Refused(400, "unknown Urgency")
        if "topic" in headers and not _TOPIC.fullmatch(headers["topic"]):
            raise _Refused(400, "Topic must be at most 32 base64url characters")
        claims = self._check_vapid(headers.get("authorization", ""), subscription)
        if headers.get("content-encoding") != "aes128gcm":
            raise _Refused(400, "Content-Encoding must be aes128gcm")
        try:
            plaintext = decrypt(body, subscription.private_key, subscription.auth)
        except ValueError as exc:
            raise _Refused(400, f"cannot decrypt: {exc}") from None
        with self._state.lock:
            self._state.received.append(ReceivedPush(subscription.id, headers, claims, plaintext))
        return f"/message/{secrets.token_urlsafe(12)}"

    def _check_vapid(self, authorization: str, subscription: WebPushSubscription) -> dict[str, Any]:
        match = _VAPID.fullmatch(authorization.strip())
        if match is None:
            raise _Refused(401, "Authorization must be 'vapid t=..., k=...'")
        token, key = match.groups()
        if not hmac.compare_digest(key, subscription.application_server_key):
            raise _Refused(403, "the subscription is bound to another application server key")
        parts = token.split(".")
        if len(parts) != 3:
            raise _Refused(401, "the VAPID token is not a JWS")
        try:
            header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(key))
        except ValueError:
            raise _Refused(401, "the VAPID token or key is malformed") from None
        if header != {"typ": "JWT", "alg": "ES256"} or len(signature) != 64:
            raise _Refused(401, "the VAPID token must be an ES256 JWT")
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            public.verify(
                encode_dss_signature(r, s), f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise _Refused(403, "the VAPID signature does not verify") from None
        now = time.time()
        origin = subscription.endpoint[: subscription.endpoint.index("/push/")]
        if claims.get("aud") != origin:
            raise _Refused(403, "aud is not this push service's origin")
        exp = claims.get("exp")
        if not isinstance(exp, int) or not now < exp <= now + 24 * 3600:
            raise _Refused(403, "exp is past or more than 24 hours ahead")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https://")):
            raise _Refused(403, "sub must be a mailto: or https: contact")
        return dict(claims)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A refused handshake is expected in some tests; no traceback on stderr."""


class _Handler(BaseHTTPRequestHandler):
    service: WebPushServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 5

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            self._answer(411 if length is None else 413, "bad length")
            return
        body = self.rfile.read(int(length))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            location = self.service.push(self.path, headers, body)
        except _Refused as refused:
            with self.service._state.lock:
                self.service._state.refused.append((refused.status, refused.reason))
            self._answer(refused.status, refused.reason)
            return
        self._answer(201, "", {"Location": location, "TTL": headers.get("ttl", "0")})

    def _answer(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        encoded = json.dumps({"reason": reason}).encode() if reason else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(encoded)))
        if encoded:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what the server recorded instead."""
