"""Authlib grant classes for the provider, each small: they only connect Authlib's protocol logic to the
token store and the directory (``Provider`` in ``provider.py`` owns both)."""

import logging
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode

from idp.oidc import id_token
from idp.oidc.client_auth import CLIENT_AUTH_METHODS, CONFIDENTIAL_AUTH_METHODS
from idp.oidc.tokens import AuthorizationCode, Grant, random_token

if TYPE_CHECKING:
    from idp.oidc.provider import Provider

log = logging.getLogger("nextauth.idp.oidc")


class _ProviderAccess:
    """Authlib makes a grant object per request, with the server; the provider hangs off the server."""

    server: Any

    @property
    def provider(self) -> "Provider":
        return self.server.provider  # type: ignore[no-any-return]


class RequiredS256(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only (RFC 9700 2.1.1): a code without its verifier is worthless."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge_method


class AuthorizationCodeGrant(_ProviderAccess, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def generate_authorization_code(self) -> str:
        return random_token()

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: Any) -> str:
        # OpenID requests name their redirect URI even when the client registered only one (OIDC Core
        # 3.1.2.1). Without one there is nowhere checked to send the error to: an error page, not a redirect.
        if "openid" in (request.payload.scope or "").split() and not request.payload.redirect_uri:
            raise InvalidRequestError("OpenID requests must include redirect_uri.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(  # type: ignore[no-any-return]
            request, client
        )

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        grant: Grant = request.user
        self.provider.tokens.save_code(
            code,
            AuthorizationCode(
                grant=Grant(
                    client_id=request.client.get_client_id(),
                    user_id=grant.user_id,
                    scope=request.payload.scope or "",
                    sid=grant.sid,
                    auth_time=grant.auth_time,
                    acr=grant.acr,
                    amr=grant.amr,
                    dpop_jkt=_dpop_jkt_parameter(data.get("dpop_jkt")),
                ),
                redirect_uri=request.payload.redirect_uri or "",
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge", ""),
                code_challenge_method=data.get("code_challenge_method", "S256"),
            ),
        )

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        found = self.provider.tokens.take_code(code)
        if found is None:
            if self.provider.tokens.revoke_exchange_of(code):
                log.warning("an authorization code was used twice; its tokens are revoked")
            return None
        if found.grant.client_id != client.get_client_id():
            log.warning("client %s presented a code issued to another client", client.get_client_id())
            return None
        return found

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: ``take_code`` removed it when it was read."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Grant:
        bound = authorization_code.grant.dpop_jkt
        if bound is not None and bound != getattr(self.request, "dpop_jkt", None):
            raise InvalidGrantError("This code needs a DPoP proof with the key named by dpop_jkt.")
        return authorization_code.grant


class RefreshTokenGrant(_ProviderAccess, grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every use returns a successor

    def authenticate_refresh_token(self, refresh_token: str) -> Any:
        stored = self.provider.tokens.refresh_token(refresh_token)
        if stored is None or stored.is_expired():
            return None
        if stored.revoked_at is not None:
            return None
        bound = stored.grant.dpop_jkt
        if bound is not None and bound != getattr(self.request, "dpop_jkt", None):
            log.info("a DPoP-bound refresh token came without a proof of its key")
            return None
        if stored.used_at is not None or not self.provider.tokens.use_refresh_token(stored):
            # Used before: someone else holds a copy. End the whole family for both of them.
            revoked = self.provider.tokens.revoke_family(stored.family)
            log.warning("a used refresh token came back; %d tokens of its family revoked", revoked)
            return None
        return stored

    def authenticate_user(self, refresh_token: Any) -> Grant:
        return refresh_token.grant  # type: ignore[no-any-return]

    def revoke_old_credential(self, refresh_token: Any) -> None:
        """Already marked used in ``authenticate_refresh_token``, atomically."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS


def _dpop_jkt_parameter(value: Any) -> str | None:
    """The authorize request's dpop_jkt (RFC 9449 10): a base64url SHA-256 thumbprint."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 43:
        raise InvalidRequestError("dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638), base64url.")
    return value


class IdToken(OpenIDCode):  # type: ignore[misc]
    """Signs ID tokens with the key the client asked for (ES256 or RS256), with ``sid`` for back-channel
    logout and the claims the scopes allow."""

    def __init__(self, provider: "Provider") -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        # Replay of a nonce is the client's to detect (it keeps its own); codes are single-use here.
        return False

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        """``idp.oidc.id_token``: the token endpoint's fast path issues the same ID tokens."""
        code: AuthorizationCode | None = request.authorization_code
        issued = id_token.claims(
            self.provider,
            request.client,
            request.user,
            scope=token["scope"],
            access_token=token.get("access_token"),
            nonce=code.get_nonce() if code is not None else None,
        )
        return id_token.encode(self.provider, request.client, issued)

    def on_token_response(self, grant: Any) -> None:
        """As an extension of a grant without an authorization request (CIBA, device): the ID token only."""
        grant.register_hook("after_create_token_response", self.process_token)

    def __call__(self, grant: Any) -> None:
        # Refresh responses carry a new ID token too (OIDC Core 12.2); codes get one through the parent.
        if isinstance(grant, grants.RefreshTokenGrant):
            grant.register_hook("after_create_token_response", self.process_token)
            return
        super().__call__(grant)
