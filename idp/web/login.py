"""The QR login page (``GET /login``) and its QR renewal (``GET /login/qr``).

Each page carries a key of its own (``idp.login_binding``): only the page that started a login completes
it. Every page and every renewal may open an ns session and draw a QR, so both are rate limited.
"""

import io
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import segno
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session
from flask_babel import gettext

from authserver.ratelimit import RateLimited, client_key
from idp.context import current_user, services
from idp.forwardauth.urls import RETURN_PATH, safe_return
from idp.forwardauth.views import STATE as FORWARD_AUTH_STATE
from idp.i18n import N_
from idp.ns_client import NsError
from idp.ratelimits import refuse
from idp.web.prelogin import new_nonce, nonce, ns_session
from idp.web.state import web_state

log = logging.getLogger("nextauth.idp")

blueprint = Blueprint("login", __name__)


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
        title=gettext("Scan with the nextAuth app"),
    )
    return out.getvalue().decode()


@blueprint.get("/login")
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


@blueprint.get("/login/qr")
def current_qr() -> Any:
    """The page refreshes its QR before it expires, without reloading."""
    count_login_visit()
    state = ns_session()
    if state.get("loggedin"):
        return jsonify(loggedin=True)
    return jsonify(
        loggedin=False, qrdata=state["loginqrdata"], svg=qr_svg(state["loginqrdata"]), **code_lifetime(state)
    )


def code_lifetime(state: dict[str, Any]) -> dict[str, float]:
    """How long the shown code lives and when to ask for the next, as ns reports them. An ns that reports
    neither gets the old rhythm: renewal 25 s after showing, when ns hands out a new one."""
    expires_in = float(state.get("loginqrexpires_in", 45.0))
    renew_in = float(state.get("loginqrrenew_in", max(0.0, expires_in - 15.0)))
    return {"expires_in": expires_in, "renew_in": renew_in}


def count_login_visit() -> None:
    """Each login page and each QR renewal may open an ns session and draw a QR: counted per client
    address under one rule."""
    limits = services().limits
    client = limits.client()
    try:
        limits.limiter.hit(limits.rules["login"], client_key(client), client=client)
    except RateLimited as exc:
        refuse(exc, N_("Too many login pages were asked for from your network. Wait a moment and reload."))


def login_page(target: str, login_key: str | None = None, **extra: Any) -> str:
    """The login page with its page key (see ``idp.login_binding``). A browser whose nonce already has
    its page, or whose login is already approved, starts over with a new nonce: whoever holds that page
    (or a copy of this cookie) is not to be trusted with the login."""
    bindings = web_state().bindings
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
    asker = who_asks(target)
    tell_phone_who_asks(asker)
    return render_template(
        "login.html",
        asker=asker,
        qr=qr_svg(state["loginqrdata"]),
        qrdata=state["loginqrdata"],
        hsid=state["hsid"],
        server_id=services().ns.server_id,
        websocket_url=web_state().websocket_url,
        next=target,
        canprovoke=state.get("canprovoke", False),
        **code_lifetime(state),
        **extra,
    )


# What ns passes on to the phone (nextauth_core/logincontext.py); the rest of a context is the page's.
PHONE_CONTEXT = ("client_name", "message", "user_code")


def who_asks(target: str) -> dict[str, str] | None:
    """Who asks for this login, as the flow that sent the browser here said (an OIDC client, a SAML SP,
    the device grant), for this very target; or the host a forward-auth login returns to."""
    context = session.get("login_context")
    if isinstance(context, dict) and context.get("until", 0) >= time.time() and context.get("for") == target:
        return {key: str(value) for key, value in context.items() if key in PHONE_CONTEXT}
    if isinstance(context, dict) and context.get("until", 0) < time.time():
        session.pop("login_context", None)
    if target.startswith(RETURN_PATH + "?"):
        url = parse_qs(urlsplit(target).query).get("url", [""])[0]
        # Only a host forward-auth protects is named: anyone can make a link naming any other, and the
        # phone must not vouch for it.
        forward_auth = current_app.extensions.get(FORWARD_AUTH_STATE)
        allowed = forward_auth.settings.return_hosts if forward_auth is not None else ()
        if safe_return(url, allowed, idp_url=services().issuer):
            host = urlsplit(url).hostname
            if host and host != urlsplit(services().issuer).hostname:
                return {"client_name": host[:100]}
    return None


def tell_phone_who_asks(asker: dict[str, str] | None) -> None:
    """ns shows who asks on the phone, for this page's QR and pushes; a page with nobody named clears
    what an earlier page of this browser session set."""
    if asker is None and not session.pop("told_ns_context", False):
        return
    try:
        services().ns.set_context(nonce(), asker or {})
        session["told_ns_context"] = asker is not None
    except NsError as exc:
        log.warning("cannot tell ns who asks: %s", exc.code)
