"""``POST /login/complete``: once ns says the nonce's session is logged in, the IdP starts its own session
for the browser (a signed token in a second cookie, see ``idp.sessions``), or renews it after a reauth.

Only the login page that started the login completes it, and only once (``idp.login_binding``).
"""

import logging
from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from idp.context import current_user, services
from idp.i18n import N_
from idp.web.login import safe_next
from idp.web.prelogin import logout_at_ns, nonce, ns_session
from idp.web.state import web_state

security_log = logging.getLogger("nextauth.security")

blueprint = Blueprint("completion", __name__)


@blueprint.post("/login/complete")
def complete() -> Any:
    bindings = web_state().bindings
    target = safe_next(request.form.get("next"))
    login_key = request.form.get("login_key")
    if not bindings.holds(nonce(), login_key):
        return completion_refused("not the page that started it")
    state = ns_session()
    if not state.get("loggedin"):
        return redirect(url_for("login.login", next=target))
    if not bindings.complete(nonce(), login_key):
        return completion_refused("completed already")
    return complete_login(state, target)


def completion_refused(reason: str) -> Any:
    security_log.warning("a login completion was refused: %s", reason)
    return render_template(
        "error.html",
        message=N_(
            "This login was started in another browser or window, or is complete already. "
            "Log in again from this page."
        ),
    ), 403


def complete_login(state: dict[str, Any], target: str) -> Any:
    idp = services()
    user_id = state.get("userid") or state.get("accountid")
    if not user_id:
        return render_template("error.html", message=N_("This login has no user. Ask for a new QR.")), 409
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


def set_session_cookie(response: Response, token: str) -> None:
    idp = services()
    response.set_cookie(
        idp.cookie_name,
        token,
        max_age=web_state().session_seconds,
        domain=idp.cookie_domain,
        secure=idp.secure_cookies,
        httponly=True,
        samesite="Lax",
    )
