"""CORS for single-page apps: which web pages may read the provider's answers.

- Discovery and the JWKS are public documents: any origin (``*``).
- Token, userinfo and revocation answer a page only if its origin is one of the web origins of the client
  the request is for (``Client.web_origins``; a public client's default is its redirect URIs' origins).
  The client is the one the request names (HTTP Basic user or ``client_id`` for token and revocation, the
  bearer token's client for userinfo). A request that names no known client gets an error only; its answer
  is readable by the origins some client registered, so a single-page app sees why (an expired token, say).
- Preflights (``OPTIONS``) carry no client: they are answered for origins some client registered; the
  request itself is then judged by its client. No credentials mode: the endpoints take no cookies.
"""

import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, request

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

OPEN_ENDPOINTS = frozenset({"oidc.discovery", "oidc.jwks"})
CLIENT_ENDPOINTS = {"oidc.token": "POST", "oidc.userinfo": "GET, POST", "oidc.revoke": "POST"}
ALLOWED_HEADERS = "Authorization, Content-Type, DPoP"
MAX_ORIGIN_LENGTH = 300  # an origin is scheme://host:port; anything longer is not one of ours
PREFLIGHT_MAX_AGE = "600"
EXTENSION = "nextauth_oidc_cors"


class RegisteredOrigins:
    """Every client's web origins, read at most every few seconds: preflights come from strangers too."""

    def __init__(self, provider: "Provider", cache_seconds: float = 5.0) -> None:
        self._provider = provider
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._origins: frozenset[str] = frozenset()

    def __contains__(self, origin: object) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._read_at > self._cache_seconds:
                self._origins = frozenset(o for c in self._provider.clients.all() for o in c.web_origins)
                self._read_at = now
            return origin in self._origins


def install(blueprint: Blueprint, provider_of: Any) -> None:
    """Hook the CORS answers into the OIDC blueprint; ``provider_of()`` is the app's provider."""

    @blueprint.record_once
    def _setup(state: Any) -> None:
        state.app.extensions[EXTENSION] = RegisteredOrigins(state.app.extensions["nextauth_oidc"])

    @blueprint.before_request
    def _preflight() -> Any:
        if request.method != "OPTIONS":
            return None
        response = current_app.make_response(("", 204))
        if request.endpoint in OPEN_ENDPOINTS:
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response
        if request.endpoint not in CLIENT_ENDPOINTS:
            return None
        response.headers["Vary"] = "Origin"
        origin = _origin()
        if origin is not None and origin in current_app.extensions[EXTENSION]:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = CLIENT_ENDPOINTS[request.endpoint or ""]
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response

    @blueprint.after_request
    def _answer(response: Any) -> Any:
        if request.method == "OPTIONS":
            return response
        if request.endpoint in OPEN_ENDPOINTS:
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response
        if request.endpoint not in CLIENT_ENDPOINTS:
            return response
        response.vary.add("Origin")
        origin = _origin()
        if origin is None:
            return response
        provider: Provider = provider_of()
        client_id = _client_id(provider)
        client = provider.clients.get(client_id) if client_id else None
        if client is not None:
            allowed = origin in client.web_origins
        else:  # names no known client: an error, readable by the pages of registered clients
            allowed = response.status_code >= 400 and origin in current_app.extensions[EXTENSION]
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
        return response


def _origin() -> str | None:
    origin = request.headers.get("Origin")
    if not origin or origin == "null" or len(origin) > MAX_ORIGIN_LENGTH:
        return None
    return origin


def _client_id(provider: "Provider") -> str | None:
    """The client a token, userinfo or revocation request is for (not authenticated here: the endpoint
    does that; this only decides who may read the answer)."""
    if request.endpoint == "oidc.userinfo":
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" else request.form.get("access_token")
        token = provider.tokens.access_token(bearer)
        return token.grant.client_id if token is not None else None
    authorization = request.authorization
    if authorization is not None and authorization.type == "basic" and authorization.username:
        return str(authorization.username)
    client_id = request.form.get("client_id")
    return client_id if client_id and len(client_id) <= 64 else None
