"""What the OIDC endpoints' fast paths share: a form POST read straight from the WSGI environ, a client
authenticated by its secret as Authlib authenticates it, and the answer written with the view's headers and
counters.

A fast path is WSGI middleware in front of Flask for the one request an endpoint serves all day. It says
yes or hands the request on, never no: anything it does not recognise exactly (a browser's request, another
client authentication method, a body that is not plain form pairs, a refusal of any kind) goes on to the
Flask view as it came, with the body it read put back, so every refusal, log line and rate limit stays in
one place. ``FormPost.answer`` returns the JSON to send, or None to hand on.
"""

import base64
import binascii
import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

from authlib.common.security import is_secure_transport

from authserver.metrics import REST_REQUESTS, REST_SECONDS
from authserver.ratelimit import RateLimited

if TYPE_CHECKING:
    from idp.oidc.clients import Client
    from idp.oidc.provider import Provider

MAX_BODY_BYTES = 8192  # an access token of MAX_ACCESS_TOKEN_LENGTH and a client's credentials, form-encoded
_SECURE_MEMO_MAX = 64

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def parse_form(body: bytes, fields: frozenset[str]) -> dict[str, str] | None:
    """Plain ``name=value`` pairs, each name once and one of ``fields``; None for anything else (the view
    reads it with werkzeug's parser and answers it)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    form: dict[str, str] = {}
    for pair in text.split("&"):
        name, equals, value = pair.partition("=")
        if not equals or name not in fields or name in form:
            return None
        try:
            # Strict: werkzeug keeps bytes that are not UTF-8 as they were, where "replace" would not.
            form[name] = unquote_plus(value, errors="strict")
        except UnicodeDecodeError:
            return None
    return form


def basic_credentials(header: str) -> tuple[str, str] | None:
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


def secret_client(provider: "Provider", authorization: str | None, form: dict[str, str]) -> "Client | None":
    """The client, authenticated by ``client_secret_basic`` or ``client_secret_post`` (whichever Authlib
    would find first, and only the one the client registered); None otherwise."""
    if authorization is not None:
        if "client_secret" in form:
            return None
        credentials = basic_credentials(authorization)
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
    client = provider.clients.get(client_id)
    if client is None or client.token_endpoint_auth_method != method:
        return None
    return client if client.check_client_secret(secret) else None


class FormPost:
    """Middleware for ``POST PATH`` with a form of ``FIELDS``; subclasses say what to answer."""

    PATH: str
    FIELDS: frozenset[str]
    ENDPOINT_HEADERS: Sequence[tuple[str, str]] = ()  # what the view's own hooks add (Vary, say)

    def __init__(
        self,
        app: WsgiApp,
        *,
        provider: "Provider",
        security_headers: list[tuple[str, str]],
        https: bool = False,
    ) -> None:
        self._app = app
        self.provider = provider
        self._https = https  # the IdP's public URL is https: requests count as such (idp.web.scheme)
        # What the view's answer carries: Authlib's JSON headers, the endpoint's no-store, the IdP's.
        self._fixed = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
            *self.ENDPOINT_HEADERS,
            *security_headers,
        ]
        self._secure: dict[tuple[str, str], bool] = {}
        self._requests = REST_REQUESTS.labels("idp", self.PATH, "POST", "200")
        self._seconds = REST_SECONDS.labels("idp", self.PATH)

    def answer(self, environ: dict[str, Any], form: dict[str, str]) -> dict[str, Any] | None:
        raise NotImplementedError

    def counted(self) -> None:
        """Count an answer given here as the view's metrics hook counts it (besides the REST counters)."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.PATH or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        began = time.perf_counter()
        body = self._body(environ)
        if body is None:
            return self._app(environ, start_response)
        # The view reads the body again: it gets the same bytes.
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_form(body, self.FIELDS)
        if form is None:
            return self._app(environ, start_response)
        provider = self.provider
        try:
            provider.client_failures.check(provider.services.limits.client_of(environ))
        except RateLimited:  # over its budget of wrong credentials: the view refuses
            return self._app(environ, start_response)
        try:
            payload = self.answer(environ, form)
        except Exception:
            # The store or the database is away: the view meets the same trouble and answers it, with the
            # request's context for its log line. (Whatever single-use thing a fast path took before the
            # trouble stays used: the view finds it gone and refuses it, as it refuses any used code.)
            payload = None
        if payload is None:
            return self._app(environ, start_response)
        encoded = json.dumps(payload, sort_keys=True).encode()  # as flask.json writes it
        start_response("200 OK", [*self._fixed, ("Content-Length", str(len(encoded)))])
        self._requests.inc()
        self.counted()
        self._seconds.observe(time.perf_counter() - began)
        return [encoded]

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        if environ.get("HTTP_ORIGIN") is not None or environ.get("HTTP_SEC_FETCH_SITE") is not None:
            return None  # a browser's request: the cross-site rule and CORS judge it
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
            secure = self._secure[where] = is_secure_transport(f"{where[0]}://{where[1]}{self.PATH}")
        return secure
