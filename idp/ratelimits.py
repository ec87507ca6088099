"""The IdP's rate limits (``NEXTAUTH_IDP_RATE_LIMIT_*``): what each costs an attacker, and the 429 page.

``login`` counts GET /login per client address: each anonymous visit makes ns open a session and the IdP
draw a QR. ``push_browser``, ``push_user`` and ``push_client`` count POST /login/push per browser, per
user named and per client address, so nobody can wear a person down with requests on their phone.
``saml_signatures`` counts SAML signatures that did not verify, per client address; once used up, signed
requests from there are refused before the (costly) check. ``ciba_client`` and ``ciba_user`` count OIDC
CIBA requests per client and per user named (known or not: the answer is the same), each a push to a
phone. ``device_user_code`` counts device user codes entered per client address, so nobody guesses one.
``enrol`` counts the invite pages (``/enrol/...``, each view and each code typed) per client address: each
costs a lookup at ns, and nobody should try tokens or codes in bulk.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from flask import request
from werkzeug.exceptions import TooManyRequests

from authserver.config import Network
from authserver.ratelimit import RateLimited, RateLimiter, Rule, client_ip, parse_rule, rule_setting

DEFAULTS = {
    "login": "300/minute",
    "push_browser": "3/minute",
    "push_user": "5 per 5 minutes",
    "push_client": "30/minute",
    "saml_signatures": "20/minute",
    "admin_api_failures": "10/minute",
    "ciba_client": "60/minute",
    "ciba_user": "5 per 5 minutes",
    "device_user_code": "10/minute",
    "enrol": "30/minute",
    # Wrong client credentials at the OIDC endpoints that authenticate clients (idp.oidc.client_budget).
    "client_auth_failures": "30/minute",
}


def _variable(name: str) -> str:
    return f"NEXTAUTH_IDP_RATE_LIMIT_{name.upper()}"


def rate_limit_variables() -> list[str]:
    return [_variable(name) for name in DEFAULTS]


def rules_from(environ: Mapping[str, str]) -> dict[str, Rule]:
    return {name: rule_setting(environ, _variable(name), name, default) for name, default in DEFAULTS.items()}


def default_rules() -> dict[str, Rule]:
    return {name: parse_rule(name, name, default) for name, default in DEFAULTS.items()}


@dataclass
class IdpLimits:
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter.for_store("idp", None))
    rules: dict[str, Rule] = field(default_factory=default_rules)
    trusted_proxies: tuple[Network, ...] = ()

    def client(self) -> str:
        """The address of the browser of the current request (X-Forwarded-For from trusted proxies)."""
        return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), self.trusted_proxies)

    def client_of(self, environ: Mapping[str, Any]) -> str:
        """``client`` for a WSGI environ, outside Flask (the fast paths)."""
        forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
        return client_ip(environ.get("REMOTE_ADDR"), forwarded_for, self.trusted_proxies)


def refuse(exc: RateLimited, message: str) -> NoReturn:
    """Answer 429 with Retry-After; the IdP's handler for 429 shows ``message`` on its error page."""
    raise TooManyRequests(description=message, retry_after=exc.retry_after) from exc
