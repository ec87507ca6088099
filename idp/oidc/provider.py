"""The OIDC provider: Authlib's authorization server wired to our clients, tokens and directory, with
the endpoints Authlib implements (introspection, revocation, userinfo, RP-initiated logout)."""

import dataclasses
import logging
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import g
from flask import request as flask_request
from joserfc.jwk import KeySet

from idp.context import IdpServices
from idp.oidc import ciba, client_auth, client_budget, device, grants
from idp.oidc.client_auth import CLIENT_AUTH_METHODS, CONFIDENTIAL_AUTH_METHODS
from idp.oidc.client_keys import ClientKeys
from idp.oidc.clients import SCOPES, Client, ClientRegistry
from idp.oidc.consents import revoke_consent
from idp.oidc.dpop import DPoP, DPoPError, header_value
from idp.oidc.fast_introspection import introspection_payload
from idp.oidc.jar import AuthorizationRequests
from idp.oidc.jwt_access_token import AccessTokenFormats
from idp.oidc.pairwise import subject_for
from idp.oidc.par import PushedRequests
from idp.oidc.tokens import AccessToken, Grant, StoredRefreshToken, TokenStore, random_token

log = logging.getLogger("nextauth.idp.oidc")
DPOP_JKT = "nextauth_dpop_jkt"  # flask.g: the key of the token request's DPoP proof
DPOP_USED = "nextauth_dpop_used"  # flask.g: answer with the current DPoP nonce


class Provider:
    def __init__(
        self,
        services: IdpServices,
        *,
        access_token_seconds: int = 900,
        id_token_seconds: int = 600,
        clients: ClientRegistry | None = None,
        require_par: bool = False,
    ) -> None:
        self.services = services
        self.clients = clients or ClientRegistry(services.engine)
        self.client_keys = ClientKeys()
        self.pushed = PushedRequests(self)
        self.dpop = DPoP(services.kv)
        self.require_par = require_par  # every client must push its authorization requests (RFC 9126 5)
        self.tokens = TokenStore(services.engine, services.kv, access_token_seconds=access_token_seconds)
        self.recorded_logins: set[tuple[str, str]] = set()  # idp.oidc.backchannel.record_login
        self.access_token_seconds = access_token_seconds
        self.id_token_seconds = id_token_seconds
        self.client_failures = client_budget.budget(services.limits)
        self.server = _Server(self)
        self.resource_protector = ResourceProtector()
        self.resource_protector.register_token_validator(_AccessTokenValidator(self))
        self.resource_protector.register_token_validator(_DPoPTokenValidator(self))
        self.server.register_endpoint(_UserInfo(self.server, resource_protector=self.resource_protector))

    def subject(self, client: Client | str | None, user_id: str) -> str:
        """The ``sub`` a client knows a user by: the user id, or a pairwise one (``idp.oidc.pairwise``)."""
        if isinstance(client, str):
            client = self.clients.get(client)
        return subject_for(self.services.pairwise_secret, client, user_id)

    def user_info(self, user_id: str, scope: str, client: Client | str | None = None) -> UserInfo:
        """Claims about a user that the scopes allow (``sub`` always, as ``client`` knows the user)."""
        scopes = set(scope.split())
        info = UserInfo(sub=self.subject(client, user_id))
        profile = self.services.directory.get(user_id)
        if "profile" in scopes:
            info["preferred_username"] = user_id
            if profile.name:
                info["name"] = profile.name
        if "email" in scopes and profile.email:
            info["email"] = profile.email
            info["email_verified"] = profile.email_verified
        if "groups" in scopes:
            info["groups"] = list(profile.groups)
        return info

    def revoke_consent(self, user_id: str, client_id: str) -> dict[str, Any]:
        """``idp.oidc.consents.revoke_consent`` with this IdP's store, token lifetime and memory of access
        tokens (which forgets the client's tokens here at once, and in other processes by pub/sub)."""
        services = self.services
        return revoke_consent(
            services.engine,
            user_id,
            client_id,
            services.kv,
            access_token_seconds=self.access_token_seconds,
            memo=self.tokens.memo,
        )

    def session_active(self, grant: Grant) -> bool:
        """Tokens tied to a browser session stop working when it ends (offline access excepted)."""
        if grant.sid is None or "offline_access" in grant.scope.split():
            return True
        return not self.services.sessions.is_ended(grant.sid)

    def server_jwks(self) -> KeySet:
        return KeySet([key.jose for key in self.services.keys.published("oidc")])


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider
        self.scopes_supported = list(SCOPES)
        opaque = self.create_bearer_token_generator(
            {
                "OAUTH2_ACCESS_TOKEN_GENERATOR": random_token,
                # Refresh tokens come from the token store (hashed, rotated), not from the generator.
                "OAUTH2_REFRESH_TOKEN_GENERATOR": False,
                "OAUTH2_TOKEN_EXPIRES_IN": {
                    "authorization_code": provider.access_token_seconds,
                    "refresh_token": provider.access_token_seconds,
                    "client_credentials": provider.access_token_seconds,
                    ciba.GRANT_TYPE: provider.access_token_seconds,
                    device.GRANT_TYPE: provider.access_token_seconds,
                },
            }
        )
        self.register_token_generator("default", AccessTokenFormats(provider, opaque))
        id_token = grants.IdToken(provider)
        self.register_grant(grants.AuthorizationCodeGrant, [grants.RequiredS256(required=True), id_token])
        self.register_grant(grants.RefreshTokenGrant, [id_token])
        self.register_grant(grants.ClientCredentialsGrant)
        client_auth.register(self, provider)
        self.register_extension(AuthorizationRequests(provider))
        # The decoupled flows: the phone approves what another device asked for (an ID token with openid).
        self.register_grant(ciba.CibaGrant, [id_token.on_token_response])
        self.register_grant(device.DeviceGrant, [id_token.on_token_response])
        self.register_endpoint(device.DeviceAuthorization)
        self.register_endpoint(_Introspection)
        self.register_endpoint(_Revocation)
        self.register_endpoint(_EndSession)

    def query_client(self, client_id: str) -> Client | None:
        return self.provider.clients.get(client_id)

    def authenticate_client(self, request: Any, methods: list[str], endpoint: str = "token") -> Any:
        """Every endpoint's client authentication, within the address's budget of wrong credentials."""
        provider = self.provider
        return client_budget.authenticate(
            provider.client_failures,
            provider.services.limits.client(),
            endpoint,
            lambda: super(_Server, self).authenticate_client(request, methods, endpoint),
        )

    def create_oauth2_request(self, request: Any) -> Any:
        oauth_request = super().create_oauth2_request(request)
        # The token endpoint's view checked the request's DPoP proof (if any); its key binds the tokens.
        oauth_request.dpop_jkt = g.get(DPOP_JKT)
        return oauth_request

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        tokens = self.provider.tokens
        client: Client = request.client
        scope = token.get("scope", "")
        user: Grant | None = request.user
        jkt: str | None = getattr(request, "dpop_jkt", None)
        if user is None:  # client credentials: the client acts for itself, for no user
            grant = Grant(client_id=client.client_id, user_id="", scope=scope, for_client=True, dpop_jkt=jkt)
        else:
            grant = dataclasses.replace(user, client_id=client.client_id, scope=scope, dpop_jkt=jkt)
        if jkt is not None:
            token["token_type"] = "DPoP"
        family = None
        grant_type = request.payload.grant_type
        if user is not None and client.check_grant_type("refresh_token"):
            previous: StoredRefreshToken | None = request.refresh_token
            # A public client's refresh token is bound to its DPoP key too; a confidential client's is
            # bound by the client's own authentication (RFC 9449 5).
            refresh_grant = grant if client.is_public else dataclasses.replace(grant, dpop_jkt=None)
            value, family = tokens.issue_refresh_token(refresh_grant, previous.family if previous else None)
            token["refresh_token"] = value
        code = request.authorization_code if grant_type == "authorization_code" else None
        tokens.save_access_token(
            token["access_token"],
            grant,
            int(token["expires_in"]),
            family,
            exchanged_code=code.code_hash if code is not None else None,
        )
        log.info("tokens issued to %s for %s (%s)", client.client_id, grant.user_id or "itself", grant_type)


class _AccessTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string: str) -> AccessToken | None:
        token = self.provider.tokens.access_token(token_string)
        if token is None:
            return None
        client = self.provider.clients.get(token.grant.client_id)
        if client is None:
            return None
        revoked = not self.provider.session_active(token.grant)
        return _BoundAccessToken(
            token.grant,
            token.issued_at,
            token.expires_at,
            token.refresh_family,
            revoked,
            client,
            token_string,
        )

    def validate_token(self, token: Any, scopes: Any, request: Any) -> None:
        super().validate_token(token, scopes, request)
        if token.grant.dpop_jkt is not None:
            # Bound to a key: as a bearer token it is worthless (RFC 9449 7.2).
            raise DPoPError(
                "invalid_token",
                "This access token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof.",
                resource=True,
            )
        self._for_a_user(token)

    def _for_a_user(self, token: Any) -> None:
        # These tokens open userinfo, which speaks for a user: a client's own token has none.
        if token.grant.for_client:
            raise InvalidTokenError(
                description="A client-credentials token names no user; userinfo needs a user's token.",
                realm=self.realm,
                extra_attributes=self.extra_attributes,
            )


class _DPoPTokenValidator(_AccessTokenValidator):
    """``Authorization: DPoP <token>`` with a ``DPoP`` proof of the token's key, for this request."""

    TOKEN_TYPE = "dpop"

    def validate_token(self, token: Any, scopes: Any, request: Any) -> None:
        BearerTokenValidator.validate_token(self, token, scopes, request)
        dpop = self.provider.dpop
        if token.grant.dpop_jkt is None:
            raise DPoPError(
                "invalid_token", "This access token is not DPoP-bound: send it as Bearer.", resource=True
            )
        url = f"{self.provider.services.issuer}{flask_request.path}"
        jkt = dpop.verify(
            header_value(request.headers), request.method, url, access_token=token.value, resource=True
        )
        if jkt != token.grant.dpop_jkt:
            raise DPoPError(
                "invalid_token", "The DPoP proof is signed by another key than the token's.", resource=True
            )
        g.setdefault(DPOP_USED, True)
        self._for_a_user(token)


@dataclasses.dataclass(frozen=True)
class _BoundAccessToken(AccessToken):
    client: Any = None
    value: str = dataclasses.field(default="", repr=False)

    def get_client(self) -> Any:
        return self.client


class _UserInfo(UserInfoEndpoint):  # type: ignore[misc]
    def get_issuer(self) -> str:
        return self.server.provider.services.issuer  # type: ignore[no-any-return]

    def generate_user_info(self, user: Grant, scope: str) -> UserInfo:
        return self.server.provider.user_info(user.user_id, scope, user.client_id)

    def resolve_private_key(self) -> Any:
        return None


class _TokenLookup:
    """Both access and refresh tokens, whatever the hint says (RFC 7009 2.1, RFC 7662 2.1)."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: Any

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        provider: Provider = self.server.provider
        order = (
            ("refresh_token", "access_token")
            if token_type_hint == "refresh_token"
            else ("access_token", "refresh_token")
        )
        for kind in order:
            if kind == "access_token":
                token = provider.tokens.access_token(token_string)
                if token is not None:
                    revoked = not provider.session_active(token.grant)
                    return dataclasses.replace(token, revoked=revoked)
            else:
                stored = provider.tokens.refresh_token(token_string)
                if stored is not None:
                    return stored
        return None


class _Introspection(_TokenLookup, IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def check_permission(self, token: Any, client: Client, request: Any) -> bool:
        # A token's own client, or a service client (a resource server holding client credentials).
        return token.check_client(client) or client.check_grant_type("client_credentials")

    def introspect_token(self, token: Any) -> dict[str, Any]:
        return introspection_payload(self.server.provider, token)


class _Revocation(_TokenLookup, RevocationEndpoint):  # type: ignore[misc]
    def revoke_token(self, token: Any, request: Any) -> None:
        provider: Provider = self.server.provider
        if isinstance(token, StoredRefreshToken):
            provider.tokens.revoke_family(token.family)
        else:
            provider.tokens.revoke_access_token(request.form["token"])
            if token.refresh_family:
                provider.tokens.revoke_family(token.refresh_family)


class _EndSession(EndSessionEndpoint):  # type: ignore[misc]
    def get_server_jwks(self) -> KeySet:
        return self.server.provider.server_jwks()  # type: ignore[no-any-return]

    def resolve_client_from_id_token_claims(self, id_token_claims: dict[str, Any]) -> Any:
        # Our ID tokens name one audience, as a one-element list.
        audience = id_token_claims.get("aud")
        if isinstance(audience, list) and len(audience) == 1:
            audience = audience[0]
        return self.server.query_client(audience) if isinstance(audience, str) else None

    def end_session(self, end_session_request: Any) -> None:
        """The browser's session ends in the blueprint, which holds its cookie; nothing more here."""
