"""The forward-auth check a logged-in user's every request costs, answered before Flask sees it.

A proxy asks ``/auth/forward`` (or ``/auth/nginx``) once per request to the applications it protects, and
nearly every answer is "yes, this is alice". That answer needs no request context, no error handlers and no
templates, so this WSGI middleware gives it straight from the environ: the same header reading
(``forwarded.describe``), the same decision (``decision.decide``) and the same session check
(``SessionManager.verify``: a remembered signature and the in-memory set of ended sessions), with the same
headers as the Flask view's answer. Every other answer (log in first, not allowed, a proxy that describes
the request badly) is the Flask view's, which receives the decision already made here.

A proxy asks about the same request over and over (one browser's session, the same pages and assets), and
everything that decides it lies in a few headers: the request the proxy describes and the cookie. The
answer "let through, with these headers" is remembered under those headers' exact values, and given again
while the session is still current (not ended, not expired, its signature still remembered:
``SessionManager.still_current``). Rules and hosts are fixed while the IdP runs, and a token's claims
never change, so nothing else could change the answer.
"""

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import parse_cookie

from authserver.metrics import REST_REQUESTS, REST_SECONDS
from idp.forwardauth.decision import Outcome, decide
from idp.forwardauth.forwarded import Forwarded, Unusable, describe
from idp.forwardauth.identity import identity_headers
from idp.forwardauth.rules import normalize_host, normalize_path
from idp.forwardauth.settings import ForwardAuthSettings
from idp.metrics import FORWARD_AUTH
from idp.sessions import SessionManager

PATHS = {"/auth/forward": "/auth/forward", "/auth/nginx": "/auth/nginx"}
ALLOWED_MEMO_MAX = 4096  # requests whose "let through" is remembered (all forgotten at once past it)
ALLOWED_KEY_MAX = 4096  # characters of deciding headers at most for a remembered request (bounds the memory)
# Every header the decision reads: ``forwarded.describe``'s and the cookie. Each is a key's part.
_DECIDING_HEADERS = (
    "HTTP_X_FORWARDED_METHOD",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_URI",
    "HTTP_X_ORIGINAL_METHOD",
    "HTTP_X_ORIGINAL_URL",
    "HTTP_COOKIE",
)
# A Cookie header of plain name=value pairs only (no quoted value, nothing werkzeug would skip): the
# pairs werkzeug.http.parse_cookie finds in it are its ;-separated parts, split at their first "=".
_PLAIN_COOKIES = re.compile(r'(?:[ \t]*[^ \t=";]+[ \t]*=[ \t]*[^ \t";]*[ \t]*(?:;|\Z))*')
# The decision made here, for the Flask view to answer from when it is not "allow".
DECIDED = "nextauth.forward_auth.decided"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _header_values(environ: dict[str, Any]) -> Callable[[str], list[str]]:
    # WSGI holds one value per header (the server joins repeated ones), as werkzeug's getlist sees it.
    def values(name: str) -> list[str]:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        return [value] if value is not None else []

    return values


class FastForwardAuth:
    def __init__(
        self,
        app: WsgiApp,
        *,
        settings: ForwardAuthSettings,
        sessions: SessionManager,
        cookie_name: str,
        security_headers: list[tuple[str, str]],
    ) -> None:
        self._app = app
        self._settings = settings
        self._sessions = sessions
        self._cookie_name = cookie_name
        self._fixed = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", "0"),
            ("Cache-Control", "no-store"),
            *security_headers,
        ]
        # (path, the deciding headers' values) -> (sid, until, the answer's headers)
        self._allowed_memo: dict[tuple[str | None, ...], tuple[str, float, list[tuple[str, str]]]] = {}
        self._anonymous = list(identity_headers(None, settings.headers).items()) + self._fixed
        self._allowed = FORWARD_AUTH.labels("allowed")
        self._counted = {
            path: (REST_REQUESTS.labels("idp", route, "GET", "200"), REST_SECONDS.labels("idp", route))
            for path, route in PATHS.items()
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in PATHS or environ.get("REQUEST_METHOD") != "GET":
            return self._app(environ, start_response)
        began = time.perf_counter()
        key = (path, *map(environ.get, _DECIDING_HEADERS))
        try:
            headers = self._remembered(key) or self._decided_headers(environ, key)
        except Exception:
            # The database or the store is away: the view meets the same trouble and answers it as the
            # IdP answers outages (503 with Retry-After), with the request's context for its log line.
            return self._app(environ, start_response)
        if headers is None:  # not let through: the view answers from the decision in the environ
            return self._app(environ, start_response)
        start_response("200 OK", headers.copy())  # gevent adds to the list it is given (Date)
        self._allowed.inc()
        requests, seconds = self._counted[path]
        requests.inc()
        seconds.observe(time.perf_counter() - began)
        return [b""]

    def _remembered(self, key: tuple[str | None, ...]) -> list[tuple[str, str]] | None:
        """The headers of the answer remembered for these exact headers, if its session is still current."""
        found = self._allowed_memo.get(key)
        if found is None:
            return None
        sid, until, headers = found
        if self._sessions.still_current(sid, until):
            return headers
        self._allowed_memo.pop(key, None)
        return None

    def _decided_headers(
        self, environ: dict[str, Any], key: tuple[str | None, ...]
    ) -> list[tuple[str, str]] | None:
        """The answer's headers when the request is let through; None (the decision left in the environ
        for the view) when it is not."""
        decided = self._decide(environ)
        if decided is None or decided[0].verdict != "allow":
            environ[DECIDED] = decided[:2] if decided is not None else None
            return None
        outcome, _asked, token = decided
        user = outcome.user
        if user is None:  # a public rule lets an anonymous request through: no session to check again
            return self._anonymous
        headers = list(identity_headers(user, self._settings.headers).items()) + self._fixed
        if sum(len(part) for part in key if part is not None) <= ALLOWED_KEY_MAX:
            if len(self._allowed_memo) >= ALLOWED_MEMO_MAX:
                self._allowed_memo.clear()
            self._allowed_memo[key] = (user.sid, self._sessions.remember_until(token), headers)
        return headers

    def _decide(self, environ: dict[str, Any]) -> tuple[Outcome, Forwarded, str] | None:
        """None when the proxy's description cannot be used: the view says why (and logs it)."""
        try:
            asked = describe(_header_values(environ))
        except Unusable:
            return None
        host = normalize_host(asked.host)
        if not self._settings.admits_host(host, asked):
            return None  # the view logs and refuses the unconfigured host
        token = session_cookie(environ.get("HTTP_COOKIE", ""), self._cookie_name)
        outcome = decide(
            self._settings.rules,
            host,
            normalize_path(asked.uri),
            asked.method,
            lambda: self._sessions.verify(token),
        )
        return outcome, asked, token or ""


def session_cookie(header: str, name: str) -> str | None:
    """``werkzeug.http.parse_cookie(header).get(name)``: the first value of cookie ``name``; read here
    without werkzeug's general parser when the header holds plain pairs only, as a browser sends them."""
    # ASCII only: werkzeug reads the WSGI string's bytes as UTF-8 first, which changes nothing there.
    if not header.isascii() or _PLAIN_COOKIES.fullmatch(header) is None:
        return parse_cookie(header).get(name)
    for part in header.split(";"):
        key, _, value = part.partition("=")
        if key.strip(" \t") == name:
            return value.strip(" \t")
    return None
