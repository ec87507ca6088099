"""A local FCM HTTP v1 server over TLS: Google's OAuth 2.0 token endpoint and ``messages:send``.

What it checks, as Google does (at a reasonable level):

- ``POST /token``: form-encoded ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``;
  the JWT is RS256 with the service account's ``kid``, its signature verifies with the account's PUBLIC
  key, ``iss`` is the client email, ``aud`` is this token URI, ``scope`` includes firebase.messaging,
  ``iat``/``exp`` are a short-lived (<= 1 h) window around now. Answers ``{access_token, expires_in,
  token_type}`` or an RFC 6749 error (``invalid_grant``...).
- ``POST /v1/projects/<id>/messages:send``: a bearer token this server issued and has not expired, the
  right project, a JSON body shaped like FCM's ``Message``: no unknown fields, exactly one of
  token/topic/condition, string data values and no reserved data keys, ``android.ttl`` as ``"<n>s"``,
  ``android.priority`` normal/high, at most 4 KiB of data. Errors come in Google's format, with FCM's
  ``FcmError`` code in ``details``.

Tests steer it: ``unregistered_tokens``/``invalid_tokens``, ``fail_next`` (e.g. 429 with Retry-After),
``expire_access_tokens`` (the next send gets 401), and read what it got in ``token_requests`` and
``messages``.
"""

import base64
import binascii
import json
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.pushservers import ServerCertificate

MESSAGING_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

_MESSAGE_FIELDS = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options"}
_TARGETS = ("token", "topic", "condition")
_ANDROID_FIELDS = {
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
}
_NOTIFICATION_FIELDS = {"title", "body", "image"}
_TTL = re.compile(r"[0-9]+(\.[0-9]{1,9})?s")
_REGISTRATION_TOKEN = re.compile(r"[A-Za-z0-9_:\-]{8,4096}")
_SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
# What FCM answers with each status (google.rpc status, FcmError code) when a test injects a failure.
_INJECTED: dict[int, tuple[str, str | None]] = {
    401: ("UNAUTHENTICATED", None),
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
    500: ("INTERNAL", "INTERNAL"),
    503: ("UNAVAILABLE", "UNAVAILABLE"),
}
MAX_DATA_BYTES = 4096
MAX_TTL = 28 * 24 * 3600


def make_service_account(
    token_uri: str, project_id: str = "nextauth-test"
) -> tuple[dict[str, str], rsa.RSAPublicKey]:
    """A service-account JSON document like the one Firebase's console hands out, and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    document = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "client_email": f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return document, key.public_key()


@dataclass
class ReceivedMessage:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    access_token: str


@dataclass
class _Failure:
    status: int
    retry_after: str | None


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    access_tokens: dict[str, float] = field(default_factory=dict)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    messages: list[ReceivedMessage] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    unregistered_tokens: set[str] = field(default_factory=set)
    invalid_tokens: set[str] = field(default_factory=set)
    counter: int = 0


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _google_error(
    status: int,
    grpc_status: str,
    message: str,
    fcm_code: str | None = None,
    fields: Sequence[tuple[str, str]] = (),
) -> _Refused:
    details: list[dict[str, Any]] = []
    if fcm_code:
        details.append({"@type": FCM_ERROR, "errorCode": fcm_code})
    if fields:
        details.append(
            {"@type": BAD_REQUEST, "fieldViolations": [{"field": f, "description": d} for f, d in fields]}
        )
    error: dict[str, Any] = {"code": status, "message": message, "status": grpc_status}
    if details:
        error["details"] = details
    return _Refused(status, {"error": error})


def _oauth_error(error: str, description: str) -> _Refused:
    return _Refused(400, {"error": error, "error_description": description})


def _b64url_decode(part: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_\-]*", part):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


class FcmServer:
    """Serves on 127.0.0.1, a free port, HTTPS only. ``token_uri`` is where the provider gets tokens."""

    def __init__(
        self,
        certificate: ServerCertificate,
        public_key: rsa.RSAPublicKey,
        *,
        client_email: str,
        private_key_id: str,
        project_id: str,
        access_token_lifetime: int = 3600,
        clock_skew: int = 300,
    ) -> None:
        self.public_key, self.client_email, self.private_key_id = public_key, client_email, private_key_id
        self.project_id = project_id
        self.access_token_lifetime, self.clock_skew = access_token_lifetime, clock_skew
        self._state = _State()
        server = self

        class Handler(_Handler):
            fcm = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        # The handshake runs in the handler thread (on first read), not in the accept loop, so a client
        # that refuses our certificate cannot stall the server.
        self._httpd.socket = certificate.context().wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port: int = self._httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.token_uri = f"{self.url}/token"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fcm-server", daemon=True
        )
        self._thread.start()

    # -- steering and inspection -------------------------------------------------------------------

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        with self._state.lock:
            return list(self._state.token_requests)

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._state.lock:
            return list(self._state.messages)

    def unregister(self, token: str) -> None:
        with self._state.lock:
            self._state.unregistered_tokens.add(token)

    def mark_invalid(self, token: str) -> None:
        with self._state.lock:
            self._state.invalid_tokens.add(token)

    def fail_next(self, status: int, *, retry_after: str | None = None, count: int = 1) -> None:
        """The next ``count`` authenticated sends get ``status`` (429, 401, 500, 503...)."""
        with self._state.lock:
            self._state.failures.extend(_Failure(status, retry_after) for _ in range(count))

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired from now on."""
        with self._state.lock:
            for token in self._state.access_tokens:
                self._state.access_tokens[token] = 0.0

    def reset(self) -> None:
        with self._state.lock:
            self._state.token_requests.clear()
            self._state.messages.clear()
            self._state.failures.clear()
            self._state.unregistered_tokens.clear()
            self._state.invalid_tokens.clear()
            self._state.access_tokens.clear()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- the token endpoint ---------------------------------------------------------------------------

    def issue_token(self, content_type: str, body: bytes) -> dict[str, Any]:
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise _oauth_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = parse_qs(body.decode("ascii"), strict_parsing=True, keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise _oauth_error("invalid_request", "Malformed form body.") from None
        if any(len(values) != 1 for values in form.values()):
            raise _oauth_error("invalid_request", "Repeated parameter.")
        if form.get("grant_type", [""])[0] != JWT_BEARER_GRANT:
            raise _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", [""])[0]
        header, claims = self._verify_assertion(assertion)
        now = time.time()
        token = "ya29.test-" + secrets.token_urlsafe(32)
        with self._state.lock:
            self._state.access_tokens[token] = now + self.access_token_lifetime
            self._state.token_requests.append({"header": header, "claims": claims})
        return {"access_token": token, "expires_in": self.access_token_lifetime, "token_type": "Bearer"}

    def _verify_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _oauth_error("invalid_grant", "Invalid JWT: not a compact JWS.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise _oauth_error("invalid_grant", "Invalid JWT: bad encoding.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _oauth_error("invalid_grant", "Invalid JWT: header and claims must be objects.")
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            raise _oauth_error("invalid_grant", "Invalid JWT: alg must be RS256.")
        if header.get("kid") != self.private_key_id:
            raise _oauth_error("invalid_grant", "Invalid JWT Signature.")
        try:
            self.public_key.verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise _oauth_error("invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("iss") != self.client_email:
            raise _oauth_error("invalid_grant", "Invalid JWT: iss is not the service account.")
        if claims.get("aud") != self.token_uri:
            raise _oauth_error("invalid_grant", "Invalid JWT: aud must be the token URI.")
        scopes = claims.get("scope")
        if not isinstance(scopes, str) or MESSAGING_SCOPE not in scopes.split(" "):
            raise _oauth_error("invalid_scope", "The firebase.messaging scope is missing.")
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if (
            not isinstance(iat, int)
            or not isinstance(exp, int)
            or iat > now + self.clock_skew
            or exp <= now - self.clock_skew
            or exp <= iat
            or exp - iat > 3600
        ):
            raise _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        return header, claims

    # -- messages:send ---------------------------------------------------------------------------------

    def send(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._state.lock:
            expires = self._state.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if expires is None or expires <= time.time():
                raise _google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                    "login cookie or other valid authentication credential.",
                )
            failure = self._state.failures.pop(0) if self._state.failures else None
        if failure is not None:
            grpc_status, fcm_code = _INJECTED.get(failure.status, ("INTERNAL", "INTERNAL"))
            refused = _google_error(failure.status, grpc_status, "Injected failure.", fcm_code)
            if failure.retry_after is not None:
                refused.headers["Retry-After"] = failure.retry_after
            raise refused
        match = _SEND_PATH.fullmatch(path)
        if match is None:
            raise _google_error(404, "NOT_FOUND", "Method not found.")
        if match.group(1) != self.project_id:
            raise _google_error(
                403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied on resource."
            )
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None
        message = self._validate(document)
        target = message.get("token")
        with self._state.lock:
            unregistered = target in self._state.unregistered_tokens
            invalid = target in self._state.invalid_tokens
        if target is not None and (invalid or not _REGISTRATION_TOKEN.fullmatch(target)):
            raise _google_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                "INVALID_ARGUMENT",
                [("message.token", "Invalid registration token")],
            )
        if unregistered:
            raise _google_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        with self._state.lock:
            self._state.counter += 1
            self._state.messages.append(ReceivedMessage(path, headers, document, token.strip()))
            number = self._state.counter
        return {"name": f"projects/{self.project_id}/messages/0:{number}%{secrets.token_hex(8)}"}

    def _validate(self, document: Any) -> dict[str, Any]:
        """The shape checks of FCM's JSON-to-proto parser and its message validation."""
        problems: list[tuple[str, str]] = []

        def unknown(where: str, value: dict[str, Any], allowed: set[str]) -> None:
            for name in value:
                if name not in allowed:
                    problems.append((where, f'Invalid JSON payload received. Unknown name "{name}"'))

        def string_map(where: str, value: Any) -> None:
            if not isinstance(value, dict):
                problems.append((where, "must be a map of strings"))
                return
            for key, item in value.items():
                if not isinstance(item, str):
                    problems.append((f"{where}[{key}]", "Invalid value (TYPE_STRING)"))
                if key in {"from", "notification", "message_type"} or key.startswith(("google", "gcm")):
                    problems.append((f"{where}[{key}]", "Invalid data key: reserved"))

        if not isinstance(document, dict) or not isinstance(document.get("message"), dict):
            raise _google_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                fields=[("message", "required")],
            )
        unknown("", document, {"message", "validate_only"})
        if "validate_only" in document and not isinstance(document["validate_only"], bool):
            problems.append(("validate_only", "must be a boolean"))
        message: dict[str, Any] = document["message"]
        unknown("message", message, _MESSAGE_FIELDS | set(_TARGETS))
        targets = [name for name in _TARGETS if name in message]
        if len(targets) != 1:
            problems.append(("message", "Exactly one of token, topic or condition must be specified."))
        for name in targets:
            if not isinstance(message[name], str) or not message[name]:
                problems.append((f"message.{name}", "must be a non-empty string"))
        data_bytes = 0
        if "data" in message:
            string_map("message.data", message["data"])
            if isinstance(message["data"], dict):
                data_bytes += sum(
                    len(str(k).encode()) + len(str(v).encode()) for k, v in message["data"].items()
                )
        if "notification" in message:
            notification = message["notification"]
            if not isinstance(notification, dict):
                problems.append(("message.notification", "must be an object"))
            else:
                unknown("message.notification", notification, _NOTIFICATION_FIELDS)
                for key, value in notification.items():
                    if not isinstance(value, str):
                        problems.append((f"message.notification.{key}", "Invalid value (TYPE_STRING)"))
        for name in ("webpush", "apns", "fcm_options"):
            if name in message and not isinstance(message[name], dict):
                problems.append((f"message.{name}", "must be an object"))
        android = message.get("android")
        if android is not None:
            if not isinstance(android, dict):
                problems.append(("message.android", "must be an object"))
            else:
                unknown("message.android", android, _ANDROID_FIELDS)
                ttl = android.get("ttl")
                if ttl is not None and (
                    not isinstance(ttl, str) or not _TTL.fullmatch(ttl) or float(ttl[:-1]) > MAX_TTL
                ):
                    problems.append(("message.android.ttl", 'Invalid value: a duration like "60s"'))
                priority = android.get("priority")
                if priority is not None and (
                    not isinstance(priority, str) or priority.lower() not in {"normal", "high"}
                ):
                    problems.append(("message.android.priority", "Invalid value: normal or high"))
                if "collapse_key" in android and not isinstance(android["collapse_key"], str):
                    problems.append(("message.android.collapse_key", "Invalid value (TYPE_STRING)"))
                if "data" in android:
                    string_map("message.android.data", android["data"])
        if data_bytes > MAX_DATA_BYTES:
            problems.append(("message", "Android message is too big"))
        if problems:
            raise _google_error(400, "INVALID_ARGUMENT", problems[0][1], "INVALID_ARGUMENT", problems)
        return message


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections would otherwise make server_close() wait for their threads.
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A refused handshake (the unknown-CA test) is expected; no traceback on stderr."""


class _Handler(BaseHTTPRequestHandler):
    fcm: FcmServer
    protocol_version = "HTTP/1.1"  # keep-alive, as Google's front end offers
    # Headers and body go out in separate writes; without TCP_NODELAY the client's delayed ACK adds
    # 40 ms to every answer.
    disable_nagle_algorithm = True
    timeout = 5  # idle keep-alive connections end, so their threads do too
    max_body = 1 << 16

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > self.max_body:
            self._answer(411 if length is None else 413, {"error": "bad length"})
            return
        body = self.rfile.read(int(length))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            if self.path == "/token":
                answer = self.fcm.issue_token(headers.get("content-type", ""), body)
            else:
                answer = self.fcm.send(self.path, headers, body)
        except _Refused as refused:
            self._answer(refused.status, refused.body, refused.headers)
            return
        self._answer(200, answer)

    def do_GET(self) -> None:
        self._answer(404, {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}})

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what the server recorded instead."""
