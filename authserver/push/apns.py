"""Apple Push Notification service, provider API over HTTP/2: pushes to iOS apps.

APNs speaks HTTP/2 only (negotiated by ALPN "h2" in the TLS handshake) and wants providers to keep one
connection open and send every push on it as a new stream, rather than connecting per push. So the
provider holds one ``httpx`` client with HTTP/1.1 switched off; its pool keeps the connection and
multiplexes concurrent sends on it.

Authentication is token-based: a JWT (ES256) signed with the team's .p8 P-256 key, header
``{alg: ES256, kid: <key id>}``, claims ``{iss: <team id>, iat}``. APNs refuses a token older than an
hour (``ExpiredProviderToken``) and also one renewed more often than every 20 minutes
(``TooManyProviderTokenUpdates``), so the token is reused for 50 minutes and renewed then.

Each push is ``POST /3/device/<device token>`` with ``apns-topic`` (the app's bundle id),
``apns-push-type``, ``apns-priority``, ``apns-expiration`` and ``apns-collapse-id`` headers and a JSON body
of at most 4 KiB: ``{"aps": {...}}`` plus the custom data keys.

The device token is part of the URL path, so ``httpx``'s INFO request log would show it in full; a filter
on the ``httpx`` logger shortens it (see ``_RedactDeviceTokens``). ``hpack``/``h2`` DEBUG logs print
headers; keep those loggers above DEBUG in production.
"""

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from authserver.push.base import (
    PushMessage,
    PushResult,
    b64url,
    client_tls_context,
    failed,
    parse_retry_after,
    require_https,
    token_prefix,
)

log = logging.getLogger("nextauth.push.apns")

PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
# Renew the provider token after 50 minutes: APNs refuses tokens older than 60 and renewals more often
# than every 20.
TOKEN_REUSE_SECONDS = 50 * 60
MAX_PAYLOAD_BYTES = 4096
# Reasons that mean the device token will never work for this app again.
INVALID_TOKEN_REASONS = frozenset(
    {"BadDeviceToken", "Unregistered", "ExpiredToken", "DeviceTokenNotForTopic"}
)
# Device tokens are hex (32 bytes today; Apple says not to rely on the length). Checking this before
# the token goes into the request path also keeps "/", "?" or "%" out of the path.
_DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]{16,200}")
_DEVICE_PATH = re.compile(r"(/3/device/[0-9A-Fa-f]{8})[^\s\"'?#]*")


class _RedactDeviceTokens(logging.Filter):
    """Shortens device tokens in the request URLs that httpx logs at INFO ("HTTP Request: POST ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("/3/device/" in str(arg) for arg in record.args):
            record.args = tuple(
                _DEVICE_PATH.sub(r"\1…", str(arg)) if "/3/device/" in str(arg) else arg for arg in record.args
            )
        return True


def _install_log_redaction() -> None:
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactDeviceTokens) for existing in httpx_log.filters):
        httpx_log.addFilter(_RedactDeviceTokens())


def load_signing_key(pem: bytes | str) -> ec.EllipticCurvePrivateKey:
    """The .p8 file Apple hands out: a PKCS#8 PEM P-256 private key."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the APNs key is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the APNs key is not a P-256 key (ES256 needs one)")
    return key


class ApnsProvider:
    """Pushes through APNs with token-based authentication. Thread-safe; one persistent HTTP/2
    connection serves all sends."""

    name = "apns"

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey | bytes | str,
        key_id: str,
        team_id: str,
        topic: str,
        *,
        base_url: str = PRODUCTION_URL,
        ca_file: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key_id or not team_id or not topic:
            raise ValueError("APNs needs a key id, a team id and a topic (the app's bundle id)")
        self._key = key if isinstance(key, ec.EllipticCurvePrivateKey) else load_signing_key(key)
        self._key_id, self._team_id, self._topic = key_id, team_id, topic
        self._base_url = require_https(base_url, "the APNs URL")
        self._clock = clock
        _install_log_redaction()
        # http1=False: APNs is HTTP/2 only, so never fall back to HTTP/1.1. The pool keeps the connection
        # open between pushes as Apple asks (APNs itself closes connections it finds idle too long, and
        # the pool then opens a new one).
        self._http = httpx.Client(
            http1=False,
            http2=True,
            verify=client_tls_context(ca_file),
            timeout=timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=3600),
        )
        self._lock = threading.Lock()
        self._provider_token: str | None = None
        self._issued_at = 0.0

    @classmethod
    def from_key_file(
        cls, path: str | Path, key_id: str, team_id: str, topic: str, **options: Any
    ) -> "ApnsProvider":
        return cls(load_signing_key(Path(path).read_bytes()), key_id, team_id, topic, **options)

    def _token(self, stale: str | None = None) -> str:
        """The provider token, renewed after 50 minutes or when APNs called ``stale`` expired (unless a
        concurrent send already renewed it)."""
        with self._lock:
            now = self._clock()
            cached = self._provider_token
            if cached is not None and now - self._issued_at < TOKEN_REUSE_SECONDS and cached != stale:
                return cached
            header = b64url(json.dumps({"alg": "ES256", "kid": self._key_id}, separators=(",", ":")).encode())
            claims = b64url(
                json.dumps({"iss": self._team_id, "iat": int(now)}, separators=(",", ":")).encode()
            )
            signing_input = f"{header}.{claims}".encode()
            # cryptography returns a DER SEQUENCE{r, s}; JWS ES256 wants r and s as 32-byte big-endian
            # integers, concatenated (RFC 7518 section 3.4).
            r, s = decode_dss_signature(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            token = signing_input.decode() + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
            self._provider_token, self._issued_at = token, now
            return token

    def _request(self, message: PushMessage) -> tuple[dict[str, str], bytes]:
        alert = {
            key: value
            for key, value in (("title", message.alert_title), ("body", message.alert_body))
            if value is not None
        }
        # A background ("silent") push: content-available wakes the app, and APNs requires priority 5
        # and no alert for it. An alert push is shown to the user and goes at priority 10.
        aps: dict[str, Any] = {"alert": alert} if alert else {"content-available": 1}
        if "aps" in message.data:
            raise ValueError("the data key 'aps' is APNs's own")
        payload = json.dumps({"aps": aps, **message.data}, separators=(",", ":"), ensure_ascii=False).encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload of {len(payload)} bytes is over APNs's {MAX_PAYLOAD_BYTES}")
        ttl = max(0, int(message.ttl_seconds))
        headers = {
            "apns-topic": self._topic,
            "apns-push-type": "alert" if alert else "background",
            "apns-priority": "10" if alert else "5",
            # A UNIX time after which APNs drops the push; 0 means "try once, do not store".
            "apns-expiration": str(int(self._clock()) + ttl) if ttl else "0",
            "content-type": "application/json",
        }
        if message.collapse_id:
            # APNs limits the collapse id to 64 bytes.
            headers["apns-collapse-id"] = message.collapse_id.encode()[:64].decode(errors="ignore")
        return headers, payload

    def _post(self, device_token: str, headers: dict[str, str], payload: bytes, token: str) -> httpx.Response:
        return self._http.post(
            f"{self._base_url}/3/device/{device_token}",
            content=payload,
            headers={**headers, "authorization": f"bearer {token}"},
        )

    def send(self, message: PushMessage) -> PushResult:
        device_token = message.device_token
        if not _DEVICE_TOKEN.fullmatch(device_token):
            return failed(self.name, "BadDeviceToken: not a hex device token", token_invalid=True)
        try:
            headers, payload = self._request(message)
        except ValueError as exc:
            return failed(self.name, str(exc))
        try:
            token = self._token()
            response = self._post(device_token, headers, payload, token)
            if response.status_code == 403 and _reason(response) == "ExpiredProviderToken":
                # Our clock and Apple's disagree, or the token outlived our bookkeeping: one new token,
                # one more try.
                token = self._token(stale=token)
                response = self._post(device_token, headers, payload, token)
        except httpx.HTTPError as exc:
            log.warning("APNs push to %s failed: %s", token_prefix(device_token), type(exc).__name__)
            return failed(self.name, f"network: {type(exc).__name__}")
        result = self._result(response)
        if not result.delivered:
            log.info("APNs push to %s not delivered: %s", token_prefix(device_token), result.error)
        return result

    def _result(self, response: httpx.Response) -> PushResult:
        apns_id = response.headers.get("apns-id")
        status = response.status_code
        if status == 200:
            return PushResult(True, self.name, apns_id, False, None, None)
        reason = _reason(response) or "unknown"
        description = f"{status} {reason}"
        if reason in INVALID_TOKEN_REASONS:
            return failed(self.name, description, token_invalid=True, message_id=apns_id)
        if status == 429 or status >= 500:
            # TooManyRequests (to one device), TooManyProviderTokenUpdates, InternalServerError,
            # ServiceUnavailable, Shutdown: wait. APNs rarely sends Retry-After, so default to a minute.
            retry = parse_retry_after(response.headers.get("Retry-After"), 60.0)
            return failed(self.name, description, retry_after=retry, message_id=apns_id)
        return failed(self.name, description, message_id=apns_id)

    def close(self) -> None:
        self._http.close()


def _reason(response: httpx.Response) -> str:
    """APNs error bodies are ``{"reason": "...", "timestamp": <ms>}`` (timestamp only for 410)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else ""
