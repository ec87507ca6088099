"""``POST /login/push``: a push to the phones of the user named in the form; the page shows the number
to pick there.

The answer is the same whether or not the user exists or has push (no way to probe for users), and pushes
are limited per browser and per user so nobody can wear a person down with requests.
"""

import hashlib
import logging
import secrets
from typing import Any

from flask import Blueprint, jsonify, request
from flask_babel import gettext

from authserver.ratelimit import RateLimited, client_key
from idp.context import services
from idp.ns_client import NsError
from idp.web.login import login_page, safe_next
from idp.web.prelogin import nonce

log = logging.getLogger("nextauth.idp")

blueprint = Blueprint("push", __name__)


@blueprint.post("/login/push")
def push() -> Any:
    target = safe_next(request.form.get("next"))
    username = (request.form.get("username") or "").strip()
    if not username or len(username) > 255 or not username.isprintable():
        return _answer(target, 400, gettext("Enter your username."), "error")
    idp = services()
    client, rules, limiter = idp.limits.client(), idp.limits.rules, idp.limits.limiter
    try:
        limiter.hit(rules["push_client"], client_key(client), client=client)
        browser_key = hashlib.sha256(nonce().encode()).hexdigest()
        limiter.hit(rules["push_browser"], browser_key, client=client, what="pushes from one browser")
        user_key = hashlib.sha256(username.encode()).hexdigest()
        limiter.hit(rules["push_user"], user_key, client=client, what="pushes to one user")
    except RateLimited as exc:
        return _answer(
            target,
            429,
            gettext("Too many requests. Wait a minute, or scan the code instead."),
            "error",
            headers={"Retry-After": str(exc.retry_after)},
        )
    try:
        pushed = idp.ns.provoke_user(
            username,
            nonce(),
            client_ip=request.remote_addr or "",
            user_agent=request.headers.get("User-Agent", ""),
        )
        number = int(pushed["number"])
    except NsError as exc:
        if exc.status not in (404, 409):
            log.warning("push for a login failed: %s", exc.code)
            return _answer(
                target, 502, gettext("Your phone could not be reached. Scan the code instead."), "error"
            )
        # No such user, or no phone with push: answer as if sent (see above), with a number.
        log.info("push requested for a user without push accounts")
        number = secrets.randbelow(90) + 10
    return _answer(target, 200, gettext("Open the request on your phone and pick this number:"), "ok", number)


def _answer(
    target: str, status: int, message: str, kind: str = "", number: int | None = None, headers: Any = None
) -> Any:
    """JSON for the page's script; the login page with the message for a browser without it."""
    if request.accept_mimetypes.best == "application/json":
        return jsonify(message=message, kind=kind, number=number), status, headers
    key = request.form.get("login_key")
    page = login_page(target, key, push_message=message, push_kind=kind, number=number)
    return page, status, headers
