"""Users and their accounts: a user's accounts and sessions; listing a server's accounts; blocking,
unblocking, deleting an account, and moving it to another user."""

from typing import Any

from flask import Blueprint, g, jsonify, request

from authserver.ns.accounts import MAX_PAGE, SORTS, AccountQuery
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from authserver.ns.servers import VirtualServer
from nextauth_core import userids
from nextauth_core.digits import only_digits

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


def _account_query() -> AccountQuery:
    args = request.args
    unknown = sorted(set(args) - {"user", "blocked", "sort", "limit", "offset"})
    if unknown:
        raise ServiceError(400, "bad_request", f"Unknown query parameter {unknown[0]!r}.")
    user = args.get("user") or None
    if user is not None and (len(user) > 255 or not user.isprintable()):
        raise ServiceError(400, "bad_request", "user must be at most 255 printable characters.")
    blocked_text = args.get("blocked")
    if blocked_text not in (None, "true", "false"):
        raise ServiceError(400, "bad_request", "blocked must be true or false.")
    blocked = None if blocked_text is None else blocked_text == "true"
    sort = args.get("sort", "created_at")
    if sort not in SORTS:
        raise ServiceError(400, "bad_request", f"sort must be one of {', '.join(SORTS)}.")
    limit, offset = args.get("limit", "50"), args.get("offset", "0")
    if not only_digits(limit) or not 1 <= int(limit) <= MAX_PAGE:
        raise ServiceError(400, "bad_request", f"limit must be 1 to {MAX_PAGE}.")
    if not only_digits(offset) or int(offset) > 1_000_000:
        raise ServiceError(400, "bad_request", "offset must be 0 to 1000000.")
    return AccountQuery(user, blocked, sort, int(limit), int(offset))


@blueprint.get("/servers/<sid>/accounts")
@requires("accounts", "users")
def list_accounts(sid: VirtualServer) -> Any:
    return jsonify(services().accounts.list_accounts(sid.id, _account_query()))


@blueprint.post("/servers/<sid>/accounts/<aid>/move")
@requires("accounts")
def move_account(sid: VirtualServer, aid: str) -> Any:
    userid = body().get("userid")
    canonical = _known_form(userid) if isinstance(userid, str) else None
    if canonical is None:
        raise ServiceError(400, "bad_request", "userid must be a user id (see the user-id rule in the docs).")
    return jsonify(services().accounts.move(sid.id, aid, canonical, actor=g.grant.name))
