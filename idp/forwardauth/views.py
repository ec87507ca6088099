"""Forward-auth over HTTP: the endpoint Traefik's forwardAuth middleware calls, the way back to the
application after login, and what the Traefik plugin fetches.

- ``GET /auth/forward``: 200 with identity headers, 302 to the login page (browsers), 401 (API clients)
  or 403. Traefik sends the original request's headers (the session cookie among them) and
  ``X-Forwarded-Proto/Host/Uri/Method``.
- ``GET /auth/return?url=``: after login, back to the application, only to an allowed host.
- ``GET /auth/keys``: the public session keys (JWKS).
- ``GET /auth/ended``: sessions ended before they expired (the plugin's revocation list).
- ``GET /auth/policy``: what the plugin needs to decide alike: cookie, issuer, header names, rules.
"""

import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response

from idp.context import EXTENSION, IdpServices, current_user, services
from idp.forwardauth.decision import Outcome, decide
from idp.forwardauth.fastpath import DECIDED
from idp.forwardauth.forwarded import Forwarded, Unusable, describe
from idp.forwardauth.identity import identity_headers
from idp.forwardauth.rules import normalize_host, normalize_path
from idp.forwardauth.settings import ForwardAuthSettings, load_settings
from idp.forwardauth.urls import RETURN_PATH, original_url, return_path, safe_return, wants_html
from idp.i18n import N_
from idp.sessions import AUDIENCE, TOKEN_TYPE, SessionManager

log = logging.getLogger("nextauth.idp.forward_auth")

STATE = "nextauth_forward_auth"
ENDED_CACHE_SECONDS = 1.5
POLICY_VERSION = 1
LOGIN_HEADER = "X-Nextauth-Login"
REFUSAL_LOG_SECONDS = 10.0
_LOGGED: dict[str, float] = {}
_LOGGED_LOCK = threading.Lock()
FORBIDDEN_HTML = (
    '<!doctype html>\n<html lang="en"><meta charset="utf-8"><title>Not allowed</title>\n'
    "<h1>Not allowed</h1>\n<p>You are logged in, but your account may not open this page.</p>\n</html>\n"
)


class EndedList:
    """The ended-session list, read from the database at most every ``seconds`` however many plugins ask."""

    def __init__(self, sessions: SessionManager, seconds: float = ENDED_CACHE_SECONDS) -> None:
        self._sessions = sessions
        self._seconds = seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._document: dict[str, Any] = {}

    def current(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._read_at >= self._seconds:
                self._document = {"ended": self._sessions.ended(), "generated_at": int(time.time())}
                self._read_at = time.monotonic()
            return self._document


@dataclass
class ForwardAuth:
    settings: ForwardAuthSettings
    ended: EndedList


def state() -> ForwardAuth:
    return current_app.extensions[STATE]  # type: ignore[no-any-return]


def _configure(setup: BlueprintSetupState) -> None:
    """Settings are read once, when the IdP's app is built; a mistake stops the IdP from starting."""
    idp: IdpServices = setup.app.extensions[EXTENSION]
    settings = load_settings(os.environ)
    setup.app.extensions[STATE] = ForwardAuth(settings=settings, ended=EndedList(idp.sessions))
    log.info(
        "forward-auth: %d rule(s), default %s; returns browsers to %s",
        len(settings.rules.rules),
        settings.rules.default.policy,
        ", ".join(pattern.to_text() for pattern in settings.return_hosts)
        or "the IdP only (NEXTAUTH_IDP_FORWARD_AUTH_HOSTS names the protected hosts)",
    )


def _json(status: int, body: dict[str, Any], **headers: str) -> Response:
    text = json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"
    response = Response(text, status=status, mimetype="application/json")
    response.headers.update(headers)
    return response


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _login_url(target: str) -> str:
    return services().url("/login", next=return_path(target))


def _plugin_may_read() -> bool:
    token = state().settings.plugin_token
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _refused(problem: Unusable) -> Response:
    """The proxy did not describe the request well enough to decide it: refused, never guessed."""
    now = time.monotonic()
    with _LOGGED_LOCK:
        # One line per header and interval: a misconfigured proxy (or a stranger) cannot flood the log.
        if now - _LOGGED.get(problem.header, float("-inf")) >= REFUSAL_LOG_SECONDS:
            _LOGGED[problem.header] = now
            log.warning(
                "forward-auth: refused a request from %s: %s %s; fix the proxy's configuration "
                "(docs/forward-auth.md)",
                request.remote_addr,
                problem.header,
                problem.problem,
            )
    body = {
        "error": "bad_request",
        "message": f"The proxy must describe the request: {problem.header} {problem.problem}.",
    }
    return _no_store(_json(400, body))


def _decide() -> tuple[Outcome, Forwarded] | Response:
    made = request.environ.get(DECIDED)  # by the fast path (idp.forwardauth.fastpath), when it could
    if made is not None:
        return made  # type: ignore[no-any-return]
    fa = state()
    try:
        asked = describe(request.headers.getlist)
    except Unusable as problem:
        return _refused(problem)
    token = request.cookies.get(services().cookie_name)
    host = normalize_host(asked.host)
    if not fa.settings.admits_host(host, asked):
        log.info("forward-auth: refused the unconfigured host %r", asked.host[:255])
        return Outcome("forbidden", fa.settings.rules.default), asked
    outcome = decide(
        fa.settings.rules,
        host,
        normalize_path(asked.uri),
        asked.method,
        lambda: services().sessions.verify(token),
    )
    return outcome, asked


def forward() -> Response:
    """Traefik's forwardAuth and Caddy's forward_auth: the answer goes to the client as it is."""
    decided = _decide()
    if isinstance(decided, Response):
        return decided
    return _no_store(_answer(*decided))


def nginx() -> Response:
    """nginx's auth_request takes only 2xx, 401 and 403: no redirect, and the login URL in a header
    that ``auth_request_set`` can read for ``error_page``."""
    decided = _decide()
    if isinstance(decided, Response):
        return decided
    outcome, asked = decided
    if outcome.verdict != "unauthenticated":
        return _no_store(_answer(outcome, asked))
    login = _login_url(original_url(asked.proto, asked.host, asked.uri))
    return _no_store(_json(401, {"error": "unauthenticated", "login": login}, **{LOGIN_HEADER: login}))


def _answer(outcome: Outcome, asked: Forwarded) -> Response:
    fa = state()
    if outcome.verdict == "allow":
        response = Response("", status=200)
        response.headers.update(identity_headers(outcome.user, fa.settings.headers))
        return response
    browser = wants_html(request.headers.get("Accept"))
    if outcome.verdict == "forbidden":
        log.info(
            "forward-auth: %s may not %s %r%r",
            outcome.user.sub if outcome.user else "nobody",
            asked.method[:16],
            asked.host[:255],
            normalize_path(asked.uri)[:255],
        )
        if browser:
            return Response(FORBIDDEN_HTML, status=403, mimetype="text/html")
        return _json(403, {"error": "forbidden"})
    login = _login_url(original_url(asked.proto, asked.host, asked.uri))
    if browser:
        return redirect(login, code=302)
    return _json(401, {"error": "unauthenticated", "login": login})


def back_to_application() -> Response:
    idp = services()
    fa = state()
    wanted = request.args.get("url")
    target = safe_return(wanted, fa.settings.return_hosts, idp_url=idp.issuer)
    if target is None:
        log.warning("forward-auth: refused to send a browser back to %r", (wanted or "")[:120])
        page = render_template(
            "error.html", message=N_("This link does not lead to an application this login protects.")
        )
        return _no_store(Response(page, status=400, mimetype="text/html"))
    if current_user() is None:
        return _no_store(redirect(_login_url(target)))
    return _no_store(redirect(target))


def keys() -> Response:
    response = _json(200, services().keys.jwks("session"))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


def ended() -> Response:
    if not _plugin_may_read():
        return _json(401, {"error": "unauthenticated"})
    return _no_store(_json(200, state().ended.current()))


def policy() -> Response:
    if not _plugin_may_read():
        return _json(401, {"error": "unauthenticated"})
    idp = services()
    settings = state().settings
    document = {
        "version": POLICY_VERSION,
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "token_type": TOKEN_TYPE,
        "cookie": idp.cookie_name,
        "login_url": idp.url("/login"),
        "return_path": RETURN_PATH,
        "headers": settings.headers.to_json(),
        "unknown_hosts": settings.unknown_hosts,
        "known_hosts": [pattern.to_text() for pattern in settings.return_hosts],
        **settings.rules.to_json(),
    }
    return _no_store(_json(200, document))


def blueprint() -> Blueprint:
    found = Blueprint("forward_auth", __name__)
    found.record_once(_configure)
    found.add_url_rule("/auth/forward", "forward", forward, methods=["GET"])
    found.add_url_rule("/auth/nginx", "nginx", nginx, methods=["GET"])
    found.add_url_rule(RETURN_PATH, "return", back_to_application, methods=["GET"])
    found.add_url_rule("/auth/keys", "keys", keys, methods=["GET"])
    found.add_url_rule("/auth/ended", "ended", ended, methods=["GET"])
    found.add_url_rule("/auth/policy", "policy", policy, methods=["GET"])
    return found
