"""Token introspection (RFC 7662) for the one answer resource servers ask for all day, before Flask.

A resource server that introspects checks every request it serves, and nearly every answer is "active:
this user, these scopes". That answer needs no request context, no error pages and no Authlib request
object, so this WSGI middleware gives it straight from the environ: the client authenticated as Authlib
authenticates it (``client_secret_basic`` or ``client_secret_post``, the client's registered method), the
token read from the store as the endpoint reads it (``TokenStore.access_token``, the session and the
permission checked the same way) and the same payload (``introspection_payload``), headers and counters.

Anything else goes on to the Flask view as it came, with the body it read put back: another client
authentication method, a refresh token or a hint for one, a token that is unknown, expired, revoked or not
this client's to see (``active: false``), a bad request, a browser's request (``Origin`` or fetch metadata:
the cross-site rule decides those), a body that is not plain form pairs. So every refusal, log line and
rate limit stays where it is, and this path can only ever say yes to what the view would say yes to.
"""

from typing import TYPE_CHECKING, Any

from idp.metrics import OIDC_REQUESTS
from idp.oidc.fast_post import FormPost, secret_client
from idp.oidc.tokens import AccessToken

if TYPE_CHECKING:
    from idp.oidc.provider import Provider


class FastIntrospection(FormPost):
    PATH = "/oidc/introspect"
    FIELDS = frozenset({"token", "token_type_hint", "client_id", "client_secret"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outcome = OIDC_REQUESTS.labels("introspect", "ok")

    def counted(self) -> None:
        self._outcome.inc()

    def answer(self, environ: dict[str, Any], form: dict[str, str]) -> dict[str, Any] | None:
        if "token" not in form:
            return None
        if form.get("token_type_hint", "access_token") != "access_token":
            return None  # refresh tokens live in the database: the view looks there
        provider = self.provider
        client = secret_client(provider, environ.get("HTTP_AUTHORIZATION"), form)
        if client is None:
            return None
        token = provider.tokens.access_token(form["token"])
        if token is None or token.is_expired() or not provider.session_active(token.grant):
            return None
        if not (token.check_client(client) or client.check_grant_type("client_credentials")):
            return None
        return introspection_payload(provider, token)


def introspection_payload(provider: "Provider", token: Any) -> dict[str, Any]:
    """What an active token's introspection says (RFC 7662 2.2, RFC 9449 6.2 for ``cnf``)."""
    grant = token.grant
    payload: dict[str, Any] = {
        "active": True,
        "client_id": grant.client_id,
        "scope": grant.scope,
        "iss": provider.services.issuer,
        # Whom the token speaks for. A client's own token has no ``sub``: user ids are the only subjects.
        "subject_type": "client" if grant.for_client else "user",
    }
    if not grant.for_client:
        payload["sub"] = provider.subject(grant.client_id, grant.user_id)
    if isinstance(token, AccessToken):
        token_type = "DPoP" if grant.dpop_jkt else "Bearer"
        payload.update(token_type=token_type, iat=token.issued_at, exp=token.expires_at)
    else:
        payload.update(token_type="refresh_token", exp=int(token.expires_at.timestamp()))
    if grant.dpop_jkt:
        payload["cnf"] = {"jkt": grant.dpop_jkt}
    if grant.sid:
        payload["sid"] = grant.sid
    return payload
