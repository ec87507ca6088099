"""ID tokens (OIDC Core 2, 3.1.3.6): the claims and the signature, for the Authlib grants and the token
endpoint's fast path alike, so both issue the same token.

Signed with the IdP's active OIDC key of the client's ``id_token_signed_response_alg`` (ES256 or RS256),
``typ: JWT`` and the key's ``kid``. ``sid`` is there for back-channel logout; ``auth_time``, ``acr`` and
``amr`` are the original login's, refreshed ID tokens included (OIDC Core 12.2); ``at_hash`` binds the
access token issued with it; the other claims are what the scope allows (``Provider.user_info``).
"""

import base64
import hashlib
import time
from typing import TYPE_CHECKING, Any

from joserfc import jwt

if TYPE_CHECKING:
    from idp.oidc.clients import Client
    from idp.oidc.provider import Provider
    from idp.oidc.tokens import Grant


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` (OIDC Core 3.1.3.6): the left half of the hash the signature algorithm uses."""
    digest = hashlib.new("sha512" if alg == "EdDSA" else "sha" + alg[2:], value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def claims(
    provider: "Provider",
    client: "Client",
    grant: "Grant",
    *,
    scope: str,
    access_token: str | None,
    nonce: str | None = None,
) -> dict[str, Any]:
    now = int(time.time())
    issued: dict[str, Any] = {
        "iss": provider.services.issuer,
        "aud": [client.get_client_id()],
        "iat": now,
        "exp": now + provider.id_token_seconds,
        "auth_time": grant.auth_time or now,
    }
    if grant.sid:
        issued["sid"] = grant.sid
    if grant.acr:
        issued["acr"] = grant.acr
    if grant.amr:
        issued["amr"] = list(grant.amr)
    if nonce:
        issued["nonce"] = nonce
    if access_token:
        issued["at_hash"] = half_hash(access_token, client.id_token_signed_response_alg)
    issued.update(provider.user_info(grant.user_id, scope, client))
    return issued


def encode(provider: "Provider", client: "Client", issued: dict[str, Any]) -> str:
    key = provider.services.keys.active("oidc", client.id_token_signed_response_alg)
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, issued, key.jose, [key.alg])
