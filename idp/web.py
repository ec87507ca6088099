"""The IdP's web side: the QR login page, the IdP's own session, logout.

The IdP is an application of ns like any other: it keeps a random nonce per browser in its session cookie,
asks ns for that session's state and QR, and lets the page wait on ns's browser WebSocket. Only when ns
says the nonce's session is logged in does the IdP consider the browser logged in, as that user.
OIDC and SAML build on this session.
"""

import base64
import io
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import segno
from flask import Flask, Response, abort, jsonify, redirect, render_template, request, session, url_for

from idp.ns_client import NsClient, NsError

log = logging.getLogger("nextauth.idp")
# The repository's top-level templates/ folder; an installed package (the Docker image) names its copy.
TEMPLATES = Path(
    os.environ.get("NEXTAUTH_IDP_TEMPLATES_DIR") or Path(__file__).resolve().parents[1] / "templates"
)


def safe_next(target: str | None) -> str:
    """Only paths on this site: never another host, a scheme, or a protocol-relative URL."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/"
    return target


def qr_svg(data: str) -> str:
    out = io.BytesIO()
    segno.make(data, error="m").save(
        out,
        kind="svg",
        scale=6,
        border=2,
        xmldecl=False,
        svgns=True,
        omitsize=True,
        title="Scan with the nextAuth app",
    )
    return out.getvalue().decode()


def create_app(
    ns: NsClient,
    *,
    secret_key: bytes,
    websocket_url: str,
    public_https: bool = False,
    session_seconds: int = 8 * 3600,
) -> Flask:
    app = Flask(
        "nextauth-idp",
        template_folder=str(TEMPLATES),
        static_folder=str(TEMPLATES / "static"),
        static_url_path="/static",
    )
    app.secret_key = secret_key
    app.config.update(
        SESSION_COOKIE_NAME="nextauth_idp",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=public_https,
        PERMANENT_SESSION_LIFETIME=session_seconds,
        MAX_CONTENT_LENGTH=16 * 1024,
    )

    def nonce() -> str:
        if "nonce" not in session:
            session["nonce"] = base64.urlsafe_b64encode(secrets.token_bytes(24)).rstrip(b"=").decode()
            session.permanent = True
        return str(session["nonce"])

    def ns_session() -> dict[str, Any]:
        return ns.session(
            nonce(), client_ip=request.remote_addr or "", user_agent=request.headers.get("User-Agent", "")
        )

    @app.get("/login")
    def login() -> Any:
        target = safe_next(request.args.get("next"))
        state = ns_session()
        if state.get("loggedin"):
            return complete_login(state, target)
        return render_template(
            "login.html",
            qr=qr_svg(state["loginqrdata"]),
            qrdata=state["loginqrdata"],
            hsid=state["hsid"],
            server_id=ns.server_id,
            websocket_url=websocket_url,
            next=target,
            canprovoke=state.get("canprovoke", False),
        )

    @app.get("/login/qr")
    def current_qr() -> Any:
        """The page refreshes its QR before it expires, without reloading."""
        state = ns_session()
        if state.get("loggedin"):
            return jsonify(loggedin=True)
        return jsonify(loggedin=False, qrdata=state["loginqrdata"], svg=qr_svg(state["loginqrdata"]))

    @app.post("/login/complete")
    def complete() -> Any:
        target = safe_next(request.form.get("next"))
        state = ns_session()
        if not state.get("loggedin"):
            return redirect(url_for("login", next=target))
        return complete_login(state, target)

    def complete_login(state: dict[str, Any], target: str) -> Any:
        session["user"] = {
            "sub": state.get("userid") or state.get("accountid"),
            "account": state.get("accountid"),
            "amr": [state.get("method", "qr"), state.get("second_factor", "none")],
            "auth_time": int(time.time()),
        }
        log.info("browser logged in as %s", session["user"]["sub"])
        return redirect(target)

    @app.post("/logout")
    def logout() -> Any:
        if "nonce" in session:
            try:
                ns.logout(session["nonce"])
            except NsError as exc:
                log.warning("ns logout failed: %s", exc.code)
        session.clear()
        return redirect(url_for("login"))

    @app.get("/whoami")
    def whoami() -> Any:
        user = session.get("user")
        if not user:
            abort(401)
        state = ns_session()  # ns decides: a session ended there is over here too
        if not state.get("loggedin"):
            session.pop("user", None)
            abort(401)
        return jsonify(user)

    @app.errorhandler(NsError)
    def ns_error(error: NsError) -> Any:
        log.warning("ns answered %s %s", error.status, error.code)
        return render_template(
            "error.html", message="The login service is unavailable. Try again shortly."
        ), 503

    @app.errorhandler(401)
    def unauthenticated(_error: Any) -> Any:
        return jsonify(error="unauthenticated", message="Log in first."), 401

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            f"default-src 'self'; connect-src 'self' {websocket_url}; img-src 'self' data:; "
            "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        return response

    return app
