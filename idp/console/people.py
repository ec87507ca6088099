"""The console's pages about people: find a user's accounts, block or delete one, end sessions, edit the
directory profile, revoke consents. The help desk may search, block, unblock and end sessions; the rest
is the admin group's."""

from typing import Any

from flask import current_app, redirect, request, url_for

from authserver.audit.catalogue import EVENT_TYPES
from idp.console.base import admin_only, blueprint, confirm, field, log, operator, page
from idp.context import services
from idp.directory import Profile
from idp.oidc.consents import list_consents
from nextauth_core.digits import only_digits

PAGE_SIZE = 50
SORTS = ("userid", "-last_login_at", "last_login_at", "-created_at", "created_at")


@blueprint.get("/")
def home() -> Any:
    return page("console/home.html")


@blueprint.get("/users")
def users() -> Any:
    prefix = request.args.get("q", "").strip()[:255]
    sort = request.args.get("sort", "userid")
    sort = sort if sort in SORTS else "userid"
    offset = _whole(request.args.get("offset"))
    found = services().ns.accounts(user=prefix, sort=sort, offset=offset, limit=PAGE_SIZE)
    return page(
        "console/users.html",
        q=prefix,
        sort=sort,
        sorts=SORTS,
        accounts=found.get("accounts", []),
        total=found.get("total", 0),
        next_offset=found.get("next_offset"),
        offset=offset,
    )


@blueprint.get("/user")
def user() -> Any:
    user_id = request.args.get("id", "").strip()
    if not user_id or len(user_id) > 255 or not user_id.isprintable():
        return redirect(url_for("console.users"))
    return page("console/user.html", done=request.args.get("done"), **_user_view(user_id))


def _user_view(user_id: str) -> dict[str, Any]:
    ns = services().ns
    # The list is by prefix; a user's own accounts are the exact matches among them.
    found = ns.accounts(user=user_id, sort="-last_login_at", limit=200).get("accounts", [])
    return {
        "user_id": user_id,
        "accounts": [account for account in found if account.get("userid") == user_id],
        "sessions": ns.user_sessions(user_id),
        "profile": services().directory.get(user_id),
    }


def _back(user_id: str, done: str) -> Any:
    return redirect(url_for("console.user", id=user_id, done=done), code=303)


def _form_user() -> str:
    return field("user")


@blueprint.post("/user/block")
def block() -> Any:
    user_id, account_id = _form_user(), field("account")
    blocked = request.form.get("blocked") != "false"
    services().ns.block_account(account_id, blocked)
    log.info(
        "%s %s account %s of %s",
        operator().user.sub,
        "blocked" if blocked else "unblocked",
        account_id,
        user_id,
    )
    return _back(user_id, "blocked" if blocked else "unblocked")


@blueprint.post("/user/delete-account")
@admin_only
def delete_account() -> Any:
    user_id, account_id = _form_user(), field("account")
    asked = confirm(
        f"Delete account {account_id} of {user_id}?",
        {"user": user_id, "account": account_id},
        ["The phone's key for this server is forgotten for good, with its sessions and transactions.",
         "To use this phone again the user must enrol it again."],
    )  # fmt: skip
    if asked is not None:
        return asked
    services().ns.delete_account(account_id)
    log.info("%s deleted account %s of %s", operator().user.sub, account_id, user_id)
    return _back(user_id, "deleted")


@blueprint.post("/user/end-session")
def end_session() -> Any:
    user_id, hsid = _form_user(), field("hsid")
    services().ns.end_session(hsid)
    log.info("%s ended session %s… of %s", operator().user.sub, hsid[:8], user_id)
    return _back(user_id, "ended")


@blueprint.post("/user/end-all-sessions")
def end_all_sessions() -> Any:
    user_id = _form_user()
    ns = services().ns
    ended = sum(ns.end_session(session["hsid"]) for session in ns.user_sessions(user_id))
    log.info("%s ended %d sessions of %s", operator().user.sub, ended, user_id)
    return _back(user_id, "ended-all")


@blueprint.post("/user/invite")
def invite() -> Any:
    """An enrolment invite for this user (a new phone, or a lost one replaced): the link is shown this
    once, for the help desk to hand over; it works once and expires (ns's NEXTAUTH_NS_INVITE_TTL)."""
    user_id = _form_user()
    created = services().ns.create_invite(user_id)
    log.info("%s created enrolment invite %s for %s", operator().user.sub, created.get("invite"), user_id)
    link = services().url("/enrol/" + str(created["token"]))
    return page(
        "console/invite_created.html", user_id=user_id, link=link, expires_at=created.get("expires_at")
    )


@blueprint.get("/audit")
@admin_only
def audit() -> Any:
    """The audit trail, newest page first as ns keeps it (oldest first within a page), with filters."""
    query = {"limit": "100"}
    for name in ("user", "type", "since", "cursor"):
        value = request.args.get(name, "").strip()
        if value and len(value) <= 255 and value.isprintable():
            query[name] = value
    found = services().ns.audit_page(query)
    return page(
        "console/audit.html",
        events=found.get("events", []),
        next_cursor=found.get("next_cursor"),
        query=query,
        types=sorted(EVENT_TYPES),
    )


@blueprint.post("/user/profile")
@admin_only
def profile() -> Any:
    user_id = _form_user()
    groups = tuple(g.strip() for g in request.form.get("groups", "").split(",") if g.strip())
    email = request.form.get("email", "").strip() or None
    current = services().directory.get(user_id)
    try:
        services().directory.put(
            Profile(
                user_id=user_id,
                name=request.form.get("name", "").strip() or None,
                email=email,
                # A changed address has not been verified by anyone here.
                email_verified=current.email_verified and email == current.email,
                groups=groups,
            )
        )
    except ValueError as exc:
        return page("console/user.html", 400, error=str(exc), **_user_view(user_id))
    log.info("%s changed the profile of %s (groups %s)", operator().user.sub, user_id, ",".join(groups))
    return _back(user_id, "profile")


@blueprint.get("/consents")
@admin_only
def consents() -> Any:
    user_id = request.args.get("user", "").strip()
    found: list[dict[str, Any]] = []
    error = None
    if user_id:
        try:
            found = list_consents(services().engine, user_id=user_id)
        except ValueError as exc:
            error = str(exc)
    return page(
        "console/consents.html", user_id=user_id, consents=found, error=error, done=request.args.get("done")
    )


@blueprint.post("/consents/revoke")
@admin_only
def revoke() -> Any:
    user_id, client_id = _form_user(), field("client")
    asked = confirm(
        f"Revoke {user_id}'s consent to {client_id}?",
        {"user": user_id, "client": client_id},
        ["The client's refresh and access tokens for this user stop working; it must ask again."],
    )
    if asked is not None:
        return asked
    try:
        current_app.extensions["nextauth_oidc"].revoke_consent(user_id, client_id)
    except ValueError as exc:
        return page("console/error.html", 400, message=str(exc))
    log.info("%s revoked the consent of %s to %s", operator().user.sub, user_id, client_id)
    return redirect(url_for("console.consents", user=user_id, done="revoked"), code=303)


def _whole(text: str | None) -> int:
    return int(text) if text and only_digits(text) and len(text) < 9 else 0
