"""The authorization-code exchange (RFC 6749 4.1.3, OIDC Core 3.1.3) for the request every relying party
sends after every login, before Flask and Authlib.

It answers one request exactly: ``grant_type=authorization_code`` with ``code``, ``redirect_uri`` and a
well-formed ``code_verifier``, no DPoP proof, from a confidential client that authenticates with the secret
method it registered (``client_secret_basic`` or ``client_secret_post``), may use this grant and gets opaque
access tokens. The code is taken only if it is one the view would redeem, in one step with the store
(``TokenStore.take_code_if``): issued to this client, the same redirect URI, the S256 challenge of the
PKCE verifier, not bound to a DPoP key, its scope still within the client's. Otherwise it stays in place
for the view. Taken, it is checked again here the way the view checks it (the challenge compared in
constant time), so it works once whichever path sees it first; and the tokens are issued as the view
issues them (``Provider.save_token``): the access token, a refresh token when the client may use
them, what the code was exchanged for (a second use of the code revokes it), the ID token of
``idp.oidc.id_token``, the log line and the counters.

Anything else goes on to the Flask view, which answers it as before: any refusal (a wrong verifier, another
client's code, a used or unknown code: the view takes and uses it up, as it always did), public clients,
private_key_jwt, DPoP, JWT access tokens, refresh and other grants, browsers' requests (CORS).
"""

import base64
import dataclasses
import hashlib
import hmac
import logging
import re
from typing import Any

from authserver.outage import describe, is_outage
from idp.metrics import OIDC_REQUESTS, TOKEN_GRANTS
from idp.oidc import id_token
from idp.oidc.clients import Client
from idp.oidc.fast_post import FormPost, secret_client
from idp.oidc.tokens import AuthorizationCode, random_token

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
        taken = provider.tokens.take_code_if(
            code,
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            code_challenge=_s256(verifier),
            allowed_scope=client.allowed_scope,
        )
        if taken is None:
            # Unknown, used, or not this request's to redeem: the view answers, finding the code as it was
            # (gone: it answers as for any used code, revoking what it was exchanged for).
            return None
        if not redeemable(taken, client, redirect_uri, verifier):  # the store's check and ours disagree
            log.error("a code the store let %s take fails the exchange's checks; refused", client.client_id)
            return None
        try:
            return self._issue(client, taken)
        except Exception as exc:
            # The code is used up: the view will only find it gone and refuse it (invalid_grant), so the
            # reason is said here, where it is known. The client starts the login again.
            log.warning(
                "tokens for a code of %s could not be issued (%s); the code is used up",
                client.client_id,
                describe(exc) if is_outage(exc) else type(exc).__name__,
                exc_info=not is_outage(exc),
            )
            raise

    def _issue(self, client: Client, code: AuthorizationCode) -> dict[str, Any]:
        provider = self.provider
        tokens = provider.tokens
        grant = dataclasses.replace(code.grant, client_id=client.client_id)
        access_token = random_token()
        expires_in = provider.access_token_seconds
        answer: dict[str, Any] = {"token_type": "Bearer", "access_token": access_token}
        answer["expires_in"] = expires_in
        if grant.scope:
            answer["scope"] = grant.scope
        family = None
        if client.check_grant_type("refresh_token"):
            answer["refresh_token"], family = tokens.issue_refresh_token(grant)
        tokens.save_access_token(access_token, grant, expires_in, family, exchanged_code=code.code_hash)
        log.info("tokens issued to %s for %s (authorization_code)", client.client_id, grant.user_id)
        if "openid" in grant.scope.split():
            issued = id_token.claims(
                provider, client, grant, scope=grant.scope, access_token=access_token, nonce=code.nonce
            )
            answer["id_token"] = id_token.encode(provider, client, issued)
        return answer
