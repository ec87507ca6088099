"""The IdP's web side: the QR login page, the IdP's own session, logout.

The IdP is an application of ns like any other: it keeps a random nonce per browser in its Flask session
cookie, asks ns for that session's state and QR, and lets the page wait on ns's browser WebSocket. Only when
ns says the nonce's session is logged in does the IdP start its own session for the browser (a signed token
in a second cookie, see ``idp.sessions``), which OIDC, SAML and forward-auth build on.

The views are module-level blueprints, one module per concern (``login``, ``push``, ``completion``,
``logout``, ``whoami``, ``enrol`` for invite links, ``account`` for "My account", and ``authenticator``,
the web authenticator app at ``/app/``); what they share lives on the app (``idp.context.services()`` and
``idp.web.state.web_state()``). ``create_app`` builds the app: its settings, that state, the blueprints
(these and the protocol front-ends of ``idp.blueprints``), the error pages and the headers.
"""

import os
from pathlib import Path

from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Flask

from authserver.transport.json_bodies import bound_json
from idp import branding, i18n, long_urls, metrics
from idp.blueprints import blueprints
from idp.context import EXTENSION, IdpServices
from idp.forwardauth import views as forward_auth_views
from idp.forwardauth.fastpath import FastForwardAuth
from idp.login_binding import LoginBindings
from idp.ns_client import NsError
from idp.origin import refuse_cross_site
from idp.web import account, authenticator, completion, enrol, errors, login, logout, push, whoami
from idp.web.login import safe_next
from idp.web.scheme import PublicScheme
from idp.web.state import EXTENSION as WEB_EXTENSION
from idp.web.state import WebState

__all__ = ["TEMPLATES", "create_app", "safe_next"]

# The repository's top-level templates/ folder; an installed package (the Docker image) names its copy.
TEMPLATES = Path(
    os.environ.get("NEXTAUTH_IDP_TEMPLATES_DIR") or Path(__file__).resolve().parents[2] / "templates"
)


def create_app(idp: IdpServices, *, secret_key: bytes, websocket_url: str) -> Flask:
    session_seconds = int(idp.sessions.lifetime.total_seconds())
    app = Flask(
        "nextauth-idp",
        template_folder=str(TEMPLATES),
        static_folder=str(TEMPLATES / "static"),
        static_url_path="/static",
    )
    bound_json(app)
    app.secret_key = secret_key
    app.config.update(
        SESSION_COOKIE_NAME="nextauth_idp",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=idp.secure_cookies,
        PERMANENT_SESSION_LIFETIME=session_seconds,
        # SAML messages arrive in forms; a signed AuthnRequest or LogoutRequest stays well below this.
        MAX_CONTENT_LENGTH=256 * 1024,
    )
    app.extensions[EXTENSION] = idp
    app.extensions[WEB_EXTENSION] = WebState(
        bindings=LoginBindings(idp.kv, ttl_seconds=session_seconds),
        websocket_url=websocket_url,
        session_seconds=session_seconds,
    )
    i18n.register(app)
    branding.register(app, idp.branding)
    app.before_request(refuse_cross_site)
    for page in (login, push, completion, logout, whoami, enrol, account, authenticator):
        app.register_blueprint(page.blueprint)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    app.register_error_handler(NsError, errors.ns_error)
    app.register_error_handler(401, errors.unauthenticated)
    app.register_error_handler(429, errors.too_many)
    app.register_error_handler(413, errors.too_large)
    app.register_error_handler(404, errors.not_found)
    app.register_error_handler(405, errors.method_not_allowed)
    app.register_error_handler(500, errors.internal_error)
    long_urls.register(app)
    app.after_request(errors.security_headers)
    metrics.instrument(app)
    app.register_error_handler(InsecureTransportError, errors.insecure_transport)
    if idp.issuer.startswith("https://"):
        app.wsgi_app = PublicScheme(app.wsgi_app, "https")  # type: ignore[method-assign]
    # Loaded with the protocol front-ends (idp.blueprints), not with this module.
    from idp.oidc.endpoints import EXTENSION as OIDC_EXTENSION
    from idp.oidc.fast_introspection import FastIntrospection
    from idp.oidc.fast_token import FastCodeExchange

    oidc = app.extensions.get(OIDC_EXTENSION)
    if oidc is not None:
        for fast_path in (FastIntrospection, FastCodeExchange):
            app.wsgi_app = fast_path(  # type: ignore[method-assign]
                app.wsgi_app,
                provider=oidc,
                security_headers=errors.security_header_values(websocket_url),
                https=idp.issuer.startswith("https://"),
            )
    forward_auth = app.extensions.get(forward_auth_views.STATE)
    if forward_auth is not None:
        app.wsgi_app = FastForwardAuth(  # type: ignore[method-assign]
            app.wsgi_app,
            settings=forward_auth.settings,
            sessions=idp.sessions,
            cookie_name=idp.cookie_name,
            security_headers=errors.security_header_values(websocket_url),
        )
    return app
