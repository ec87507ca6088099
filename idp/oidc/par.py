"""Pushed authorization requests (PAR, RFC 9126).

The client posts its authorization parameters (or a request object) to ``/oidc/par``, authenticated as at
the token endpoint; they are checked as the authorization endpoint would check them and kept in the shared
store for ``LIFETIME`` seconds under a random ``request_uri``, which the browser then brings to the
authorization endpoint with the client id alone. A pushed request is read while the user logs in and
consents, and taken (deleted) when the authorization response is made: it yields one code at most.
"""

import hashlib
import json
import secrets
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, OAuth2Request
from authlib.oauth2.rfc9101.errors import InvalidRequestUriError

from idp.oidc.client_auth import CLIENT_AUTH_METHODS
from idp.oidc.clients import Client
from idp.oidc.jar import PUSHED, check_request_uri, request_object_parameters

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
LIFETIME = 60
STORE_PREFIX = "oidc:par:"
MAX_PARAMETERS = 50
MAX_VALUE = 4096
# What authenticates the client, not part of the authorization request.
CLIENT_AUTH_PARAMETERS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


def _key(request_uri: str) -> str:
    return STORE_PREFIX + hashlib.sha256(request_uri.encode()).hexdigest()


class PushedRequests:
    def __init__(self, provider: "Provider") -> None:
        self.provider = provider

    def get(self, request_uri: str, client: Client) -> dict[str, str]:
        """The pushed parameters, for the client that pushed them. Raises OAuth2Error."""
        check_request_uri(request_uri, REQUEST_URI_PREFIX)
        raw = self.provider.services.kv.get(_key(request_uri))
        record = json.loads(raw) if raw is not None else None
        if record is None or record["client_id"] != client.client_id:
            raise InvalidRequestUriError(
                description="This request_uri is unknown, expired, used, or another client's: push the "
                "authorization request again."
            )
        return dict(record["params"])

    def take(self, request_uri: str) -> bool:
        """Use a pushed request up: True the first time only."""
        return self.provider.services.kv.take(_key(request_uri)) is not None

    def push(self, request: OAuth2Request) -> tuple[int, dict[str, Any]]:
        """The PAR endpoint: (status, JSON body). Raises OAuth2Error, never with a redirect."""
        server = self.provider.server
        client: Client = server.authenticate_client(request, CLIENT_AUTH_METHODS, "pushed_authorization")
        form = request.form
        if "request_uri" in form:
            raise InvalidRequestError("request_uri cannot be pushed (RFC 9126 2.1).")
        if form.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id is not the authenticated client's.")
        if len(form) > MAX_PARAMETERS or any(len(str(v)) > MAX_VALUE for v in form.values()):
            raise InvalidRequestError("Too many or too long parameters.")
        if "request" in form:
            params = request_object_parameters(self.provider, client, form["request"])
        else:
            params = {k: str(v) for k, v in form.items() if k not in CLIENT_AUTH_PARAMETERS}
            params["client_id"] = client.client_id
        proof_jkt = getattr(request, "dpop_jkt", None)
        if proof_jkt is not None:
            # A DPoP proof at PAR binds the code to its key (RFC 9449 10.1); a dpop_jkt must agree.
            if params.setdefault("dpop_jkt", proof_jkt) != proof_jkt:
                raise InvalidRequestError("dpop_jkt is not the key of the DPoP proof.")
        self._check(params, request.uri)
        request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        record = {"client_id": client.client_id, "params": params}
        self.provider.services.kv.set(_key(request_uri), json.dumps(record).encode(), ttl=LIFETIME)
        return 201, {"request_uri": request_uri, "expires_in": LIFETIME}

    def _check(self, params: dict[str, str], uri: str) -> None:
        """As the authorization endpoint would: response type, redirect URI, scope, PKCE. ``uri``: the PAR
        request's own, for Authlib's transport check."""
        server = self.provider.server
        checked = OAuth2Request("GET", uri)
        checked.payload = BasicOAuth2Payload(params)
        setattr(checked, PUSHED, True)
        try:
            grant = server.get_authorization_grant(checked)
            grant.validate_authorization_request()
        except OAuth2Error as error:
            error.redirect_uri = None  # errors go back in this response, never to a redirect
            error.state = None
            raise
