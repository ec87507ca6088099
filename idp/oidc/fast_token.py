"""The authorization-code exchange (RFC 6749 4.1.3, OIDC Core 3.1.3) for the request every relying party
sends after every login, before Flask and Authlib.

It answers one request exactly: ``grant_type=authorization_code`` with ``code``, ``redirect_uri`` and a
well-formed ``code_verifier``, no DPoP proof, from a confidential client that authenticates with the secret
method it registered (``client_secret_basic`` or ``client_secret_post``), may use this grant and gets opaque
access tokens. The code is taken only if it is one the view would redeem, in one step with the store
(``TokenStore.take_code_if``): issued to this client, the same redirect URI, the S256 challenge of the
PKCE verifier, not bound to a DPoP key, its scope still within the client's. Otherwise it stays in place
for the view. The access token, the refresh token family (when the client may use refresh tokens) and
what the code was exchanged for (a second use of the code revokes it) are stored in the same step. Taken,
the code is checked again here the way the view checks it (the challenge compared in constant time), so
it works once whichever path sees it first; and the answer is what the view gives
(``Provider.save_token``): the access token, the refresh token, the ID token of ``idp.oidc.id_token``,
the log line and the counters.

Anything else goes on to the Flask view, which answers it as before: any refusal (a wrong verifier, another
client's code, a used or unknown code: the view takes and uses it up, as it always did), public clients,
private_key_jwt, DPoP, JWT access tokens, refresh and other grants, browsers' requests (CORS).
"""

import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Any

from authserver.outage import describe, is_outage
from idp.metrics import OIDC_REQUESTS, TOKEN_GRANTS
from idp.oidc import id_token
from idp.oidc.clients import Client
from idp.oidc.fast_post import FormPost, secret_client
from idp.oidc.tokens import AuthorizationCode, Exchange, random_token, token_hash

log = logging.getLogger("nextauth.idp.oidc")

# RFC 7636 4.1: 43 to 128 unreserved characters.
CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def redeemable(code: AuthorizationCode, client: Client, redirect_uri: str, verifier: str) -> bool:
    """What the view checks of a code before it issues tokens for it, all of it."""
    return (
        code.grant.client_id == client.client_id
        and code.redirect_uri == redirect_uri
        and code.code_challenge_method == "S256"
        and bool(code.code_challenge)
        and hmac.compare_digest(_s256(verifier), code.code_challenge)
        and code.grant.dpop_jkt is None
        and client.get_allowed_scope(code.grant.scope) == code.grant.scope
    )


class FastCodeExchange(FormPost):
    PATH = "/oidc/token"
    FIELDS = frozenset({"grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret"})
    ENDPOINT_HEADERS = (("Vary", "Origin"),)  # the OIDC blueprint's CORS hook adds it to every answer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outcomes = (
            OIDC_REQUESTS.labels("token", "ok"),
            TOKEN_GRANTS.labels("authorization_code", "issued"),
        )

    def counted(self) -> None:
        for counter in self._outcomes:
            counter.inc()

    def answer(self, environ: dict[str, Any], form: dict[str, str]) -> dict[str, Any] | None:
        if environ.get("HTTP_DPOP") is not None or form.get("grant_type") != "authorization_code":
            return None
        code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
        if not code or not redirect_uri or not verifier or not CODE_VERIFIER.fullmatch(verifier):
            return None
        provider = self.provider
        client = secret_client(provider, environ.get("HTTP_AUTHORIZATION"), form)
        if client is None or client.access_token_format != "opaque":
            return None
        if not client.check_grant_type("authorization_code"):
            return None
        # The access token (and the refresh token family) the code is exchanged for are stored in the step
        # that takes the code: the exchange costs the store one round trip.
        access_token = random_token()
        exchange = Exchange(
            access_digest=token_hash(access_token),
            issued_at=int(time.time()),
            expires_in=provider.access_token_seconds,
            family=secrets.token_hex(16) if client.check_grant_type("refresh_token") else None,
        )
        taken = provider.tokens.take_code_if(
            code,
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            code_challenge=_s256(verifier),
            allowed_scope=client.allowed_scope,
            exchange=exchange,
        )
        if taken is None:
            # Unknown, used, or not this request's to redeem: the view answers, finding the code as it was
            # (gone: it answers as for any used code, revoking what it was exchanged for).
            return None
        if not redeemable(taken, client, redirect_uri, verifier):  # the store's check and ours disagree
            provider.tokens.revoke_access_token(access_token)
            log.error("a code the store let %s take fails the exchange's checks; refused", client.client_id)
            return None
        try:
            return self._issue(client, taken, access_token, exchange)
        except Exception as exc:
            # The code is used up: the view will only find it gone and refuse it (invalid_grant), so the
            # reason is said here, where it is known. The client starts the login again. The access token
            # stored with the take was never handed out; it goes if the store lets it.
            with contextlib.suppress(Exception):
                provider.tokens.revoke_access_token(access_token)
            log.warning(
                "tokens for a code of %s could not be issued (%s); the code is used up",
                client.client_id,
                describe(exc) if is_outage(exc) else type(exc).__name__,
                exc_info=not is_outage(exc),
            )
            raise

    def _issue(
        self, client: Client, code: AuthorizationCode, access_token: str, exchange: Exchange
    ) -> dict[str, Any]:
        """The answer for a code taken with ``exchange`` stored: the refresh token of its family, the ID
        token."""
        provider = self.provider
        grant = code.grant  # the access token's, stored with the take (its client is this one: redeemable)
        answer: dict[str, Any] = {"token_type": "Bearer", "access_token": access_token}
        answer["expires_in"] = exchange.expires_in
        if grant.scope:
            answer["scope"] = grant.scope
        if exchange.family is not None:
            answer["refresh_token"], _family = provider.tokens.issue_refresh_token(grant, exchange.family)
        log.info("tokens issued to %s for %s (authorization_code)", client.client_id, grant.user_id)
        if "openid" in grant.scope.split():
            issued = id_token.claims(
                provider, client, grant, scope=grant.scope, access_token=access_token, nonce=code.nonce
            )
            answer["id_token"] = id_token.encode(provider, client, issued)
        return answer
