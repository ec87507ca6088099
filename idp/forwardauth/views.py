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
from idp.forwardauth.identity import identity_headers
from idp.forwardauth.rules import normalize_host, normalize_path
from idp.forwardauth.settings import ForwardAuthSettings, load_settings
from idp.forwardauth.urls import RETURN_PATH, original_url, return_path, safe_return, wants_html
from idp.sessions import AUDIENCE, TOKEN_TYPE, SessionManager

log = logging.getLogger("nextauth.idp.forward_auth")

STATE = "nextauth_forward_auth"
ENDED_CACHE_SECONDS = 1.5
POLICY_VERSION = 1
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
        ", ".join(p.host + (f":{p.port}" if p.port else "") for p in settings.return_hosts)
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


def forward() -> Response:
    fa = state()
    host = request.headers.get("X-Forwarded-Host") or request.host
    uri = request.headers.get("X-Forwarded-Uri") or "/"
    method = request.headers.get("X-Forwarded-Method") or "GET"
    token = request.cookies.get(services().cookie_name)
    outcome = decide(
        fa.settings.rules,
        normalize_host(host),
        normalize_path(uri),
        method,
        lambda: services().sessions.verify(token),
    )
    return _no_store(_answer(outcome, host, uri, method))


def _answer(outcome: Outcome, host: str, uri: str, method: str) -> Response:
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
            method[:16],
            host[:255],
            normalize_path(uri)[:255],
        )
        if browser:
            return Response(FORBIDDEN_HTML, status=403, mimetype="text/html")
        return _json(403, {"error": "forbidden"})
    login = _login_url(original_url(request.headers.get("X-Forwarded-Proto"), host, uri))
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
            "error.html", message="This link does not lead to an application this login protects."
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
        **settings.rules.to_json(),
    }
    return _no_store(_json(200, document))


def blueprint() -> Blueprint:
    found = Blueprint("forward_auth", __name__)
    found.record_once(_configure)
    found.add_url_rule("/auth/forward", "forward", forward, methods=["GET"])
    found.add_url_rule(RETURN_PATH, "return", back_to_application, methods=["GET"])
    found.add_url_rule("/auth/keys", "keys", keys, methods=["GET"])
    found.add_url_rule("/auth/ended", "ended", ended, methods=["GET"])
    found.add_url_rule("/auth/policy", "policy", policy, methods=["GET"])
    return found
