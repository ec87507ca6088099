"""What the IdP counts for an operator: OIDC requests, token grants, SAML SSO and SLO, forward-auth.

One ``after_request`` hook reads what every answer was from the Flask endpoint that made it and its status,
so the protocol code stays free of counting and no answer is missed, error pages included. Every label
value comes from a fixed list (``authserver.metrics.bounded``): the endpoint names are the code's, the grant
type one of those the IdP offers; what a client sends never becomes a new time series.

Served on the IdP's admin port (``idp.admin``), never on its public one. The list with meanings is in
docs/configuration.md ("The IdP's admin port").
"""

import json
from urllib.parse import parse_qs, urlsplit

from flask import Flask, Response, request
from prometheus_client import Counter

from authserver.metrics import OTHER, bounded, instrument_flask

OIDC_ENDPOINTS = (
    "discovery", "jwks", "authorize", "token", "pushed_authorization_request", "userinfo", "introspect",
    "revoke", "end_session", "backchannel_authentication", "device_authorization", "device", "device_confirm",
)  # fmt: skip
OIDC_OUTCOMES = ("ok", "login", "refused", "error")
GRANT_TYPES = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code": "device_code",
    "urn:openid:params:grant-type:ciba": "ciba",
}
GRANT_OUTCOMES = ("issued", "pending", "refused", "error")
SAML_PROFILES = ("sso", "slo")
SAML_OUTCOMES = ("answered", "login", "refused", "error")
FORWARD_AUTH_DECISIONS = ("allowed", "login", "denied", "refused", "error")

OIDC_REQUESTS = Counter(
    "nextauth_idp_oidc_requests_total",
    "OIDC requests at the IdP by endpoint and outcome",
    ["endpoint", "outcome"],
)
TOKEN_GRANTS = Counter(
    "nextauth_idp_token_grants_total",
    "Token requests at the IdP by grant type and outcome",
    ["grant_type", "outcome"],
)
SAML_REQUESTS = Counter(
    "nextauth_idp_saml_requests_total",
    "SAML requests at the IdP by profile and outcome",
    ["profile", "outcome"],
)
FORWARD_AUTH = Counter("nextauth_idp_forward_auth_total", "Forward-auth decisions at the IdP", ["decision"])

# Device and CIBA clients poll the token endpoint until the person has approved: not a refusal.
_PENDING_ERRORS = ("authorization_pending", "slow_down")


def _sends_to_login(response: Response) -> bool:
    return urlsplit(response.location or "").path.endswith("/login")


def _redirects_with_error(response: Response) -> bool:
    location = urlsplit(response.location or "")
    return "error" in parse_qs(location.query) or "error" in parse_qs(location.fragment)


def _error_code(response: Response) -> str:
    if not response.is_json or response.direct_passthrough:
        return ""
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return ""
    return body.get("error", "") if isinstance(body, dict) else ""


def oidc_outcome(response: Response) -> str:
    status = response.status_code
    if status >= 500:
        return "error"
    if status >= 400:
        return "refused"
    if 300 <= status < 400:
        if _redirects_with_error(response):
            return "refused"  # the authorization endpoint answers an error by sending the browser back
        if _sends_to_login(response):
            return "login"
    return "ok"


def grant_outcome(response: Response) -> str:
    status = response.status_code
    if status >= 500:
        return "error"
    if status >= 400:
        return "pending" if _error_code(response) in _PENDING_ERRORS else "refused"
    return "issued"


def grant_type_label(value: object) -> str:
    return GRANT_TYPES.get(value, OTHER) if isinstance(value, str) else OTHER


def saml_outcome(endpoint: str, status: int) -> str | None:
    """None for the SP's request accepted and handed on to ``sso/continue``, counted when answered there."""
    if status >= 500:
        return "error"
    if status >= 400:
        return "refused"
    if endpoint in ("sso_redirect", "sso_post"):
        return None
    if endpoint == "sso_continue" and 300 <= status < 400:
        return "login"
    return "answered"


def forward_auth_decision(status: int) -> str:
    # What views.py answers: 200 let through, 302 (browser) or 401 (API client) log in first,
    # 403 the rule keeps this user out, 400 the proxy's request could not be trusted or read.
    return {200: "allowed", 302: "login", 401: "login", 403: "denied", 400: "refused"}.get(status, "error")


def count(endpoint: str | None, response: Response) -> None:
    blueprint, _, name = (endpoint or "").partition(".")
    if blueprint in ("oidc", "oidc_decoupled"):
        OIDC_REQUESTS.labels(bounded(name, OIDC_ENDPOINTS), oidc_outcome(response)).inc()
        if name == "token":
            grant = grant_type_label(request.form.get("grant_type"))
            TOKEN_GRANTS.labels(grant, grant_outcome(response)).inc()
    elif blueprint == "saml" and name.startswith(("sso_", "slo_")):
        outcome = saml_outcome(name, response.status_code)
        if outcome is not None:
            SAML_REQUESTS.labels(name[:3], bounded(outcome, SAML_OUTCOMES, "error")).inc()
    elif blueprint == "forward_auth" and name in ("forward", "nginx"):
        FORWARD_AUTH.labels(forward_auth_decision(response.status_code)).inc()


def instrument(app: Flask) -> Flask:
    """Count the protocol answers above, and every request by route template (``nextauth_rest_*``)."""

    def counted(response: Response) -> Response:
        count(request.endpoint, response)
        return response

    app.after_request(counted)
    return instrument_flask(app, "idp")
