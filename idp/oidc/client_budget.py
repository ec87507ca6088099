"""A budget of wrong client credentials per client address, at every endpoint that authenticates OIDC
clients: token, introspection, revocation, PAR, CIBA and device authorization
(``NEXTAUTH_IDP_RATE_LIMIT_CLIENT_AUTH_FAILURES``, 30 a minute by default).

Every such endpoint authenticates through ``server.authenticate_client``; ``authenticate`` wraps it. A
client secret is 256 random bits and cannot be guessed, but a secret a client chose, a leaked list of
client ids or a flood of wrong assertions can be tried: past the budget, that address is answered 429 with
Retry-After before any credential is looked at, a right one included (or guessing would go on). The budget
is kept as ns keeps its budget of wrong API keys (``authserver.ratelimit.FailureBudget``): in the shared
store, asked at most once a second for an address whose credentials were right.
"""

import logging
from collections.abc import Callable
from typing import TypeVar

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError

from authserver.ratelimit import FailureBudget, RateLimited
from idp.ratelimits import IdpLimits

RULE = "client_auth_failures"
T = TypeVar("T")

log = logging.getLogger("nextauth.security")


class TooManyClientFailures(OAuth2Error):  # type: ignore[misc]
    """429 with Retry-After. RFC 6749 names no error for it; ``temporarily_unavailable`` is its error
    for a server that cannot take the request for now."""

    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            description="Too many wrong client credentials from this address; wait before trying again."
        )
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


def budget(limits: IdpLimits) -> FailureBudget:
    return FailureBudget(limits.limiter, limits.rules[RULE], "wrong client credentials")


def authenticate(
    failures: FailureBudget, client: str, endpoint: str, authenticate_client: Callable[[], T]
) -> T:
    """``authenticate_client()`` for a request from the address ``client``, within its budget; each
    refusal is logged (the reason Authlib gives, never a credential)."""
    try:
        failures.check(client)
    except RateLimited as exc:
        raise TooManyClientFailures(exc.retry_after) from exc
    try:
        return authenticate_client()
    except InvalidClientError as exc:
        log.warning(
            "OIDC client authentication refused at the %s endpoint from client %s: %s",
            endpoint,
            client or "?",
            exc.description or exc.error,
        )
        failures.failed(client)
        raise
