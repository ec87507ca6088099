"""Users and their accounts: a user's accounts and sessions; blocking, unblocking, deleting an account."""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import requires
from authserver.ns.servers import VirtualServer
from nextauth_core import userids

blueprint = Blueprint("users", __name__)


def _known_form(uid: str) -> str | None:
    """The user id in its canonical form; None for one outside the rule, which no user can have."""
    try:
        return userids.normalise(uid)
    except userids.UserIdError:
        return None


@blueprint.get("/servers/<sid>/users/<uid>")
@requires("users")
def get_user(sid: VirtualServer, uid: str) -> Any:
    canonical = _known_form(uid)
    if canonical is None:
        raise ServiceError(404, "not_found", "This user has no accounts.")
    accounts = services().accounts.user_accounts(sid.id, canonical)
    if not accounts:
        raise ServiceError(404, "not_found", "This user has no accounts.")
    return jsonify(userid=canonical, accounts=accounts)


@blueprint.get("/servers/<sid>/users/<uid>/sessions")
@requires("sessions")
def user_sessions(sid: VirtualServer, uid: str) -> Any:
    uid = _known_form(uid) or ""  # sessions of an id outside the rule: none
    return jsonify(userid=uid, sessions=services().login.user_sessions(sid.id, uid))


@blueprint.post("/servers/<sid>/accounts/<aid>/block")
@requires("accounts")
def block_account(sid: VirtualServer, aid: str) -> Any:
    services().accounts.set_blocked(sid.id, aid, True, actor=g.grant.name)
    return jsonify(accountid=aid, blocked=True)


@blueprint.post("/servers/<sid>/accounts/<aid>/unblock")
@requires("accounts")
def unblock_account(sid: VirtualServer, aid: str) -> Any:
    services().accounts.set_blocked(sid.id, aid, False, actor=g.grant.name)
    return jsonify(accountid=aid, blocked=False)


@blueprint.delete("/servers/<sid>/accounts/<aid>")
@requires("accounts")
def delete_account(sid: VirtualServer, aid: str) -> Any:
    services().accounts.delete(sid.id, aid, actor=g.grant.name)
    return jsonify(accountid=aid, deleted=True)
