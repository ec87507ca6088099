"""Self-service enrolment through an invite: ``/enrol/<token>`` (the link an operator or application sent).

``GET`` only looks at the invite, so a mail client or chat app that fetches links to preview them does not
use it up; the person presses the button (``POST``), which redeems the invite at ns and starts an ordinary
enrolment for the invite's user: never for a user named in the request. The page then shows the enrolment
QR, the visual hash of the server's key (the app shows the same picture) and asks for the code the phone
shows, which ns checks. Every page here is counted per client address (``enrol`` rate limit): strangers
reach them, and each guess at a token costs a lookup at ns.

A token that opens nothing and a revoked one get the same page, so a link's holder cannot learn that an
invite once existed.
"""

import logging
from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext

from authserver.ratelimit import RateLimited, client_key
from idp.context import services
from idp.i18n import N_
from idp.ns_client import NsError
from idp.ratelimits import refuse
from idp.web.login import qr_svg
from nextauth_core.digits import only_digits
from nextauth_core.visualhash import visual_hash

log = logging.getLogger("nextauth.idp")

blueprint = Blueprint("enrol", __name__)

SESSION_KEY = "enrolment"
MAX_TOKEN_LENGTH = 100  # ns makes 76 characters; anything far longer is no token
PAGES = {
    "unknown": (
        404,
        N_("This invite link is not valid. Check that you copied all of it, or ask for a new one."),
    ),
    "used": (410, N_("This invite link was used already. Each link works once: ask for a new one.")),
    "expired": (410, N_("This invite link has expired. Ask for a new one.")),
}
NS_REFUSALS = {"not_found": "unknown", "invite_used": "used", "invite_expired": "expired"}


def count_visit() -> None:
    limits = services().limits
    client = limits.client()
    try:
        limits.limiter.hit(limits.rules["enrol"], client_key(client), client=client)
    except RateLimited as exc:
        refuse(
            exc, N_("Too many enrolment pages were asked for from your network. Wait a moment and reload.")
        )


def refused(state: str) -> Any:
    status, message = PAGES[state]
    return render_template("enrol_refused.html", message=message), status


@blueprint.get("/enrol/<token>")
def invite(token: str) -> Any:
    count_visit()
    if len(token) > MAX_TOKEN_LENGTH:
        return refused("unknown")
    status = services().ns.invite_status(token)
    state = str(status.get("state"))
    if state != "valid":
        return refused(state if state in PAGES else "unknown")
    return render_template("enrol_start.html", token=token, userid=status["userid"])


@blueprint.post("/enrol/<token>")
def start(token: str) -> Any:
    count_visit()
    if len(token) > MAX_TOKEN_LENGTH:
        return refused("unknown")
    try:
        started = services().ns.redeem_invite(token)
    except NsError as exc:
        if exc.code in NS_REFUSALS:
            return refused(NS_REFUSALS[exc.code])
        raise
    log.info("invite %s redeemed: enrolment %s started", started["invite"], started["enrolment"])
    # The enrolment stays with this browser only: its QR and its code step are this cookie's.
    session[SESSION_KEY] = {
        "id": started["enrolment"],
        "userid": started["userid"],
        "qrdata": started["qrdata"],
        "server": started["server"]["name"],
        "public_key": started["server"]["public_key"],
    }
    return redirect(url_for("enrol.enrolment"), code=303)


def _current() -> dict[str, Any] | None:
    current = session.get(SESSION_KEY)
    return current if isinstance(current, dict) and isinstance(current.get("id"), str) else None


def enrolment_page(current: dict[str, Any], error: str | None = None, status: int = 200) -> Any:
    shown = visual_hash(bytes.fromhex(current["public_key"]))
    page = render_template(
        "enrol.html",
        userid=current["userid"],
        server=current["server"],
        qr=qr_svg(current["qrdata"]),
        qrdata=current["qrdata"],
        visual=shown.to_svg(title=gettext("Visual hash of %(server)s", server=current["server"])),
        colour=shown.colour,
        words=" ".join(shown.words),
        error=error,
    )
    return page, status


def _still_waiting(enrolment_id: str) -> bool:
    """A code sent before the phone scanned: the enrolment goes on, the page says what to do first."""
    try:
        state = services().ns.enrolment(enrolment_id).get("state")
    except NsError:
        return False
    return state in ("pending", "scanned")


@blueprint.get("/enrol/")
def enrolment() -> Any:
    count_visit()
    current = _current()
    if current is None:
        return render_template("enrol_refused.html", message=N_("No enrolment is in progress here.")), 404
    return enrolment_page(current)


@blueprint.post("/enrol/")
def confirm() -> Any:
    count_visit()
    current = _current()
    if current is None:
        return render_template("enrol_refused.html", message=N_("No enrolment is in progress here.")), 404
    code = "".join(request.form.get("code", "").split())
    if not (len(code) == 6 and only_digits(code)):
        return enrolment_page(current, N_("Type the six digits your phone shows."), 400)
    try:
        done = services().ns.confirm_enrolment(current["id"], code)
    except NsError as exc:
        if exc.code == "wrong_code":
            return enrolment_page(current, N_("That is not the code your phone shows. Try again."), 400)
        if exc.code == "not_confirmable" and _still_waiting(current["id"]):
            return enrolment_page(current, N_("Scan the code with the nextAuth app first."), 409)
        if exc.code in ("failed", "not_confirmable", "not_found"):
            session.pop(SESSION_KEY, None)
            message = N_(
                "This enrolment cannot be finished (too many wrong codes, or it expired). "
                "Ask for a new invite."
            )
            return render_template("enrol_refused.html", message=message), 409
        raise
    session.pop(SESSION_KEY, None)
    log.info("enrolment %s completed through an invite: account %s", done["enrolment"], done["accountid"])
    return render_template("enrol_done.html", userid=done["userid"], server=current["server"])
