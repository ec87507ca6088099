"""``GET /v1/servers/<sid>/sessions/`` before Flask: the call an application's login page makes on every
poll, answered without the framework's work per request (about a fifth of the call's CPU).

WSGI middleware in front of the REST app. It says yes or hands the request on, never no: only a request
with a known API key that holds the ``sessions`` role for an existing server and a valid nonce is answered
here, with the view's own body (``sessions.status_view``), headers and counters. Anything else (no key or
a wrong one, a client certificate, a client over its budget of wrong keys, another role, an unknown
server, a bad nonce, any failure while answering) goes on to the Flask view as it came, so every refusal,
log line, audit event and budget count stays in one place. A failure while answering is answered there by
doing the work once more, which reads the same status (the QR it made here, if any, is the session's
current one).
"""

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from authserver.metrics import REST_REQUESTS, REST_SECONDS
from authserver.ns.common import valid_nonce
from authserver.ns.rest.context import NsServices
from authserver.ns.rest.requests import visitor
from authserver.ns.rest.sessions import status_view
from authserver.ratelimit import client_ip

ROUTE = "/v1/servers/<sid>/sessions/"
_PREFIX, _SUFFIX = "/v1/servers/", "/sessions/"
_MAX_SERVER_ID = 1024  # as the view's check of ids in the path
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # as jsonify writes it

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FastSessionStatus:
    def __init__(self, app: WsgiApp, services: NsServices) -> None:
        self._app = app
        self._ns = services
        self._requests = REST_REQUESTS.labels("ns", ROUTE, "GET", "200")
        self._seconds = REST_SECONDS.labels("ns", ROUTE)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self._app(environ, start_response)
        path: str = environ.get("PATH_INFO", "")
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return self._app(environ, start_response)
        began = time.perf_counter()
        view = self._answer(environ, path[len(_PREFIX) : -len(_SUFFIX)])
        if view is None:
            return self._app(environ, start_response)
        encoded = (_ENCODER.encode(view) + "\n").encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(encoded)))]
        )
        self._requests.inc()
        self._seconds.observe(time.perf_counter() - began)
        return [encoded]

    def _answer(self, environ: dict[str, Any], server_id: str) -> dict[str, Any] | None:
        if not (0 < len(server_id) <= _MAX_SERVER_ID and server_id.isascii() and server_id.isprintable()):
            return None
        if "/" in server_id:
            return None
        api_key = environ.get("HTTP_X_APIKEY")
        session_nonce = environ.get("HTTP_X_NONCE")
        if api_key is None or not valid_nonce(session_nonce):
            return None
        ns = self._ns
        try:
            if ns.access.failures is not None:
                client = client_ip(
                    environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), ns.trusted_proxies
                )
                ns.access.failures.check(client)
            grant = ns.access.authenticate(api_key)
            if grant is None or not grant.allows("sessions", server_id):
                return None
            server = ns.servers.get(server_id)
            if server is None:
                return None
            assert session_nonce is not None
            return status_view(
                ns,
                server,
                session_nonce,
                visitor(
                    environ.get("HTTP_X_CLIENT_IP"),
                    environ.get("HTTP_X_USER_AGENT"),
                    environ.get("HTTP_X_CLIENT_LOCATION"),
                ),
            )
        except Exception:  # over the budget (RateLimited), or the store or the database is away: the view
            return None  # meets the same and answers it
