"""``/logout``: GET shows a confirmation (a link must not log anyone out); POST logs out, here and at ns."""

from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from idp.context import current_user, services
from idp.models import RelyingPartyLogin
from idp.web.prelogin import logout_at_ns
from idp.web.state import web_state

blueprint = Blueprint("logout", __name__)


@blueprint.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    idp = services()
    if request.method == "GET":
        user = current_user()
        # With applications in the session, the form goes to single logout, which ends the session the
        # same way, tells them all at once (SAML front-channel ones need the browser) and shows who heard.
        action = url_for("saml.logout") if user is not None and relying_party_logins(user.sid) else None
        return render_template("logout.html", user=user, action=action)
    user = current_user()
    # The pre-login nonce only while its login is not complete: a copy of an old pre-login cookie must
    # not end the session of whoever completed that login.
    pre_login = session.get("nonce")
    bindings = web_state().bindings
    nonces = {pre_login if pre_login and not bindings.completed(str(pre_login)) else None}
    if user is not None:
        nonces.add(idp.sessions.ns_nonce(user.sid))
        idp.sessions.end(user.sid, by="user")
    for each in nonces - {None}:
        logout_at_ns(str(each))
    session.clear()
    response = redirect(url_for("login.login"))
    response.delete_cookie(idp.cookie_name, domain=idp.cookie_domain)
    return response


def relying_party_logins(sid: str) -> bool:
    """Whether the session logged in to a SAML service provider or an OIDC client."""
    with DbSession(services().engine) as db:
        found = db.scalar(select(RelyingPartyLogin.id).where(RelyingPartyLogin.sid == sid).limit(1))
    return found is not None
