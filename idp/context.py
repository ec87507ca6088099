"""What every part of the IdP (login pages, OIDC, SAML, forward-auth) shares, kept on the Flask app.

``current_user()`` is how a part learns who the browser is: the session cookie's token, verified (signature,
lifetime, not ended). ``login_redirect(next)`` sends the browser to the QR login page and back.
"""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import current_app, redirect, request
from sqlalchemy import Engine
from werkzeug.wrappers import Response

from authserver.storage.kv import KeyValueStore
from idp.authenticator import AuthenticatorConfig
from idp.directory import Directory
from idp.keys import KeyRing
from idp.ns_client import NsClient
from idp.ratelimits import IdpLimits
from idp.sessions import SessionManager, SignedInUser

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
    # The web authenticator at /app/ (idp.web.authenticator); None: not served.
    authenticator: AuthenticatorConfig | None = None

    def url(self, path: str, **query: Any) -> str:
        """An absolute URL on the IdP's public address."""
        tail = f"?{urlencode(query)}" if query else ""
        return f"{self.issuer}{path}{tail}"


def services() -> IdpServices:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def current_user() -> SignedInUser | None:
    idp = services()
    return idp.sessions.verify(request.cookies.get(idp.cookie_name))


def login_redirect(next_path: str, *, reauth: bool = False) -> Response:
    """To the QR login page; ``next_path`` must be a path on the IdP (the page refuses anything else).

    ``reauth``: a new approval in the app even if the browser is logged in (OIDC ``prompt=login``,
    ``max_age``); the session keeps its id and gets a new authentication time."""
    if reauth:
        return redirect(services().url("/login", next=next_path, reauth="1"))
    return redirect(services().url("/login", next=next_path))
