"""Signed authorization requests (JAR, RFC 9101) and the authorization endpoint's view of pushed ones (PAR).

Before Authlib reads an authorization request, ``AuthorizationRequests`` puts the request's real parameters
in its place:

- ``request`` (a request object): verified with the client's keys (or HMAC with its secret), ``alg=none``
  refused, ``iss`` = the client, ``aud`` = the issuer, ``exp`` required and near, ``nbf`` not far back.
  Only the object's parameters count (RFC 9101 6.3): the query's others are dropped.
- ``request_uri``: only the ones our PAR endpoint issued (``urn:ietf:params:oauth:request_uri:``), for the
  client that pushed them. Fetching other URLs would let anyone make the IdP request any address (SSRF),
  so they are refused with ``request_uri_not_supported``.
- a client (or the server) that requires PAR gets nothing else through.
"""

import json
import time
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc9101.errors import (
    InvalidRequestObjectError,
    InvalidRequestUriError,
    RequestUriNotSupportedError,
)
from joserfc import jwt
from joserfc.errors import JoseError

from idp.oidc.client_keys import ClientKeyError
from idp.oidc.clients import Client

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

MAX_REQUEST_OBJECT_BYTES = 16 * 1024
MAX_LIFETIME = 3600  # exp no further ahead, nbf no further back (FAPI 2.0's bound)
LEEWAY = 30
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
PUSHED = "nextauth_pushed"  # set on a request being pushed: its parameters are the ones to check


def request_object_parameters(provider: "Provider", client: Client, value: str) -> dict[str, str]:
    """The authorization parameters in a request object, after every check. Raises OAuth2Error."""
    if len(value) > MAX_REQUEST_OBJECT_BYTES:
        raise InvalidRequestObjectError(description="The request object is larger than 16 KiB.")
    try:
        token = provider.client_keys.decode(client, value, client.request_object_algs)
    except ClientKeyError as exc:
        raise InvalidRequestObjectError(description=f"The request object is not valid: {exc}.") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": client.client_id},
        aud={"essential": True, "value": provider.services.issuer},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise InvalidRequestObjectError(
            description=f"The request object's claims are not valid: {exc.description or exc.error}."
        ) from None
    now = time.time()
    if claims["exp"] - now > MAX_LIFETIME:
        raise InvalidRequestObjectError(description="The request object's exp is more than an hour ahead.")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int) or now - nbf > MAX_LIFETIME):
        raise InvalidRequestObjectError(description="The request object's nbf is more than an hour back.")
    if claims.get("client_id", client.client_id) != client.client_id:
        raise InvalidRequestObjectError(description="The request object's client_id is another client's.")
    if "request" in claims or "request_uri" in claims:
        raise InvalidRequestObjectError(description="A request object cannot hold request or request_uri.")
    params: dict[str, str] = {}
    for name, claim in claims.items():
        if name in JWT_CLAIMS:
            continue
        # Authorization parameters are strings; a structured one (e.g. "claims") travels as JSON text.
        params[name] = claim if isinstance(claim, str) else json.dumps(claim)
    params["client_id"] = client.client_id
    return params


class AuthorizationRequests:
    """An Authlib server extension: the hook that resolves ``request`` and ``request_uri``."""

    def __init__(self, provider: "Provider") -> None:
        self.provider = provider

    def __call__(self, server: Any) -> None:
        server.register_hook("before_get_authorization_grant", self.resolve)

    def resolve(self, server: Any, request: Any) -> None:
        if getattr(request, PUSHED, False):
            return
        data = request.payload.data
        client = server.query_client(data.get("client_id"))
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        if "request" in data and "request_uri" in data:
            raise InvalidRequestError("Send request or request_uri, not both.")
        if "request_uri" in data:
            pushed = self.provider.pushed.get(data["request_uri"], client)
            request.payload = BasicOAuth2Payload(pushed)
            request.pushed_request_uri = data["request_uri"]
            return
        if client.require_pushed_authorization_requests or self.provider.require_par:
            raise InvalidRequestError(
                "This client must push its authorization requests first (PAR, RFC 9126) and send only "
                "client_id and request_uri here."
            )
        if "request" in data:
            params = request_object_parameters(self.provider, client, data["request"])
            request.payload = BasicOAuth2Payload(params)


def check_request_uri(value: str, prefix: str) -> None:
    if not value.startswith(prefix):
        raise RequestUriNotSupportedError(
            description="Only request_uri values from this server's PAR endpoint are accepted; fetching "
            "other URLs is not supported."
        )
    if len(value) > 200:
        raise InvalidRequestUriError(description="The request_uri is not one this server issued.")
