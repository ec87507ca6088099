"""The IdP's web side: the QR login page, the IdP's own session, logout.

The IdP is an application of ns like any other: it keeps a random nonce per browser in its Flask session
cookie, asks ns for that session's state and QR, and lets the page wait on ns's browser WebSocket. Only when
ns says the nonce's session is logged in does the IdP start its own session for the browser (a signed token
in a second cookie, see ``idp.sessions``), which OIDC, SAML and forward-auth build on.
"""

import base64
import hashlib
import io
import logging
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import segno
from flask import Flask, Response, abort, jsonify, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from werkzeug.exceptions import TooManyRequests

from authserver.ratelimit import RateLimited, client_key
from authserver.transport.json_bodies import bound_json
from idp.blueprints import blueprints
from idp.context import EXTENSION, IdpServices, current_user
from idp.login_binding import LoginBindings
from idp.models import RelyingPartyLogin
from idp.ns_client import NsError
from idp.origin import refuse_cross_site
from idp.ratelimits import refuse

log = logging.getLogger("nextauth.idp")
security_log = logging.getLogger("nextauth.security")
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
        or not target.isprintable()  # a line break would split the Location header
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


def create_app(idp: IdpServices, *, secret_key: bytes, websocket_url: str) -> Flask:
    ns = idp.ns
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
    bindings = LoginBindings(idp.kv, ttl_seconds=session_seconds)
    app.before_request(refuse_cross_site)

    def new_nonce() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(24)).rstrip(b"=").decode()

    def nonce() -> str:
        if "nonce" not in session:
            session["nonce"] = new_nonce()
            session.permanent = True
        return str(session["nonce"])

    def ns_session() -> dict[str, Any]:
        return ns.session(
            nonce(), client_ip=request.remote_addr or "", user_agent=request.headers.get("User-Agent", "")
        )

    @app.get("/login")
    def login() -> Any:
        count_login_visit()
        target = safe_next(request.args.get("next"))
        user = current_user()
        if request.args.get("reauth") == "1" and user is not None:
            if session.get("reauth_for") != user.sid:
                # A new approval in the app needs a new ns session: a fresh nonce, a new QR.
                session["reauth_for"] = user.sid
                session["nonce"] = new_nonce()
        elif user is not None:
            return redirect(target)
        return login_page(target)

    @app.post("/login/push")
    def push() -> Any:
        """A push to the phones of the user named in the form; the page shows the number to pick there.

        The answer is the same whether or not the user exists or has push (no way to probe for users),
        and pushes are limited per browser and per user so nobody can wear a person down with requests."""
        target = safe_next(request.form.get("next"))
        username = (request.form.get("username") or "").strip()
        wants_json = request.accept_mimetypes.best == "application/json"

        def answer(
            status: int, message: str, kind: str = "", number: int | None = None, headers: Any = None
        ) -> Any:
            if wants_json:
                return jsonify(message=message, kind=kind, number=number), status, headers
            key = request.form.get("login_key")
            page = login_page(target, key, push_message=message, push_kind=kind, number=number)
            return page, status, headers

        if not username or len(username) > 255 or not username.isprintable():
            return answer(400, "Enter your username.", "error")
        client, rules, limiter = idp.limits.client(), idp.limits.rules, idp.limits.limiter
        try:
            limiter.hit(rules["push_client"], client_key(client), client=client)
            browser_key = hashlib.sha256(nonce().encode()).hexdigest()
            limiter.hit(rules["push_browser"], browser_key, client=client, what="pushes from one browser")
            user_key = hashlib.sha256(username.encode()).hexdigest()
            limiter.hit(rules["push_user"], user_key, client=client, what="pushes to one user")
        except RateLimited as exc:
            return answer(
                429,
                "Too many requests. Wait a minute, or scan the code instead.",
                "error",
                headers={"Retry-After": str(exc.retry_after)},
            )
        try:
            pushed = ns.provoke_user(
                username,
                nonce(),
                client_ip=request.remote_addr or "",
                user_agent=request.headers.get("User-Agent", ""),
            )
            number = int(pushed["number"])
        except NsError as exc:
            if exc.status not in (404, 409):
                log.warning("push for a login failed: %s", exc.code)
                return answer(502, "Your phone could not be reached. Scan the code instead.", "error")
            # No such user, or no phone with push: answer as if sent (see above), with a number.
            log.info("push requested for a user without push accounts")
            number = secrets.randbelow(90) + 10
        return answer(200, "Open the request on your phone and pick this number:", "ok", number)

    def count_login_visit() -> None:
        """Each login page and each QR renewal may open an ns session and draw a QR: counted per client
        address under one rule."""
        client = idp.limits.client()
        try:
            idp.limits.limiter.hit(idp.limits.rules["login"], client_key(client), client=client)
        except RateLimited as exc:
            refuse(exc, "Too many login pages were asked for from your network. Wait a moment and reload.")

    def login_page(target: str, login_key: str | None = None, **extra: Any) -> str:
        """The login page with its page key (see ``idp.login_binding``). A browser whose nonce already has
        its page, or whose login is already approved, starts over with a new nonce: whoever holds that page
        (or a copy of this cookie) is not to be trusted with the login."""
        state = ns_session()
        if bindings.holds(nonce(), login_key) and not bindings.completed(nonce()):
            return render_login(state, target, login_key=login_key, **extra)
        key = None if state.get("loggedin") else bindings.bind(nonce())
        if key is None:
            session["nonce"] = new_nonce()
            state = ns_session()
            key = bindings.bind(nonce())
        return render_login(state, target, login_key=key, **extra)

    def render_login(state: dict[str, Any], target: str, **extra: Any) -> str:
        return render_template(
            "login.html",
            qr=qr_svg(state["loginqrdata"]),
            qrdata=state["loginqrdata"],
            hsid=state["hsid"],
            server_id=ns.server_id,
            websocket_url=websocket_url,
            next=target,
            canprovoke=state.get("canprovoke", False),
            **extra,
        )

    @app.get("/login/qr")
    def current_qr() -> Any:
        """The page refreshes its QR before it expires, without reloading."""
        count_login_visit()
        state = ns_session()
        if state.get("loggedin"):
            return jsonify(loggedin=True)
        return jsonify(loggedin=False, qrdata=state["loginqrdata"], svg=qr_svg(state["loginqrdata"]))

    @app.post("/login/complete")
    def complete() -> Any:
        target = safe_next(request.form.get("next"))
        login_key = request.form.get("login_key")
        if not bindings.holds(nonce(), login_key):
            return completion_refused("not the page that started it")
        state = ns_session()
        if not state.get("loggedin"):
            return redirect(url_for("login", next=target))
        if not bindings.complete(nonce(), login_key):
            return completion_refused("completed already")
        return complete_login(state, target)

    def completion_refused(reason: str) -> Any:
        security_log.warning("a login completion was refused: %s", reason)
        return render_template(
            "error.html",
            message="This login was started in another browser or window, or is complete already. "
            "Log in again from this page.",
        ), 403

    def complete_login(state: dict[str, Any], target: str) -> Any:
        user_id = state.get("userid") or state.get("accountid")
        if not user_id:
            return render_template("error.html", message="This login has no user. Ask for a new QR."), 409
        ns_nonce = nonce()
        profile = idp.directory.get(user_id)
        second_factor, method = state.get("second_factor"), state.get("method", "qr")
        token = None
        reauth_sid, current = session.pop("reauth_for", None), current_user()
        if reauth_sid is not None and current is not None and current.sid == reauth_sid:
            previous_nonce = idp.sessions.ns_nonce(current.sid)
            if current.sub == user_id:
                token = idp.sessions.reauthenticate(
                    current.sid,
                    ns_nonce=ns_nonce,
                    profile=profile,
                    second_factor=second_factor,
                    method=method,
                )
            else:  # someone else approved: the old session ends, with everything it logged in to
                idp.sessions.end(current.sid, by="switch")
            if previous_nonce is not None and previous_nonce != ns_nonce:
                logout_at_ns(previous_nonce)
        if token is None:
            token = idp.sessions.start(
                ns_nonce=ns_nonce, profile=profile, second_factor=second_factor, method=method
            )
        # The pre-login cookie is spent: the browser leaves with a new one and the session's own token.
        session.clear()
        response = redirect(target)
        set_session_cookie(response, token)
        return response

    def saml_logins(sid: str) -> bool:
        with DbSession(idp.engine) as db:
            found = db.scalar(
                select(RelyingPartyLogin.id)
                .where(RelyingPartyLogin.sid == sid, RelyingPartyLogin.protocol == "saml")
                .limit(1)
            )
        return found is not None

    def logout_at_ns(ns_nonce: str) -> None:
        try:
            ns.logout(ns_nonce)
        except NsError as exc:
            log.warning("ns logout failed: %s", exc.code)

    def set_session_cookie(response: Response, token: str) -> None:
        response.set_cookie(
            idp.cookie_name,
            token,
            max_age=session_seconds,
            domain=idp.cookie_domain,
            secure=idp.secure_cookies,
            httponly=True,
            samesite="Lax",
        )

    @app.route("/logout", methods=["GET", "POST"])
    def logout() -> Any:
        """GET shows a confirmation (a link must not log anyone out); POST logs out."""
        if request.method == "GET":
            user = current_user()
            # SAML service providers with front-channel logout only learn of it while the browser walks
            # through them: then the form goes to the SAML logout, which ends the session the same way.
            action = url_for("saml.logout") if user is not None and saml_logins(user.sid) else None
            return render_template("logout.html", user=user, action=action)
        user = current_user()
        # The pre-login nonce only while its login is not complete: a copy of an old pre-login cookie must
        # not end the session of whoever completed that login.
        pre_login = session.get("nonce")
        nonces = {pre_login if pre_login and not bindings.completed(str(pre_login)) else None}
        if user is not None:
            nonces.add(idp.sessions.ns_nonce(user.sid))
            idp.sessions.end(user.sid, by="user")
        for each in nonces - {None}:
            logout_at_ns(str(each))
        session.clear()
        response = redirect(url_for("login"))
        response.delete_cookie(idp.cookie_name, domain=idp.cookie_domain)
        return response

    @app.get("/whoami")
    def whoami() -> Any:
        user = current_user()
        if user is None:
            abort(401)
        # ns decides: a session logged out there (from the app, or by a new login) is over here too.
        nonce_of_session = idp.sessions.ns_nonce(user.sid)
        if nonce_of_session is not None and not ns.session(nonce_of_session).get("loggedin"):
            idp.sessions.end(user.sid, by="ns")
            abort(401)
        return jsonify(
            sub=user.sub,
            name=user.name,
            email=user.email,
            groups=list(user.groups),
            amr=list(user.amr),
            acr=user.acr,
            method=user.method,
            auth_time=user.auth_time,
            expires_at=user.expires_at,
        )

    for blueprint in blueprints():
        app.register_blueprint(blueprint)

    @app.errorhandler(NsError)
    def ns_error(error: NsError) -> Any:
        log.warning("ns answered %s %s", error.status, error.code)
        return render_template(
            "error.html", message="The login service is unavailable. Try again shortly."
        ), 503

    @app.errorhandler(401)
    def unauthenticated(_error: Any) -> Any:
        return jsonify(error="unauthenticated", message="Log in first."), 401

    @app.errorhandler(429)
    def too_many(error: TooManyRequests) -> Any:
        page = render_template("error.html", message=error.description or "Too many requests. Wait a moment.")
        retry_after = getattr(error, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return page, 429, headers

    @app.errorhandler(413)
    def too_large(_error: Any) -> Any:
        return render_template("error.html", message="The request is too large."), 413

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
