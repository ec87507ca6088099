""" "My account" (``/account/``): a logged-in person sees and manages what is theirs, and nothing else.

- **Devices**: their accounts at ns (one per enrolled phone). Removing one (a lost phone, from another
  phone's login) takes a confirmation page and a POST; adding one makes an invite for themself and sends
  the browser to the invite page (``idp.web.enrol``), which enrols the new phone as any invite does.
- **Sessions**: their logins at ns (the IdP's and those of other applications of this ns server); one or
  all others can be ended. The IdP notices that its own sessions ended at ns (``idp.ns_watch``).
- **Applications**: the OIDC clients they consented to (``idp.oidc.consents``), each revocable.

Who the person is comes only from the IdP session's verified token (``current_user``): every id a form
sends (an account, a session's hsid, a client id) must be one of that user's, looked up anew at ns or in
the consent table, so changing an id in the form reaches nobody else's. Every change is a POST with a
token bound to the IdP session (an HMAC of its sid under the app's secret key, compared in constant time):
a page of another site, or a form of another session, cannot make one. ``idp.origin`` refuses
cross-site posts before that, where the browser says where it comes from.

The phone that approved this very session is the one account ns names for the session; removing it is
refused (that would be removing the phone one is holding, by mistake, and end this session too).

Adding or removing a phone changes what can log in as the person, so it takes a recent approval in the
app (``RECENT_LOGIN_SECONDS``): a browser left logged in, or a stolen session cookie, cannot enrol a phone
of someone else's without the person's phone approving once more (the IdP's reauthentication, the same
session with a new authentication time).
"""

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import format_datetime
from werkzeug.wrappers import Response

from idp.context import current_user, login_redirect, services
from idp.csrf import form_token, form_token_valid
from idp.i18n import N_
from idp.ns_client import NsError
from idp.oidc.consents import list_consents, revoke_consent
from idp.sessions import SignedInUser
from idp.web import enrol
from nextauth_core.hsid import hsid_for

log = logging.getLogger("nextauth.idp")
security_log = logging.getLogger("nextauth.security")

blueprint = Blueprint("account", __name__)

HOME = "/account/"
INVITE_SECONDS = 15 * 60  # the invite is followed at once, in this browser: a short life is enough
RECENT_LOGIN_SECONDS = 10 * 60
MAX_FIELD = 255

# What the page says after a change (the query names one of these; nothing from the request is echoed).
DONE = {
    "device_removed": N_("The phone was removed. It can no longer log in as you."),
    "session_ended": N_("The session was ended."),
    "sessions_ended": N_("Your other sessions were ended."),
    "session_gone": N_("That session had ended already."),
    "reauthenticated": N_("Your phone confirmed it is you. Now do what you set out to do."),
    "consent_revoked": N_("Access for the application was revoked. It must ask you again."),
}
METHODS = {"qr": N_("QR code"), "push": N_("Request on the phone"), "app": N_("App on the phone")}

ACTIVITY_TYPES = ["login.succeeded", "login.failed"]
ACTIVITY_DAYS = 30
ACTIVITY_SHOWN = 10
ACTIVITY_PAGES = 5  # oldest first at ns: at most this many pages are read to reach the newest
REASONS = {
    "wrong_pin": N_("wrong PIN"),
    "locked": N_("app locked after too many wrong PINs"),
    "declined": N_("declined on the phone"),
    "blocked": N_("phone blocked"),
}


class Person:
    """The signed-in user of this request with what ns says of their session."""

    def __init__(self, user: SignedInUser, hsid: str | None, account: str | None) -> None:
        self.user = user
        self.hsid = hsid  # this browser's ns session, if the IdP knows its nonce
        self.account = account  # the account (phone) that approved it, if ns names it


def signed_in() -> Person | Response:
    """The person, or a redirect to the login page that comes back here. An IdP session whose ns
    session has ended (logged out from the phone, or by another page) is over here too."""
    idp = services()
    user = current_user()
    if user is None:
        return login_redirect(HOME)
    ns_nonce = idp.sessions.ns_nonce(user.sid)
    if ns_nonce is None:
        return Person(user, None, None)
    state = idp.ns.session(ns_nonce)
    if not state.get("loggedin"):
        idp.sessions.end(user.sid, by="ns")
        return login_redirect(HOME)
    account = state.get("accountid")
    return Person(user, hsid_for(ns_nonce), account if isinstance(account, str) else None)


def csrf_token(user: SignedInUser) -> str:
    """Bound to the IdP session: a token from another session (another user's) never fits this one."""
    return form_token("account", user.sid)


def checked_post() -> Person | Response:
    """A change: the person, after the form's token was checked; a refusal page otherwise."""
    person = signed_in()
    if not isinstance(person, Person):
        return person
    sent = request.form.get("csrf", "")
    if not form_token_valid("account", person.user.sid, sent):
        security_log.warning("a My account form without its session's token was refused")
        abort(refused(400, N_("This form has expired. Open My account again and repeat what you did.")))
    return person


def recent(person: Person) -> bool:
    return time.time() - person.user.auth_time <= RECENT_LOGIN_SECONDS


def refused(status: int, message: str) -> Response:
    page = render_template("error.html", message=message)
    return Response(page, status, {"Cache-Control": "no-store"}, mimetype="text/html")


def field(name: str) -> str:
    value = request.form.get(name, "") or request.args.get(name, "")
    return value if 0 < len(value) <= MAX_FIELD and value.isprintable() else ""


def when(text: str | None) -> str:
    """An ns or database time (ISO 8601), in the page's language."""
    if not text:
        return ""
    try:
        return str(format_datetime(datetime.fromisoformat(text), "medium"))
    except ValueError:
        return ""


def devices(person: Person) -> list[dict[str, Any]]:
    accounts = services().ns.user_accounts(person.user.sub)
    accounts.sort(key=lambda a: str(a.get("created_at", "")))
    return [
        {
            "id": a["accountid"],
            "short": str(a["accountid"])[:6],
            "enrolled": when(a.get("created_at")),
            "last_used": when(a.get("last_login_at")),
            "blocked": bool(a.get("blocked")),
            "current": a["accountid"] == person.account,
        }
        for a in accounts
    ]


def sessions(person: Person, phones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shorts = {d["id"]: d["short"] for d in phones}
    rows = services().ns.user_sessions(person.user.sub)
    rows.sort(key=lambda s: str(s.get("created_at", "")), reverse=True)
    return [
        {
            "hsid": s["hsid"],
            "started": when(s.get("created_at")),
            "method": METHODS.get(str(s.get("method")), N_("Other")),
            "phone": shorts.get(s.get("accountid"), ""),
            "current": s["hsid"] == person.hsid,
        }
        for s in rows
    ]


def applications(person: Person) -> list[dict[str, Any]]:
    return [
        {
            "client_id": c["client_id"],
            "name": c["client_name"] or c["client_id"],
            "granted": when(c["granted_at"]),
        }
        for c in list_consents(services().engine, user_id=person.user.sub)
    ]


def activity(person: Person, phones: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The newest logins and refused logins of the person; None when the trail cannot be read here
    (the IdP's key lacks the ``audit`` role, or ns does not answer)."""
    shorts = {d["id"]: d["short"] for d in phones}
    since = (datetime.now(UTC) - timedelta(days=ACTIVITY_DAYS)).isoformat()
    ns = services().ns
    events: list[dict[str, Any]] = []
    cursor = None
    try:
        for _ in range(ACTIVITY_PAGES):
            page = ns.audit_events(person.user.sub, ACTIVITY_TYPES, since, cursor=cursor)
            events = (events + list(page.get("events", [])))[-ACTIVITY_SHOWN:]
            cursor = page.get("next_cursor")
            if cursor is None:
                break
    except NsError as exc:  # the rest of the page is still worth showing
        log.warning("My account cannot read the audit trail: %s %s", exc.status, exc.code)
        return None
    shown = []
    for event in reversed(events):
        data = event.get("data") or {}
        ok = str(event.get("type", "")).endswith("login.succeeded")
        reason = str(data.get("reason", ""))
        shown.append(
            {
                "when": when(event.get("time")),
                "ok": ok,
                "what": N_("Logged in") if ok else N_("Login refused"),
                "detail": METHODS.get(str(data.get("method")), "")
                if ok
                else REASONS.get(reason, N_("Other")),
                "phone": shorts.get(data.get("account"), ""),
            }
        )
    return shown


@blueprint.get(HOME)
def home() -> Any:
    person = signed_in()
    if not isinstance(person, Person):
        return person
    phones = devices(person)
    logins = sessions(person, phones)
    page = render_template(
        "account.html",
        user=person.user,
        devices=phones,
        sessions=logins,
        applications=applications(person),
        activity=activity(person, phones),
        current_known=person.account is not None,
        others=any(not s["current"] for s in logins),
        csrf=csrf_token(person.user),
        done=DONE.get(request.args.get("done", "")),
    )
    return page, 200, {"Cache-Control": "no-store"}


def back(done: str) -> Response:
    return redirect(url_for("account.home", done=done), code=303)


def own_device(person: Person, account_id: str) -> dict[str, Any]:
    """One of the person's phones; the same 404 page for someone else's and for none at all."""
    found = next((d for d in devices(person) if d["id"] == account_id), None) if account_id else None
    if found is None:
        security_log.warning("%s asked to remove an account that is not theirs", person.user.sub)
        abort(refused(404, N_("This phone is not one of yours, or it was removed already.")))
    if found["current"]:
        abort(
            refused(
                409,
                N_(
                    "This is the phone you logged in with for this session. Log in with another of your "
                    "phones to remove it."
                ),
            )
        )
    return found


@blueprint.get("/account/devices/remove")
def confirm_removal() -> Any:
    """The confirmation step: a GET shows what would be removed and changes nothing."""
    person = signed_in()
    if not isinstance(person, Person):
        return person
    device = own_device(person, field("account"))
    if not recent(person):  # back to this very page once the phone has approved again
        return login_redirect(url_for("account.confirm_removal", account=device["id"]), reauth=True)
    page = render_template(
        "account_remove.html",
        device=device,
        current_known=person.account is not None,
        csrf=csrf_token(person.user),
    )
    return page, 200, {"Cache-Control": "no-store"}


@blueprint.post("/account/devices/remove")
def remove_device() -> Any:
    person = checked_post()
    if not isinstance(person, Person):
        return person
    device = own_device(person, field("account"))
    if not recent(person):
        return login_redirect(url_for("account.confirm_removal", account=device["id"]), reauth=True)
    services().ns.delete_account(device["id"])
    security_log.info("%s removed their account %s at My account", person.user.sub, device["id"])
    return back("device_removed")


@blueprint.post("/account/devices/add")
def add_device() -> Any:
    person = checked_post()
    if not isinstance(person, Person):
        return person
    if not recent(person):  # a GET brings the browser back: it presses the button again
        return login_redirect(url_for("account.home", done="reauthenticated"), reauth=True)
    enrol.count_visit()  # each invite is a row at ns: counted with the invite pages
    created = services().ns.create_invite(person.user.sub, INVITE_SECONDS)
    log.info("%s made an invite %s for another phone at My account", person.user.sub, created["invite"])
    return redirect(url_for("enrol.invite", token=created["token"]), code=303)


@blueprint.post("/account/sessions/end")
def end_session() -> Any:
    person = checked_post()
    if not isinstance(person, Person):
        return person
    hsid = field("session")
    owned = {s["hsid"] for s in services().ns.user_sessions(person.user.sub)}
    if hsid not in owned:
        security_log.warning("%s asked to end a session that is not theirs (or has ended)", person.user.sub)
        return back("session_gone")
    if hsid == person.hsid:
        abort(refused(409, N_("To end the session of this browser, log out.")))
    ended = services().ns.end_session(hsid)
    return back("session_ended" if ended else "session_gone")


@blueprint.post("/account/sessions/end-others")
def end_other_sessions() -> Any:
    person = checked_post()
    if not isinstance(person, Person):
        return person
    ns = services().ns
    for each in ns.user_sessions(person.user.sub):
        if each["hsid"] != person.hsid:
            ns.end_session(each["hsid"])
    security_log.info("%s ended their other sessions at My account", person.user.sub)
    return back("sessions_ended")


@blueprint.post("/account/applications/revoke")
def revoke_application() -> Any:
    person = checked_post()
    if not isinstance(person, Person):
        return person
    client_id = field("client")
    idp = services()
    if client_id not in {c["client_id"] for c in list_consents(idp.engine, user_id=person.user.sub)}:
        abort(refused(404, N_("You have not allowed this application, or its access was revoked already.")))
    oidc = current_app.extensions.get("nextauth_oidc")
    if oidc is not None:
        oidc.revoke_consent(person.user.sub, client_id)
    else:  # no OIDC provider in this IdP: consents and refresh tokens are all there is
        revoke_consent(idp.engine, person.user.sub, client_id, idp.kv)
    security_log.info("%s revoked the consent of %s at My account", person.user.sub, client_id)
    return back("consent_revoked")
