"""State-changing requests to the IdP come from the IdP's own pages.

SameSite=Lax keeps the session cookie off cross-site POSTs in current browsers, but not in every browser
nor for a sibling subdomain (same site, other origin). Browsers say where a request comes from in ``Origin``
and ``Sec-Fetch-Site``; a form posted from anywhere else is refused before it can log someone out, complete
a login or send a push. Requests without either header pass: they come from non-browser clients (which send
only the cookies they were given) or from old browsers, where SameSite and the forms' own checks remain.

Protocol endpoints that other sites call by design are exempt: the OAuth back-end endpoints (clients call
them, with their own credentials), OIDC authorization and RP-initiated logout (an RP may POST them; logout
asks the user unless its ID token hint names the browser's own session), SAML bindings (an SP's page posts
them).
"""

import logging
from urllib.parse import urlsplit

from flask import render_template, request
from flask.typing import ResponseReturnValue

from idp.context import services
from idp.i18n import N_

log = logging.getLogger("nextauth.security")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE_ENDPOINTS = frozenset(
    {
        "oidc.token",
        "oidc.userinfo",
        "oidc.introspect",
        "oidc.revoke",
        "oidc.authorize",
        "oidc.end_session",
        "oidc_decoupled.backchannel_authentication",  # CIBA clients, with their own credentials
        "oidc_decoupled.device_authorization",
        "saml.sso_post",
        "saml.slo_post",
    }
)


def from_another_site() -> bool:
    """True if the browser says this request comes from a page that is not the IdP's.

    ``Sec-Fetch-Site`` decides where the browser sends it: it is exact, and unlike ``Origin`` it does not
    turn into ``null`` under the IdP's own ``Referrer-Policy: no-referrer`` (Chromium sends ``Origin: null``
    with the IdP's own forms then). Browsers without fetch metadata are judged by ``Origin``."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return False
    # The host as browsers address the IdP (its public URL, or the Host they sent); the scheme may differ
    # behind a TLS-terminating proxy.
    host = urlsplit(origin).netloc.lower()
    return host not in {urlsplit(services().issuer).netloc.lower(), request.host.lower()}


def refuse_cross_site() -> ResponseReturnValue | None:
    """A ``before_request`` hook: a clear 403 page for cross-site state-changing requests."""
    if request.method in SAFE_METHODS or request.endpoint in CROSS_SITE_ENDPOINTS:
        return None
    if not from_another_site():
        return None
    log.warning(
        "refused a cross-site %s %s (Origin %s, Sec-Fetch-Site %s)",
        request.method,
        request.path,
        (request.headers.get("Origin") or "-")[:100],
        (request.headers.get("Sec-Fetch-Site") or "-")[:20],
    )
    return render_template(
        "error.html",
        message=N_(
            "This form was sent from another website, so it was not carried out. "
            "If you meant to do this, open this site's own page and try again there."
        ),
    ), 403
