"""The OAuth 2.0 Device Authorization Grant (RFC 8628), on Authlib's ``rfc8628`` classes.

A device without a browser (a TV, a command line) gets a ``device_code`` to poll with and a short
``user_code`` for the person. They open ``/device`` on any browser, enter the code (or follow
``verification_uri_complete``), log in with the phone as always, and the phone shows the device's user code
next to the application's name, so the person compares it with the one on the device before approving.
Then the IdP asks them once more, on its own page, whether the device may have access.

State in the shared store: the device credential under the hash of ``device_code`` (kept a while past its
expiry, to answer ``expired_token``), the user code's pointer to it (until it expires or is used), the
person's decision under the hash of the user code. The device code is taken once when tokens are issued.
User codes are 8 letters from an alphabet without vowels or look-alikes (about 34 bits); entering them is
rate limited per client address, so guessing one within its lifetime is hopeless.
"""

import dataclasses
import hashlib
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
    ExpiredTokenError,
)

from idp.oidc.client_auth import CLIENT_AUTH_METHODS
from idp.oidc.clients import DEVICE_GRANT
from idp.oidc.tokens import Grant

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

log = logging.getLogger("nextauth.idp.oidc")

GRANT_TYPE = DEVICE_GRANT
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 6.1: no vowels (no words), no digits to confuse with letters
CODE_LENGTH = 8
INTERVAL = 5
GRACE = 300  # a device credential is kept this long past its expiry, to answer expired_token
DEVICE_PREFIX = "oidc:device:"
USER_CODE_PREFIX = "oidc:device-user-code:"
DECISION_PREFIX = "oidc:device-decision:"
POLL_PREFIX = "oidc:device-poll:"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def normalise_user_code(typed: str) -> str | None:
    """What the person typed, as the canonical code: case, dashes and spaces do not matter."""
    letters = "".join(ch for ch in typed.upper() if ch not in "- ")
    if len(letters) != CODE_LENGTH or any(ch not in ALPHABET for ch in letters):
        return None
    return letters


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def discovery(url: Any) -> dict[str, Any]:
    return {"device_authorization_endpoint": url("/oidc/device-authorization")}


class DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INTERVAL = INTERVAL

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.EXPIRES_IN = server.provider.services.device_code_seconds
        self.INTERVAL = server.provider.services.oidc_poll_seconds

    @property
    def provider(self) -> "Provider":
        return self.server.provider  # type: ignore[no-any-return]

    def authenticate_client(self, request: Any) -> Any:
        client = super().authenticate_client(request)
        if not client.check_grant_type(GRANT_TYPE):
            raise UnauthorizedClientError("This client is not registered for the device grant.")
        return client

    def generate_user_code(self) -> str:
        return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))

    def generate_device_code(self) -> str:
        return secrets.token_urlsafe(32)

    def get_verification_uri(self) -> str:
        return self.provider.services.url("/device")

    def create_endpoint_response(self, request: Any) -> Any:
        status, data, headers = super().create_endpoint_response(request)
        # Shown to people as two groups of four; the link carries the same form.
        data["user_code"] = display_user_code(data["user_code"])
        data["verification_uri_complete"] = self.provider.services.url("/device", user_code=data["user_code"])
        return status, data, headers  # Authlib's JSON headers include Cache-Control: no-store

    def save_device_credential(self, client_id: str, scope: str | None, data: dict[str, Any]) -> None:
        client = self.server.query_client(client_id)
        credential = {
            "client_id": client_id,
            "scope": client.get_allowed_scope(scope or "openid"),
            "user_code": data["user_code"],
            "expires_at": time.time() + data["expires_in"],
            "interval": data["interval"],
        }
        kv = self.provider.services.kv
        device_key = _hash(data["device_code"])
        lifetime = data["expires_in"]
        kv.set(DEVICE_PREFIX + device_key, json.dumps(credential).encode(), ttl=lifetime + GRACE)
        kv.set(USER_CODE_PREFIX + _hash(data["user_code"]), device_key.encode(), ttl=lifetime)
        log.info("device authorization for %s", client_id)


class PendingDevice:
    """The verification page's view of a user code: which client asks, for what."""

    def __init__(self, provider: "Provider", user_code: str) -> None:
        self._provider = provider
        self.user_code = user_code
        kv = provider.services.kv
        pointer = kv.get(USER_CODE_PREFIX + _hash(user_code))
        raw = kv.get(DEVICE_PREFIX + pointer.decode()) if pointer is not None else None
        self.credential: dict[str, Any] | None = json.loads(raw) if raw is not None else None
        if self.credential is not None and self.credential["expires_at"] <= time.time():
            self.credential = None

    @property
    def valid(self) -> bool:
        return self.credential is not None

    @property
    def client(self) -> Any:
        return self._provider.clients.get(self.credential["client_id"]) if self.credential else None

    @property
    def scope(self) -> str:
        return str(self.credential["scope"]) if self.credential else ""

    def decide(self, grant: Grant | None) -> bool:
        """Record the person's answer, once: the user code stops working whatever they chose."""
        kv = self._provider.services.kv
        if self.credential is None or kv.take(USER_CODE_PREFIX + _hash(self.user_code)) is None:
            return False
        decision = {"approved": grant is not None, "grant": grant.to_json() if grant else None}
        remaining = max(1.0, self.credential["expires_at"] - time.time())
        kv.set(DECISION_PREFIX + _hash(self.user_code), json.dumps(decision).encode(), ttl=remaining)
        return True


class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    @property
    def provider(self) -> "Provider":
        return self.server.provider  # type: ignore[no-any-return]

    def validate_token_request(self) -> None:
        device_code = self.request.payload.data.get("device_code")
        if not device_code or len(device_code) > 256:
            raise InvalidRequestError("Missing 'device_code'.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("This client is not registered for the device grant.")
        credential = self.query_device_credential(device_code)
        if credential is None or credential.get_client_id() != client.get_client_id():
            # Unknown, used, or another client's: one answer (RFC 6749 5.2).
            raise InvalidGrantError("The device_code is not valid.")
        self.request.client = client
        self.request.credential = credential
        user = self.validate_device_credential(credential)
        # Single use: whoever takes the credential first gets the tokens.
        if self.provider.services.kv.take(DEVICE_PREFIX + _hash(device_code)) is None:
            raise InvalidGrantError("The device_code is not valid.")
        self.request.user = user

    def validate_device_credential(self, credential: DeviceCredentialDict) -> Any:
        try:
            return super().validate_device_credential(credential)
        except AccessDeniedError as exc:
            self.provider.services.kv.delete(DEVICE_PREFIX + credential["device_key"])
            raise AccessDeniedError("The user denied the device access.") from exc
        except ExpiredTokenError as exc:
            raise ExpiredTokenError(description="The device code expired. Start again.") from exc

    def query_device_credential(self, device_code: str) -> DeviceCredentialDict | None:
        raw = self.provider.services.kv.get(DEVICE_PREFIX + _hash(device_code))
        if raw is None:
            return None
        return DeviceCredentialDict({**json.loads(raw), "device_key": _hash(device_code)})

    def query_user_grant(self, user_code: str) -> tuple[Grant | None, bool] | None:
        raw = self.provider.services.kv.get(DECISION_PREFIX + _hash(user_code))
        if raw is None:
            return None
        decision = json.loads(raw)
        if not decision["approved"]:
            return None, False
        return Grant.from_json(decision["grant"]), True

    def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
        kv = self.provider.services.kv
        return not kv.set_if_absent(
            POLL_PREFIX + credential["device_key"], b"1", ttl=float(credential.get("interval", INTERVAL))
        )

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client, scope = self.request.client, self.request.credential.get_scope()
        grant = dataclasses.replace(self.request.user, client_id=client.client_id, scope=scope)
        self.request.user = grant
        token = self.generate_token(
            user=grant, scope=scope, include_refresh_token=client.check_grant_type("refresh_token")
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
