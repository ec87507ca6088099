"""``GET /whoami``: who the browser's IdP session is, as JSON; 401 without one."""

from typing import Any

from flask import Blueprint, abort, jsonify

from idp.context import current_user, services

blueprint = Blueprint("whoami", __name__)


@blueprint.get("/whoami")
def whoami() -> Any:
    idp = services()
    user = current_user()
    if user is None:
        abort(401)
    # ns decides: a session logged out there (from the app, or by a new login) is over here too.
    nonce_of_session = idp.sessions.ns_nonce(user.sid)
    if nonce_of_session is not None and not idp.ns.session(nonce_of_session).get("loggedin"):
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
