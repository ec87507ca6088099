"""Token introspection (RFC 7662) for the one answer resource servers ask for all day, before Flask.

A resource server that introspects checks every request it serves, and nearly every answer is "active:
this user, these scopes". That answer needs no request context, no error pages and no Authlib request
object, so this WSGI middleware gives it straight from the environ: the client authenticated as Authlib
authenticates it (``client_secret_basic`` or ``client_secret_post``, the client's registered method), the
token read from the store as the endpoint reads it (``TokenStore.access_token``, the session and the
permission checked the same way) and the same payload (``introspection_payload``), headers and counters.

Anything else goes on to the Flask view as it came, with the body it read put back: another client
authentication method, a refresh token or a hint for one, a token that is unknown, expired, revoked or not
this client's to see (``active: false``), a bad request, a browser's request (``Origin`` or fetch metadata:
the cross-site rule decides those), a body that is not plain form pairs. So every refusal, log line and
rate limit stays where it is, and this path can only ever say yes to what the view would say yes to.
"""

import base64
import binascii
import io
import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

from authlib.common.security import is_secure_transport

from authserver.metrics import REST_REQUESTS, REST_SECONDS
from idp.metrics import OIDC_REQUESTS
from idp.oidc.tokens import AccessToken

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

PATH = "/oidc/introspect"
MAX_BODY_BYTES = 8192  # a token of MAX_ACCESS_TOKEN_LENGTH and a client's credentials, form-encoded
FORM_FIELDS = frozenset({"token", "token_type_hint", "client_id", "client_secret"})
_SECURE_MEMO_MAX = 64

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _form(body: bytes) -> dict[str, str] | None:
    """Plain ``name=value`` pairs, each name once and one we know; None for anything else (the view reads
    it with werkzeug's parser and answers it)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    form: dict[str, str] = {}
    for pair in text.split("&"):
        name, equals, value = pair.partition("=")
        if not equals or name not in FORM_FIELDS or name in form:
            return None
        try:
            # Strict: werkzeug keeps bytes that are not UTF-8 as they were, where "replace" would not.
            form[name] = unquote_plus(value, errors="strict")
        except UnicodeDecodeError:
            return None
    return form


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """``authlib.oauth2.rfc6749.util.extract_basic_authorization`` for a header that has both parts."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    if not colon:
        return None
    return unquote(username), unquote(password)


class FastIntrospection:
    def __init__(
        self,
        app: WsgiApp,
        *,
        provider: "Provider",
        security_headers: list[tuple[str, str]],
        https: bool = False,
    ) -> None:
        self._app = app
        self._provider = provider
        self._https = https  # the IdP's public URL is https: requests count as such (idp.web.scheme)
        # What the view's answer carries: Authlib's JSON headers, the endpoint's no-store, the IdP's.
        self._fixed = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
            *security_headers,
        ]
        self._secure: dict[tuple[str, str], bool] = {}
        self._counted = (
            REST_REQUESTS.labels("idp", PATH, "POST", "200"),
            REST_SECONDS.labels("idp", PATH),
            OIDC_REQUESTS.labels("introspect", "ok"),
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        began = time.perf_counter()
        body = self._body(environ)
        if body is None:
            return self._app(environ, start_response)
        # The view reads the body again: it gets the same bytes.
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            payload = self._answer(environ, body)
        except Exception:
            # The store or the database is away: the view meets the same trouble and answers it as the IdP
            # answers outages (503 with Retry-After), with the request's context for its log line.
            payload = None
        if payload is None:
            return self._app(environ, start_response)
        answer = json.dumps(payload, sort_keys=True).encode()  # as flask.json writes it
        start_response("200 OK", [*self._fixed, ("Content-Length", str(len(answer)))])
        requests, seconds, outcomes = self._counted
        requests.inc()
        outcomes.inc()
        seconds.observe(time.perf_counter() - began)
        return [answer]

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        if environ.get("HTTP_ORIGIN") is not None or environ.get("HTTP_SEC_FETCH_SITE") is not None:
            return None  # a browser's request: the cross-site rule judges it
        if environ.get("CONTENT_TYPE") != "application/x-www-form-urlencoded":
            return None
        if environ.get("HTTP_TRANSFER_ENCODING") is not None or not self._secure_transport(environ):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= MAX_BODY_BYTES:
            return None
        body: bytes = environ["wsgi.input"].read(length)
        if len(body) != length:
            environ["wsgi.input"] = io.BytesIO(body)  # cut short: the view says so
            return None
        return body

    def _secure_transport(self, environ: dict[str, Any]) -> bool:
        """Authlib refuses OAuth over plain HTTP away from this machine; the view answers that refusal."""
        if self._https:
            return True
        where = (environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST", ""))
        secure = self._secure.get(where)
        if secure is None:
            if len(self._secure) >= _SECURE_MEMO_MAX:
                self._secure.clear()
            secure = self._secure[where] = is_secure_transport(f"{where[0]}://{where[1]}{PATH}")
        return secure

    def _answer(self, environ: dict[str, Any], body: bytes) -> dict[str, Any] | None:
        form = _form(body)
        if form is None or "token" not in form:
            return None
        if form.get("token_type_hint", "access_token") != "access_token":
            return None  # refresh tokens live in the database: the view looks there
        client = self._client(environ.get("HTTP_AUTHORIZATION"), form)
        if client is None:
            return None
        provider = self._provider
        token = provider.tokens.access_token(form["token"])
        if token is None or token.is_expired() or not provider.session_active(token.grant):
            return None
        if not (token.check_client(client) or client.check_grant_type("client_credentials")):
            return None
        return introspection_payload(provider, token)

    def _client(self, authorization: str | None, form: dict[str, str]) -> Any:
        """The client, authenticated by the one method Authlib would find first; None otherwise."""
        if authorization is not None:
            if "client_secret" in form:
                return None
            credentials = _basic_credentials(authorization)
            if credentials is None:
                return None
            client_id, secret = credentials
            if "client_id" in form and form["client_id"] != client_id:
                return None
            method = "client_secret_basic"
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            method = "client_secret_post"
        if not client_id or not secret:
            return None
        client = self._provider.clients.get(client_id)
        if client is None or client.token_endpoint_auth_method != method:
            return None
        return client if client.check_client_secret(secret) else None


def introspection_payload(provider: "Provider", token: Any) -> dict[str, Any]:
    """What an active token's introspection says (RFC 7662 2.2, RFC 9449 6.2 for ``cnf``)."""
    grant = token.grant
    payload: dict[str, Any] = {
        "active": True,
        "client_id": grant.client_id,
        "scope": grant.scope,
        "iss": provider.services.issuer,
        # Whom the token speaks for. A client's own token has no ``sub``: user ids are the only subjects.
        "subject_type": "client" if grant.for_client else "user",
    }
    if not grant.for_client:
        payload["sub"] = provider.subject(grant.client_id, grant.user_id)
    if isinstance(token, AccessToken):
        token_type = "DPoP" if grant.dpop_jkt else "Bearer"
        payload.update(token_type=token_type, iat=token.issued_at, exp=token.expires_at)
    else:
        payload.update(token_type="refresh_token", exp=int(token.expires_at.timestamp()))
    if grant.dpop_jkt:
        payload["cnf"] = {"jkt": grant.dpop_jkt}
    if grant.sid:
        payload["sid"] = grant.sid
    return payload
