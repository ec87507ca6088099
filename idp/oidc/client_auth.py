"""Client authentication with a signed JWT (RFC 7523 2.2, OIDC Core 9): ``private_key_jwt`` (the client's
registered keys) and ``client_secret_jwt`` (HMAC with its secret).

Registered on the authorization server, so every endpoint that authenticates clients through
``server.authenticate_client(request, CLIENT_AUTH_METHODS, endpoint)`` accepts them: token, introspection,
revocation, PAR, and whatever comes later. A client uses only the method it registered.

The assertion: ``iss`` = ``sub`` = the client id; ``aud`` = the issuer, the token endpoint or the endpoint
called (RFC 9126 2); ``exp`` at most ``MAX_LIFETIME`` ahead; ``jti`` used once (remembered in the shared
store until the assertion expires).
"""

import hashlib
import time
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from flask import request as flask_request

from idp.oidc.client_keys import ClientKeyError

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

# Every method, for endpoints where public clients may appear (token, revocation, PAR) ...
CLIENT_AUTH_METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
]
# ... and for those only confidential clients may use (introspection, client credentials).
CONFIDENTIAL_AUTH_METHODS = [m for m in CLIENT_AUTH_METHODS if m != "none"]
JWT_METHODS = ("client_secret_jwt", "private_key_jwt")
MAX_LIFETIME = 3600  # what common clients sign for (Authlib: an hour); the replay cache holds jti as long
MAX_ASSERTION_BYTES = 8192
JTI_PREFIX = "oidc:client-jti:"


class ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    def __init__(self, provider: "Provider", method: str) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.provider = provider
        self.CLIENT_AUTH_METHOD = method

    def __call__(self, query_client: Any, request: Any) -> Any:
        form = request.form
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return None
        assertion = form.get("client_assertion") or ""
        if not assertion or len(assertion) > MAX_ASSERTION_BYTES:
            raise InvalidClientError(description="Send one client_assertion of at most 8 KiB.")
        _headers, claims = self.extract_assertion(assertion)
        client_id = claims.get("sub")
        if not isinstance(client_id, str):
            raise InvalidClientError(description="The client assertion needs 'sub': the client id.")
        if form.get("client_id") not in (None, client_id):
            raise InvalidClientError(description="client_id and the client assertion's 'sub' differ.")
        client = query_client(client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        if client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
            return None  # another method's turn; a client authenticates only as it registered
        try:
            token = self.provider.client_keys.decode(client, assertion, client.assertion_algs)
        except ClientKeyError as exc:
            raise InvalidClientError(description=f"The client assertion is not valid: {exc}.") from None
        # Bounded before the jti is remembered: the replay cache keeps each jti only this long.
        exp = token.claims.get("exp")
        if not isinstance(exp, int) or exp - time.time() > MAX_LIFETIME:
            raise InvalidClientError(
                description=f"The client assertion needs 'exp', {MAX_LIFETIME} s ahead at most."
            )
        self.verify_claims(token.claims)
        request.client = client
        return client

    def get_audiences(self) -> list[str]:
        issuer = self.provider.services.issuer
        return [issuer, f"{issuer}/oidc/token", f"{issuer}{flask_request.path}"]

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            return False
        key = hashlib.sha256(f"{claims['sub']}\0{jti}".encode()).hexdigest()
        ttl = max(1, int(claims["exp"] - time.time()) + self.leeway)
        return self.provider.services.kv.set_if_absent(JTI_PREFIX + key, b"1", ttl=ttl)


def register(server: Any, provider: "Provider") -> None:
    for method in JWT_METHODS:
        server.register_client_auth_method(method, ClientAssertion(provider, method))
