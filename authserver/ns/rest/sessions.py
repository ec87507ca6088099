"""An application's login sessions: status and login QR, push ("provoke") logins, which are active,
logout."""

from typing import Any

from flask import Blueprint, jsonify, request

from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import NsServices, services
from authserver.ns.rest.qr import qr_response
from authserver.ns.rest.requests import body, browser, nonce, requires
from authserver.ns.servers import VirtualServer
from nextauth_core import logincontext
from nextauth_core.hsid import hsid_for

MAX_ACTIVE_QUERY = 500

blueprint = Blueprint("sessions", __name__)


@blueprint.get("/servers/<sid>/sessions/")
@requires("sessions")
def session_status(sid: VirtualServer) -> Any:
    return jsonify(status_view(services(), sid, nonce(), browser()))


def status_view(
    ns: NsServices, server: VirtualServer, session_nonce: str, visitor: dict[str, str]
) -> dict[str, Any]:
    """The session's status as the application sees it (also answered by ``fast_status``)."""
    status, row = ns.login.status_and_row(server, session_nonce, visitor)
    view = status.as_json()
    view["canprovoke"] = (not view["loggedin"]) and ns.push.can_provoke(server.id, view["hsid"], current=row)
    return view


@blueprint.put("/servers/<sid>/sessions/context")
@requires("sessions")
def session_context(sid: VirtualServer) -> Any:
    """Who asks and why, shown on the phone for every login request on this session (QR or push)."""
    hsid, given = hsid_for(nonce()), body()
    if "context" not in given:
        raise ServiceError(400, "bad_context", 'Send {"context": {...}}; an empty object clears it.')
    context = login_context(given)
    services().login.set_context(sid.id, hsid, context)
    return jsonify(hsid=hsid, context=context or {})


@blueprint.post("/servers/<sid>/sessions/provokelogin")
@requires("sessions")
def provoke_session(sid: VirtualServer) -> Any:
    hsid = hsid_for(nonce())
    context = login_context(body()) or services().login.context(sid.id, hsid)
    return jsonify(services().push.provoke_session(sid, hsid, browser(), context))


@blueprint.post("/servers/<sid>/users/<uid>/provokelogin")
@requires("users")
def provoke_user(sid: VirtualServer, uid: str) -> Any:
    given, session_nonce = body(), nonce()
    context = login_context(given) or services().login.context(sid.id, hsid_for(session_nonce))
    number = given.get("number")
    if number is not None and (type(number) is not int or not 10 <= number <= 99):
        raise ServiceError(400, "bad_request", "number: an integer from 10 to 99.")
    return jsonify(
        services().push.provoke_user(sid, uid, session_nonce, browser(), context=context, number=number)
    )


def login_context(given: dict[str, Any]) -> dict[str, str] | None:
    try:
        return logincontext.checked(given.get("context"))
    except logincontext.LoginContextError as exc:
        raise ServiceError(400, "bad_context", f"{exc}.") from exc


@blueprint.get("/servers/<sid>/sessions/qr/login")
@requires("sessions")
def login_qr(sid: VirtualServer) -> Any:
    view = services().login.status(sid, nonce(), browser())
    if view.loggedin:
        raise ServiceError(409, "logged_in", "This session is logged in already.")
    assert view.loginqrdata is not None
    fmt = request.args.get("format", "json")
    if fmt in ("png", "svg"):
        return qr_response(view.loginqrdata, fmt)
    if fmt != "json":
        raise ServiceError(400, "bad_request", "format must be json, png or svg.")
    return jsonify(qrdata=view.loginqrdata, hsid=view.hsid)


@blueprint.post("/servers/<sid>/sessions/active")
@requires("sessions")
def sessions_active(sid: VirtualServer) -> Any:
    """Which of these sessions are logged in: one query for an application that watches many (the
    IdP ends its own sessions, and what logged in with them, when ns has ended theirs)."""
    hsids = body().get("hsids")
    if (
        not isinstance(hsids, list)
        or len(hsids) > MAX_ACTIVE_QUERY
        or not all(isinstance(h, str) and 0 < len(h) <= 64 for h in hsids)
    ):
        raise ServiceError(400, "bad_request", f"hsids: a list of up to {MAX_ACTIVE_QUERY} session ids.")
    active = services().login.active_hsids(sid.id, hsids)
    return jsonify(active=[h for h in hsids if h in active])


@blueprint.post("/servers/<sid>/sessions/logout")
@requires("sessions")
def session_logout(sid: VirtualServer) -> Any:
    return jsonify(loggedout=services().login.logout(sid.id, hsid_for(nonce()), "application"))


@blueprint.delete("/servers/<sid>/sessions/<hsid>")
@requires("sessions")
def end_session(sid: VirtualServer, hsid: str) -> Any:
    if not services().login.logout(sid.id, hsid, "application"):
        raise ServiceError(404, "not_found", "No active session with that id.")
    return jsonify(loggedout=True)
