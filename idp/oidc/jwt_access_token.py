"""JWT access tokens (RFC 9068) for clients registered with ``access_token_format: jwt``, so that their
resource servers can check a token without calling the IdP.

Such a token is signed with the IdP's OIDC key of the client's ID token algorithm (``typ: at+jwt``, ``kid``
of a key in the JWKS) and carries ``iss``, ``exp``, ``iat``, ``jti``, ``client_id``, ``scope``, ``sub`` (as
the client knows the user, so pairwise where the client is) and ``aud``: the ``resource`` the token request
names (RFC 8707; one of the client's registered audiences), else every registered audience, else the client
id. It is stored like an opaque token (under its hash), so introspection and revocation treat it alike:
revoked, it is inactive at once for every resource server that introspects; one that only checks the
signature trusts it until ``exp``, so keep the access token lifetime short.
"""

from typing import TYPE_CHECKING, Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import g, has_request_context, request
from joserfc.jwk import KeySet

if TYPE_CHECKING:
    from idp.oidc.clients import Client
    from idp.oidc.provider import Provider
    from idp.oidc.tokens import Grant

MAX_RESOURCES = 5


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 2: the requested resource is not one this client's tokens may be for."""

    error = "invalid_target"
    status_code = 400


class JwtAccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, provider: "Provider", alg: str) -> None:
        super().__init__(
            issuer=provider.services.issuer,
            alg=alg,
            expires_generator=lambda _client, _grant_type: provider.access_token_seconds,
        )
        self.provider = provider

    def get_jwks(self) -> KeySet:
        # The active key only: its kid goes into the header, and it is in the published JWKS.
        return KeySet([self.provider.services.keys.active("oidc", self.alg).jose])

    def get_audiences(self, client: "Client", user: Any, scope: str) -> str | list[str]:
        requested = request.form.getlist("resource") if has_request_context() else []
        allowed = client.access_token_audiences
        if requested:
            if len(requested) > MAX_RESOURCES or any(resource not in allowed for resource in requested):
                raise InvalidTargetError(description="This client's tokens are not for that resource.")
            return requested[0] if len(requested) == 1 else requested
        if allowed:
            return allowed[0] if len(allowed) == 1 else allowed
        return client.get_client_id()

    def get_extra_claims(
        self, client: "Client", grant_type: str, user: "Grant | None", scope: str
    ) -> dict[str, Any]:
        claims = self._subject_claims(client, user)
        jkt = _dpop_key()
        if jkt:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 6.1: a resource server checks the proof's key
        return claims

    def _subject_claims(self, client: "Client", user: "Grant | None") -> dict[str, Any]:
        if user is None or user.for_client:
            # RFC 9068 2.2: a client's own token names the client as its subject; say so, so that a
            # resource server never reads a client id as a user id.
            return {"sub": client.get_client_id(), "subject_type": "client"}
        claims: dict[str, Any] = {"sub": self.provider.subject(client, user.user_id), "subject_type": "user"}
        if user.auth_time:
            claims["auth_time"] = user.auth_time
        if user.acr:
            claims["acr"] = user.acr
        if user.amr:
            claims["amr"] = list(user.amr)
        return claims


def _dpop_key() -> str | None:
    """The key of the token request's DPoP proof, which the token endpoint checked (``provider.DPOP_JKT``)."""
    from idp.oidc.provider import DPOP_JKT  # the provider imports this module

    if not has_request_context():
        return None
    jkt = g.get(DPOP_JKT)
    return str(jkt) if jkt else None


class AccessTokenFormats:
    """The server's token generator: opaque tokens, or JWTs for the clients that asked for them."""

    def __init__(self, provider: "Provider", opaque: Any) -> None:
        self.opaque = opaque
        self.jwt = {alg: JwtAccessTokens(provider, alg) for alg in ("ES256", "RS256")}

    def __call__(self, *, grant_type: str, client: "Client", **kwargs: Any) -> dict[str, Any]:
        generator = self.opaque
        if client.access_token_format == "jwt":
            generator = self.jwt[client.id_token_signed_response_alg]
        return generator(grant_type=grant_type, client=client, **kwargs)  # type: ignore[no-any-return]
