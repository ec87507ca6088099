"""OpenID Connect Client-Initiated Backchannel Authentication (CIBA Core 1.0), poll and ping modes.

A client that knows who the user is (``login_hint``, or an ID token of ours in ``id_token_hint``) asks the
IdP to authenticate them; the IdP sends a push login through ns to the user's phones, with the client's
name and ``binding_message`` shown on the phone, and number matching: the answer carries the number the
person must pick (``nextauth_number``, an extension), which the client shows next to its binding message.
The client then polls the token endpoint with ``auth_req_id`` (poll), or waits for the IdP to POST to its
notification endpoint (ping) first.

Nobody learns through this endpoint whether a user exists: the answer, and its timing, are the same for a
user without accounts (the push goes out after the answer, in the background, and such a request simply
stays pending until it expires). Requests are limited per client and per user named.

State lives in the shared store under the hash of ``auth_req_id`` (random, 256 bits): taken once when
tokens are issued, gone when it expires. The ns session the push logs in exists only to carry the approval:
the IdP logs it out once the tokens are issued.
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import gevent
import httpx
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc8628 import AuthorizationPendingError, ExpiredTokenError, SlowDownError
from flask import jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError

from authserver.ratelimit import RateLimited
from idp.ns_client import NsError
from idp.oidc.client_auth import CONFIDENTIAL_AUTH_METHODS
from idp.oidc.clients import CIBA_GRANT
from idp.oidc.tokens import Grant
from idp.sessions import amr_acr
from nextauth_core import userids
from nextauth_core.digits import only_digits
from nextauth_core.evidence import display_text_problem

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

log = logging.getLogger("nextauth.idp.oidc")

GRANT_TYPE = CIBA_GRANT
MODES = ("poll", "ping")
PREFIX = "oidc:ciba:"
POLL_PREFIX = "oidc:ciba-poll:"
# A push lives 120 s at ns: the phone cannot approve later, so no request lives longer.
MAX_EXPIRY = 120
MIN_EXPIRY = 10
BINDING_MESSAGE_MAX = 100
NOTIFICATION_TOKEN_MAX = 1024
PING_TIMEOUT = 5.0
WATCH_EVERY = 1.0  # how often a ping-mode request asks ns for its outcome


class InvalidBindingMessageError(OAuth2Error):  # type: ignore[misc]
    error = "invalid_binding_message"


class RateLimitedError(OAuth2Error):  # type: ignore[misc]
    """Too many requests for this client or this user: ``slow_down`` with 429 and Retry-After."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description="Too many authentication requests; wait before asking again.")
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


@dataclass(frozen=True)
class CibaRequest:
    client_id: str
    user_id: str  # as hinted; may name nobody
    scope: str
    ns_nonce: str  # names the ns session the push logs in
    expires_at: float
    mode: str
    notification_token: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CibaRequest":
        return cls(**json.loads(raw))


def _key(auth_req_id: str) -> str:
    return hashlib.sha256(auth_req_id.encode()).hexdigest()


def client_mode(client: Any) -> str | None:
    mode = client.client_metadata.get("backchannel_token_delivery_mode")
    return mode if mode in MODES else None


def discovery(url: Any) -> dict[str, Any]:
    return {
        "backchannel_authentication_endpoint": url("/oidc/backchannel-authentication"),
        "backchannel_token_delivery_modes_supported": list(MODES),
        "backchannel_user_code_parameter_supported": False,
    }


# -- the backchannel authentication endpoint (CIBA 7) ---------------------------------------------------


def authentication_response(provider: "Provider") -> Any:
    server = provider.server
    oauth_request = server.create_oauth2_request(request)
    try:
        answer = _authenticate(provider, oauth_request)
    except OAuth2Error as error:
        return server.handle_error_response(oauth_request, error)
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response


def _authenticate(provider: "Provider", oauth_request: Any) -> dict[str, Any]:
    server = provider.server
    if request.method != "POST" or not request.mimetype == "application/x-www-form-urlencoded":
        raise InvalidRequestError("POST the request as application/x-www-form-urlencoded.")
    client = server.authenticate_client(
        oauth_request, CONFIDENTIAL_AUTH_METHODS, "backchannel_authentication"
    )
    if not client.check_grant_type(GRANT_TYPE) or client_mode(client) is None:
        raise UnauthorizedClientError("This client is not registered for CIBA.")
    form = oauth_request.form
    for name in form:
        if len(form.getlist(name)) > 1:
            raise InvalidRequestError(f"'{name}' is given more than once.")
    if form.get("request"):
        raise InvalidRequestError("Signed authentication requests are not supported; send plain parameters.")
    scope = form.get("scope") or ""
    if "openid" not in scope.split():
        raise InvalidScopeError("The scope must include 'openid'.")
    scope = client.get_allowed_scope(scope)
    user_id = _hinted_user(provider, client, form)
    message = form.get("binding_message") or ""
    if message and (len(message) > BINDING_MESSAGE_MAX or display_text_problem(message) is not None):
        raise InvalidBindingMessageError(
            description=f"binding_message: up to {BINDING_MESSAGE_MAX} characters of plain text on one line."
        )
    expiry = MAX_EXPIRY
    requested = form.get("requested_expiry")
    if requested is not None:
        if not only_digits(requested) or not 0 < int(requested) <= 86400:
            raise InvalidRequestError("requested_expiry: a positive number of seconds.")
        expiry = max(MIN_EXPIRY, min(MAX_EXPIRY, int(requested)))
    mode = client_mode(client)
    token = form.get("client_notification_token")
    if mode == "ping":
        if (
            not token
            or not 16 <= len(token) <= NOTIFICATION_TOKEN_MAX
            or not token.isascii()
            or not token.isprintable()
            or " " in token
        ):
            raise InvalidRequestError(
                "client_notification_token: a bearer token of 16 to 1024 printable ASCII characters."
            )
    else:
        token = None
    _count(provider, client.client_id, user_id)

    number = secrets.randbelow(90) + 10
    auth_req_id = secrets.token_urlsafe(32)
    record = CibaRequest(
        client_id=client.client_id,
        user_id=user_id,
        scope=scope,
        ns_nonce=secrets.token_urlsafe(32),
        expires_at=time.time() + expiry,
        mode=str(mode),
        notification_token=token,
    )
    # Kept a while past its expiry, so a late poll hears expired_token rather than an unknown id.
    provider.services.kv.set(PREFIX + _key(auth_req_id), record.to_json(), ttl=expiry + 300)
    context = {"client_name": client.name[:100]}
    if message:
        context["message"] = message
    # After the answer, whoever the user is: the time ns takes (or does not) tells nothing.
    gevent.spawn(_push, provider, record, context, number)
    if mode == "ping":
        gevent.spawn(_watch, provider, auth_req_id, record, client)
    log.info("CIBA request from %s (%s mode)", client.client_id, mode)
    answer: dict[str, Any] = {"auth_req_id": auth_req_id, "expires_in": expiry, "nextauth_number": number}
    if mode == "poll":
        answer["interval"] = provider.services.oidc_poll_seconds
    return answer


def _hinted_user(provider: "Provider", client: Any, form: Any) -> str:
    hints = [name for name in ("login_hint", "id_token_hint", "login_hint_token") if form.get(name)]
    if len(hints) != 1:
        raise InvalidRequestError("Name the user with exactly one of login_hint or id_token_hint.")
    if hints[0] == "login_hint_token":
        raise InvalidRequestError("login_hint_token is not supported; send login_hint or id_token_hint.")
    if hints[0] == "login_hint":
        hint = str(form["login_hint"])
        if len(hint) > 255 or not hint.isprintable():
            raise InvalidRequestError("login_hint: the user's id, up to 255 printable characters.")
        try:
            return userids.normalise(hint)
        except userids.UserIdError:
            return hint  # no user has such an id: the request stays pending like any other
    raw = form["id_token_hint"]
    if len(raw) > 8192:
        raise InvalidRequestError("id_token_hint is too long.")
    try:
        claims = jwt.decode(raw, provider.server_jwks(), algorithms=["ES256", "RS256"]).claims
    except (JoseError, ValueError) as exc:
        raise InvalidRequestError("id_token_hint is not an ID token this provider signed.") from exc
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if claims.get("iss") != provider.services.issuer or client.client_id not in audiences:
        raise InvalidRequestError("id_token_hint was not issued by this provider to this client.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidRequestError("id_token_hint names no subject.")
    return subject


def _count(provider: "Provider", client_id: str, user_id: str) -> None:
    limits = provider.services.limits
    address = limits.client()
    try:
        limits.limiter.hit(
            limits.rules["ciba_client"],
            "ciba-client:" + hashlib.sha256(client_id.encode()).hexdigest(),
            client=address,
            what="CIBA requests of one client",
        )
        limits.limiter.hit(
            limits.rules["ciba_user"],
            "ciba-user:" + hashlib.sha256(user_id.encode()).hexdigest(),
            client=address,
            what="CIBA requests for one user",
        )
    except RateLimited as exc:
        raise RateLimitedError(exc.retry_after) from exc


def _push(provider: "Provider", record: CibaRequest, context: dict[str, str], number: int) -> None:
    try:
        provider.services.ns.provoke_user(record.user_id, record.ns_nonce, context=context, number=number)
    except NsError as exc:
        if exc.status in (404, 409):
            log.info("CIBA request for a user without push accounts; it stays pending until it expires")
        else:
            log.warning("CIBA push failed: %s", exc.code)
    except Exception:
        log.exception("CIBA push failed")


# -- what became of a request ---------------------------------------------------------------------------


def outcome(provider: "Provider", record: CibaRequest) -> tuple[str, dict[str, Any]]:
    """("approved", ns session), ("denied", {}) or ("pending", {}), as ns tells it."""
    try:
        state = provider.services.ns.session(record.ns_nonce)
    except NsError as exc:
        log.warning("cannot ask ns about a CIBA request: %s", exc.code)
        return "pending", {}
    if state.get("loggedin"):
        who = str(state.get("userid") or "")
        if hmac.compare_digest(who.encode(), record.user_id.encode()):
            return "approved", state
        log.warning("a CIBA request was approved by an account of another user; refused")
        return "denied", {}
    if state.get("cancelled"):
        return "denied", {}
    return "pending", {}


def _watch(provider: "Provider", auth_req_id: str, record: CibaRequest, client: Any) -> None:
    """Ping mode: tell the client once the person approved or declined (CIBA 10.2), never blocking the
    request that started it. A request that expires unanswered gets no ping (the client's poll hears it)."""
    endpoint = client.client_metadata.get("backchannel_client_notification_endpoint")
    while time.time() < record.expires_at:
        gevent.sleep(WATCH_EVERY)
        try:
            state, _ = outcome(provider, record)
        except Exception:
            log.exception("watching a CIBA request failed")
            return
        if state == "pending":
            continue
        if not endpoint or record.notification_token is None:
            return
        try:
            with httpx.Client(timeout=PING_TIMEOUT, follow_redirects=False) as http:
                answer = http.post(
                    endpoint,
                    json={"auth_req_id": auth_req_id},
                    headers={"Authorization": f"Bearer {record.notification_token}"},
                )
            if answer.status_code >= 300:
                log.warning("CIBA ping to %s answered %d", client.client_id, answer.status_code)
        except httpx.HTTPError as exc:
            log.warning("CIBA ping to %s failed: %s", client.client_id, type(exc).__name__)
        return


# -- the token endpoint grant (CIBA 10.1, 11) -----------------------------------------------------------


class CibaGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    GRANT_TYPE = GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    @property
    def provider(self) -> "Provider":
        return self.server.provider  # type: ignore[no-any-return]

    def validate_token_request(self) -> None:
        auth_req_id = self.request.form.get("auth_req_id")
        if not auth_req_id or len(auth_req_id) > 256:
            raise InvalidRequestError("Missing 'auth_req_id'.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE) or client_mode(client) is None:
            raise UnauthorizedClientError("This client is not registered for CIBA.")
        kv, key = self.provider.services.kv, _key(auth_req_id)
        raw = kv.get(PREFIX + key)
        record = CibaRequest.from_json(raw) if raw is not None else None
        if record is None or not hmac.compare_digest(record.client_id, client.client_id):
            # Unknown, used, or another client's: the same answer (CIBA 11).
            raise InvalidGrantError("The auth_req_id is not valid.")
        if time.time() >= record.expires_at:
            kv.delete(PREFIX + key)
            raise ExpiredTokenError(description="The authentication request expired. Start a new one.")
        # Seconds between polls (CIBA 7.3); sooner is answered slow_down.
        interval = self.provider.services.oidc_poll_seconds
        if not kv.set_if_absent(POLL_PREFIX + key, b"1", ttl=interval):
            raise SlowDownError(description=f"Poll at most every {interval} seconds.")
        state, session = outcome(self.provider, record)
        if state == "pending":
            raise AuthorizationPendingError(description="The user has not answered on the phone yet.")
        if kv.take(PREFIX + key) is None:  # single use, even against a concurrent poll
            raise InvalidGrantError("The auth_req_id is not valid.")
        self._end_ns_session(record)
        if state == "denied":
            raise AccessDeniedError("The user declined on the phone.")
        amr, acr = amr_acr(session.get("second_factor"))
        self.request.client = client
        self.request.user = Grant(
            client_id=client.client_id,
            user_id=record.user_id,
            scope=record.scope,
            auth_time=int(time.time()),
            acr=acr,
            amr=tuple(amr),
        )

    def _end_ns_session(self, record: CibaRequest) -> None:
        try:
            self.provider.services.ns.logout(record.ns_nonce)
        except NsError as exc:
            log.warning("ns logout after CIBA failed: %s", exc.code)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client, grant = self.request.client, self.request.user
        token = self.generate_token(
            user=grant, scope=grant.scope, include_refresh_token=client.check_grant_type("refresh_token")
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


__all__ = [
    "GRANT_TYPE",
    "CibaGrant",
    "authentication_response",
    "discovery",
]
