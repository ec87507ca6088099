"""Who may use the admin console, and how its forms are protected.

The console has no accounts of its own: a visitor logs in to the IdP like anyone else (QR or push), and
the IdP's directory decides what that person may do here. Membership is read from the directory on each
request rather than from the session token, so taking someone out of the group takes effect within the
directory's cache time instead of at the end of their session.

Every change is a POST carrying a token derived from the IdP session's id (so it differs per login and
needs no storage) and compared in constant time. ``SameSite=Lax`` cookies and the IdP's cross-site check
(``idp.origin``) stand in front of it; the token is what holds where those do not (old browsers, a
sibling subdomain).
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, g, render_template, request

from idp.context import current_user, login_redirect, services
from idp.csrf import form_token, form_token_valid
from idp.ns_client import NsError
from idp.sessions import SignedInUser

log = logging.getLogger("nextauth.idp.console")

ADMIN = "admin"
HELPDESK = "helpdesk"
CSRF_FIELD = "csrf"

blueprint = Blueprint("console", __name__, url_prefix="/admin")

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operator:
    user: SignedInUser
    role: str  # ADMIN or HELPDESK

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def operator() -> Operator:
    return g.console_operator  # type: ignore[no-any-return]


def role_of(groups: tuple[str, ...]) -> str | None:
    idp = services()
    if idp.admin_group in groups:
        return ADMIN
    if idp.helpdesk_group in groups:
        return HELPDESK
    return None


def csrf_token(sid: str) -> str:
    """Per IdP session: a new login gets a new token; a token seen by someone else dies with the session."""
    return form_token("console", sid)


def csrf_valid(sid: str, sent: str | None) -> bool:
    return form_token_valid("console", sid, sent)


@blueprint.before_request
def admit() -> Any:
    user = current_user()
    if user is None:
        # A form posted after the session ended cannot be replayed after login; its page can be shown again.
        target = request.full_path if request.method == "GET" else "/admin/"
        return login_redirect(target.rstrip("?"))
    role = role_of(services().directory.get(user.sub).groups)
    if role is None:
        log.warning("refused the admin console to %s: in neither console group", user.sub)
        return page("console/forbidden.html", 403, reason="You are not in a group that may use the console.")
    g.console_operator = Operator(user, role)
    if request.method == "POST" and not csrf_valid(user.sid, request.form.get(CSRF_FIELD)):
        log.warning("refused a console form from %s: missing or wrong CSRF token", user.sub)
        return page(
            "console/error.html",
            400,
            message="This form is out of date (or came from elsewhere). Open the page again and retry.",
        )
    return None


@blueprint.after_request
def no_store(response: Response) -> Response:
    # Pages list users, sessions and keys; a key's secret is on one of them. Nothing here is for a cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def admin_only(view: View) -> View:
    """For the views the help desk may not use: the page and its forms alike."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        who = operator()
        if not who.is_admin:
            log.warning("refused %s %s to help desk user %s", request.method, request.path, who.user.sub)
            return page("console/forbidden.html", 403, reason="This needs the console's admin group.")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    who: Operator | None = g.get("console_operator")
    return render_template(
        template,
        operator=who,
        csrf=csrf_token(who.user.sid) if who else "",
        admin_group=services().admin_group,
        helpdesk_group=services().helpdesk_group,
        **context,
    ), status


def confirm(
    question: str, fields: dict[str, str], details: list[str] | None = None
) -> tuple[str, int] | None:
    """A destructive form's first POST answers a page that asks; only its second POST (``confirm=yes``)
    goes through. None when confirmed."""
    if request.form.get("confirm") == "yes":
        return None
    return page("console/confirm.html", question=question, fields=fields, details=details or [])


ROLE_NEEDED = re.compile(r"(?:lacks|needs) the '([a-z]+)' role")


@blueprint.errorhandler(NsError)
def ns_failed(error: NsError) -> Any:
    log.warning("console: ns answered %s %s", error.status, error.code)
    if error.status == 403:
        found = ROLE_NEEDED.search(error.message)
        role = found.group(1) if found else "a further"
        message = (
            f"The IdP's API key for ns (NEXTAUTH_IDP_NS_API_KEY) lacks the '{role}' role, so the console "
            f"cannot do this. Give the IdP a key with the '{role}' role (held for every server where a "
            "list of all servers or API keys is concerned)."
        )
    elif error.status == 401:
        message = "ns refused the IdP's API key (NEXTAUTH_IDP_NS_API_KEY)."
    elif error.status in (400, 404, 409):
        message = f"ns refused: {error.message or error.code}"
    else:
        message = "ns cannot be reached or failed. Try again shortly."
    status = error.status if error.status in (400, 403, 404, 409) else 502
    return page("console/error.html", status, message=message)


class BadForm(Exception):
    """A form without a field it needs: the page it came from was not ours or is out of date."""


def field(name: str, limit: int = 255) -> str:
    """A form field the action needs: present, printable (it is logged), not over ``limit``."""
    value = request.form.get(name, "").strip()
    if not value or len(value) > limit or not value.isprintable():
        raise BadForm(name)
    return value


@blueprint.errorhandler(BadForm)
def bad_form(_error: BadForm) -> Any:
    return page("console/error.html", 400, message="The form was incomplete. Open the page again.")


@blueprint.app_template_filter("console_time")
def console_time(value: str | None, empty: str = "") -> str:
    """ns's ISO 8601 UTC times to the minute, as people read them."""
    return f"{value[:16].replace('T', ' ')} UTC" if value else empty
