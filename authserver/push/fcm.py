"""Firebase Cloud Messaging, HTTP v1 API: pushes to Android apps.

Authentication is Google's OAuth 2.0 service-account flow (RFC 7523, "JWT bearer grant"): the MC signs a
short-lived JWT with the service account's RSA key, trades it at the account's ``token_uri`` for an
access token, and sends each message with that access token as a bearer token. The access token lives
about an hour and is cached until shortly before it expires, so a busy MC asks for one about once an
hour rather than once per push.

Then ``POST {base_url}/v1/projects/{project_id}/messages:send`` with ``{"message": {...}}``. The MC only
sends a wake-up (``data`` with a message id), as a high-priority data message so that Android wakes the
app even in Doze; the app then pulls the end-to-end encrypted content from the MC.

``base_url`` and ``token_uri`` can be pointed elsewhere (the tests run a local server that speaks both
protocols); both must be https. Neither the private key, the assertion, the access token nor a full
device token is ever logged.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

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

log = logging.getLogger("nextauth.push.fcm")

DEFAULT_BASE_URL = "https://fcm.googleapis.com"
MESSAGING_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google accepts assertions valid for at most one hour.
ASSERTION_LIFETIME = 3600
# Refresh the access token this long before it expires (or at half its life, if that is shorter), so a
# push never goes out with a token that expires in flight.
REFRESH_MARGIN = 300
# FCM stores a message for at most four weeks.
MAX_TTL = 28 * 24 * 3600
# Data keys FCM rejects (reserved words and prefixes of the FCM/GCM wire format).
RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
RESERVED_DATA_PREFIXES = ("google", "gcm")


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Google service-account JSON key file that FCM needs."""

    project_id: str
    client_email: str
    private_key_id: str
    token_uri: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def from_json(cls, document: str | bytes | Mapping[str, Any]) -> "ServiceAccount":
        info = json.loads(document) if isinstance(document, str | bytes) else dict(document)
        if not isinstance(info, dict):
            raise ValueError("a service account file is a JSON object")
        if info.get("type", "service_account") != "service_account":
            raise ValueError("not a service account key file (type is not 'service_account')")
        missing = [
            name
            for name in ("project_id", "client_email", "private_key_id", "private_key", "token_uri")
            if not isinstance(info.get(name), str) or not info[name]
        ]
        if missing:
            raise ValueError(f"the service account file lacks {', '.join(missing)}")
        try:
            key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # Not chained: the exception text of a key parser is no place for key material.
            raise ValueError("the service account's private_key is not a PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the service account's private_key is not an RSA key (RS256 needs one)")
        return cls(info["project_id"], info["client_email"], info["private_key_id"], info["token_uri"], key)

    @classmethod
    def from_file(cls, path: str | Path) -> "ServiceAccount":
        return cls.from_json(Path(path).read_bytes())


class _TokenError(Exception):
    """No access token could be had; ``retry_after`` when the token endpoint asked us to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FcmProvider:
    """Pushes through FCM HTTP v1. Thread-safe: one provider (one connection pool, one cached access
    token) serves the whole MC."""

    name = "fcm"

    def __init__(
        self,
        account: ServiceAccount,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token_uri: str | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._account = account
        self._base_url = require_https(base_url, "the FCM base URL")
        self._token_uri = require_https(token_uri or account.token_uri, "the OAuth token URI")
        self._send_url = f"{self._base_url}/v1/projects/{account.project_id}/messages:send"
        self._clock = clock
        self._http = httpx.Client(verify=client_tls_context(ca_file), timeout=timeout)
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_at = 0.0

    # -- OAuth 2.0 --------------------------------------------------------------------------------

    def _assertion(self, now: float) -> str:
        """The signed JWT (RFC 7523 section 2.1) that the token endpoint trades for an access token."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self._account.private_key_id}
        iat = int(now)
        claims = {
            "iss": self._account.client_email,
            "scope": MESSAGING_SCOPE,
            "aud": self._token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        # RS256 = RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3).
        signature = self._account.private_key.sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return signing_input + "." + b64url(signature)

    def _token(self, stale: str | None = None) -> str:
        """The cached access token, or a new one. ``stale``: FCM refused that token; get another unless
        a concurrent send already has."""
        with self._lock:
            now = self._clock()
            cached = self._access_token
            if cached is not None and now < self._refresh_at and cached != stale:
                return cached
            self._access_token = None
            try:
                response = self._http.post(
                    self._token_uri,
                    data={"grant_type": JWT_BEARER_GRANT, "assertion": self._assertion(now)},
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise _TokenError(f"token endpoint unreachable ({type(exc).__name__})") from None
            answer = _json_object(response)
            if response.status_code != 200:
                # OAuth errors (RFC 6749 section 5.2): {"error": "invalid_grant", "error_description": ...}
                retry = None
                if response.status_code == 429 or response.status_code >= 500:
                    retry = parse_retry_after(response.headers.get("Retry-After"), 30.0)
                raise _TokenError(
                    f"token endpoint answered {response.status_code}: {answer.get('error', '')} "
                    f"{answer.get('error_description', '')}".strip(),
                    retry,
                )
            token, expires_in = answer.get("access_token"), answer.get("expires_in", 3600)
            if (
                not isinstance(token, str)
                or not token
                or str(answer.get("token_type", "Bearer")).lower() != "bearer"
                or not isinstance(expires_in, int | float)
                or expires_in <= 0
            ):
                raise _TokenError("token endpoint answered without a usable bearer token")
            self._access_token = token
            self._refresh_at = now + expires_in - min(REFRESH_MARGIN, expires_in / 2)
            log.debug("new FCM access token for %s, valid %ss", self._account.client_email, expires_in)
            return token

    # -- messages ---------------------------------------------------------------------------------

    def _message(self, message: PushMessage) -> dict[str, Any]:
        for key, value in message.data.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("FCM data keys and values must be strings")
            if key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES):
                raise ValueError(f"FCM reserves the data key {key!r}")
        ttl = max(0, min(int(message.ttl_seconds), MAX_TTL))
        # "high" priority wakes the device from Doze for a data message; the TTL is a protobuf
        # Duration in its JSON form: seconds with an "s" suffix.
        android: dict[str, Any] = {"priority": "high", "ttl": f"{ttl}s"}
        if message.collapse_id:
            android["collapse_key"] = message.collapse_id
        body: dict[str, Any] = {"token": message.device_token, "data": dict(message.data), "android": android}
        notification = {
            key: value
            for key, value in (("title", message.alert_title), ("body", message.alert_body))
            if value is not None
        }
        if notification:
            body["notification"] = notification
        return {"message": body}

    def _post(self, access_token: str, body: dict[str, Any]) -> httpx.Response:
        return self._http.post(self._send_url, json=body, headers={"Authorization": f"Bearer {access_token}"})

    def send(self, message: PushMessage) -> PushResult:
        if not message.device_token:
            return failed(self.name, "empty registration token", token_invalid=True)
        try:
            body = self._message(message)
        except ValueError as exc:
            return failed(self.name, str(exc))
        try:
            token = self._token()
            response = self._post(token, body)
            if response.status_code == 401:
                # The access token was revoked or expired early: one new token, one more try.
                token = self._token(stale=token)
                response = self._post(token, body)
        except _TokenError as exc:
            log.warning("FCM authentication failed: %s", exc)
            return failed(self.name, f"auth: {exc}", retry_after=exc.retry_after)
        except httpx.HTTPError as exc:
            log.warning("FCM push to %s failed: %s", token_prefix(message.device_token), type(exc).__name__)
            return failed(self.name, f"network: {type(exc).__name__}")
        result = self._result(response)
        if not result.delivered:
            log.info("FCM push to %s not delivered: %s", token_prefix(message.device_token), result.error)
        return result

    def _result(self, response: httpx.Response) -> PushResult:
        status = response.status_code
        answer = _json_object(response)
        if status == 200:
            name = answer.get("name")
            return PushResult(True, self.name, name if isinstance(name, str) else None, False, None, None)
        # Google API errors: {"error": {"code", "message", "status", "details": [...]}}; FCM puts its own
        # code into a detail of type google.firebase.fcm.v1.FcmError, and a malformed token shows up as
        # a google.rpc.BadRequest field violation on "message.token".
        error = answer.get("error")
        if not isinstance(error, dict):
            error = {}
        text = str(error.get("message", ""))
        grpc_status = str(error.get("status", ""))
        fcm_code, fields = "", []
        for detail in error.get("details") or []:
            if not isinstance(detail, dict):
                continue
            if str(detail.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError"):
                fcm_code = str(detail.get("errorCode", ""))
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict):
                    fields.append(str(violation.get("field", "")))
        code = fcm_code or grpc_status or str(status)
        description = f"{status} {code}: {text}".strip()
        if fcm_code == "UNREGISTERED" or (status == 404 and not fcm_code):
            # The app was uninstalled or the token was rotated: never use the token again.
            return failed(self.name, description, token_invalid=True)
        if fcm_code == "SENDER_ID_MISMATCH":
            # The token belongs to another Firebase project: it will never work with this one.
            return failed(self.name, description, token_invalid=True)
        if status == 400 or fcm_code == "INVALID_ARGUMENT":
            # INVALID_ARGUMENT is about the token only when FCM says so; otherwise the message is wrong
            # and the token may be fine.
            about_token = "message.token" in fields or "registration token" in text.lower()
            return failed(self.name, description, token_invalid=about_token)
        if status == 429 or fcm_code == "QUOTA_EXCEEDED":
            retry = parse_retry_after(response.headers.get("Retry-After"), 60.0)
            return failed(self.name, description, retry_after=retry)
        if status >= 500:
            retry = parse_retry_after(response.headers.get("Retry-After"), 10.0)
            return failed(self.name, description, retry_after=retry)
        return failed(self.name, description)

    def close(self) -> None:
        self._http.close()


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
