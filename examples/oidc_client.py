"""An example web application that logs its users in through the nextAuth IdP with OpenID Connect.

It uses Authlib's Flask client (code flow with PKCE), shows who is logged in, logs out at the IdP, and
accepts back-channel logout so that a logout anywhere ends its session too. Settings come from the
environment:

    EXAMPLE_ISSUER         the IdP's address, e.g. http://127.0.0.1:8000
    EXAMPLE_CLIENT_ID      from `nextauth oidc-client add`
    EXAMPLE_CLIENT_SECRET  from the same command
    EXAMPLE_LISTEN         host:port to serve on (default 127.0.0.1:5000)

Run: python examples/oidc_client.py  (README: "Five minutes: an OIDC client and a SAML SP").
"""

import os
import secrets
import threading
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, redirect, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from markupsafe import escape

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def create_app(issuer: str, client_id: str, client_secret: str) -> Flask:
    app = Flask("example-oidc-client")
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="example_client", SESSION_COOKIE_SAMESITE="Lax")
    oauth = OAuth(app)
    idp = oauth.register(
        "nextauth",
        server_metadata_url=f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        client_id=client_id,
        client_secret=client_secret,
        client_kwargs={"scope": "openid profile email groups", "code_challenge_method": "S256"},
    )
    # IdP sessions that ended (back-channel logout): their local sessions are over at the next request.
    ended_sids: set[str] = set()
    lock = threading.Lock()

    def current_user() -> dict[str, Any] | None:
        user = session.get("user")
        if user is None:
            return None
        with lock:
            if user.get("sid") in ended_sids:
                session.clear()
                return None
        return dict(user)

    @app.get("/")
    def home() -> str:
        user = current_user()
        if user is None:
            return '<h1>Example app</h1><p><a id="login" href="/login">Log in with nextAuth</a></p>'
        groups = ", ".join(user.get("groups", [])) or "none"
        return (
            f'<h1 id="hello">Hello, {escape(user.get("name") or user["sub"])}</h1>'
            f"<p>e-mail: {escape(user.get('email', '-'))}; groups: {escape(groups)}; "
            f"second factor: {escape(' '.join(user.get('amr', [])))}</p>"
            '<p><a id="logout" href="/logout">Log out</a></p>'
        )

    @app.get("/login")
    def login() -> Any:
        return idp.authorize_redirect(url_for("callback", _external=True))

    @app.get("/callback")
    def callback() -> Any:
        # The IdP sends the browser back with an error when the user said no (access_denied) or the login
        # could not happen: a page that says so, not a crash.
        error = request.args.get("error")
        if error is not None:
            session.pop("_state_nextauth_" + request.args.get("state", ""), None)
            return _refused_page(error, request.args.get("error_description", ""))
        try:
            token = idp.authorize_access_token()  # checks state, exchanges the code with the PKCE verifier
        except OAuthError as exc:
            return _refused_page(exc.error or "invalid_request", exc.description or "")
        claims = token["userinfo"]  # the ID token's claims, signature and nonce checked by Authlib
        session["user"] = {
            key: claims.get(key) for key in ("sub", "name", "email", "groups", "amr", "acr", "sid")
        }
        session["id_token"] = token["id_token"]
        return redirect(url_for("home"))

    @app.get("/logout")
    def logout() -> Any:
        id_token = session.get("id_token")
        session.clear()
        metadata = idp.load_server_metadata()
        target = f"{metadata['end_session_endpoint']}?" + _query(
            id_token_hint=id_token or "", post_logout_redirect_uri=url_for("home", _external=True)
        )
        return redirect(target)

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        token = request.form.get("logout_token", "")
        metadata = idp.load_server_metadata()
        keys = KeySet.import_key_set(idp.fetch_jwk_set())
        try:
            decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256"])
            registry = jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": metadata["issuer"]},
                aud={"essential": True, "value": client_id},
                sid={"essential": True},
                events={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError):
            abort(400)
        if BACKCHANNEL_EVENT not in decoded.claims["events"] or "nonce" in decoded.claims:
            abort(400)
        with lock:
            ended_sids.add(decoded.claims["sid"])
        return "", 200

    return app


def _refused_page(error: str, description: str) -> tuple[str, int]:
    if error == "access_denied":
        text = "You did not allow this application to use your nextAuth login, so you are not logged in."
        status = 403
    else:
        text = "The login did not complete. Try again."
        status = 400
    detail = f" ({escape(error)}{': ' + escape(description) if description else ''})"
    return (
        f'<h1 id="refused">Not logged in</h1><p>{escape(text)}<small>{detail}</small></p>'
        '<p><a id="login" href="/login">Log in with nextAuth</a></p>'
    ), status


def _query(**params: str) -> str:
    return urlencode({key: value for key, value in params.items() if value})


def main() -> None:
    host, _, port = os.environ.get("EXAMPLE_LISTEN", "127.0.0.1:5000").rpartition(":")
    app = create_app(
        os.environ["EXAMPLE_ISSUER"], os.environ["EXAMPLE_CLIENT_ID"], os.environ["EXAMPLE_CLIENT_SECRET"]
    )
    print(f"Example OIDC client on http://{host}:{port}/")
    app.run(host=host, port=int(port))


if __name__ == "__main__":
    main()
