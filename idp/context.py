"""What every part of the IdP (login pages, OIDC, SAML, forward-auth) shares, kept on the Flask app.

``current_user()`` is how a part learns who the browser is: the session cookie's token, verified (signature,
lifetime, not ended). ``login_redirect(next)`` sends the browser to the QR login page and back.
"""

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import current_app, redirect, request, session
from sqlalchemy import Engine
from werkzeug.wrappers import Response

from authserver.storage.kv import KeyValueStore
from idp.authenticator import AuthenticatorConfig
from idp.branding import Branding
from idp.directory import Directory
from idp.keys import KeyRing
from idp.ns_client import NsClient
from idp.ratelimits import IdpLimits
from idp.sessions import SessionManager, SignedInUser

if TYPE_CHECKING:  # the trail's module loads the CloudEvents SDK, which the command line rarely needs
    from authserver.audit import AuditTrail

EXTENSION = "nextauth_idp"


@dataclass
class IdpServices:
    ns: NsClient
    engine: Engine
    kv: KeyValueStore
    keys: KeyRing
    directory: Directory
    sessions: SessionManager
    issuer: str  # the IdP's public base URL, no trailing slash: OIDC issuer, SAML entity id base
    cookie_name: str = "nextauth_session"
    cookie_domain: str | None = None  # a parent domain, so forward-auth sees the cookie on every app
    secure_cookies: bool = False
    limits: IdpLimits = field(default_factory=IdpLimits)  # rate limits (idp.ratelimits)
    # Keys pairwise OIDC subjects (idp.oidc.pairwise); empty: no client may use pairwise subjects.
    pairwise_secret: bytes = field(default=b"", repr=False)
    oidc_require_par: bool = False  # every OIDC client must push its authorization requests (RFC 9126)
    device_code_seconds: int = 600  # how long an RFC 8628 device code and its user code live
    # The least time between two token requests of a CIBA or device-grant client (its `interval`).
    oidc_poll_seconds: int = 5
    branding: Branding = field(default_factory=Branding)  # name, logo, colours, help link of the pages
    admin_group: str = "nextauth-admins"  # directory group the admin console (idp.console) admits fully
    helpdesk_group: str = "nextauth-helpdesk"  # directory group it admits to the help desk's pages
    # The web authenticator at /app/ (idp.web.authenticator); None: not served.
    authenticator: AuthenticatorConfig | None = None
    # Administration events (idp.admin_audit): built from ``engine``, without sinks, when not given.
    audit: "AuditTrail | None" = None
    audit_retention_days: int = 90

    def trail(self) -> "AuditTrail":
        if self.audit is None:
            from authserver.audit import AuditTrail

            self.audit = AuditTrail(self.engine, "idp")
        return self.audit

    def url(self, path: str, **query: Any) -> str:
        """An absolute URL on the IdP's public address."""
        tail = f"?{urlencode(query)}" if query else ""
        return f"{self.issuer}{path}{tail}"


def services() -> IdpServices:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def current_user() -> SignedInUser | None:
    idp = services()
    return idp.sessions.verify(request.cookies.get(idp.cookie_name))


# How long what a flow said about who asks waits for the login page to show it.
ASKER_SECONDS = 600


def remember_login_context(next_path: str, context: dict[str, str]) -> None:
    """What the login page and the phone show of who asks, for the login that returns to ``next_path``
    only: another login in the same browser (another application, another tab) shows its own or none."""
    session["login_context"] = {**context, "for": next_path, "until": int(time.time()) + ASKER_SECONDS}


def login_redirect(next_path: str, *, reauth: bool = False, asking: str | None = None) -> Response:
    """To the QR login page; ``next_path`` must be a path on the IdP (the page refuses anything else).

    ``reauth``: a new approval in the app even if the browser is logged in (OIDC ``prompt=login``,
    ``max_age``); the session keeps its id and gets a new authentication time. ``asking``: the name of
    the application that asks (an OIDC client's, a SAML SP's), shown on the page and on the phone."""
    if asking:
        remember_login_context(next_path, {"client_name": " ".join(asking.split())[:100]})
    if reauth:
        return redirect(services().url("/login", next=next_path, reauth="1"))
    return redirect(services().url("/login", next=next_path))
