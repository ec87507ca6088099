"""The browser's pre-login cookie: a random nonce in the Flask session that names the browser's ns session.

ns knows the login by that nonce; the IdP only asks ns about it (its state and QR), and tells ns when a
session the nonce names is logged out.
"""

import logging
import secrets
from typing import Any

from flask import request, session

from idp.context import services
from idp.ns_client import NsError

log = logging.getLogger("nextauth.idp")


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def nonce() -> str:
    if "nonce" not in session:
        session["nonce"] = new_nonce()
        session.permanent = True
    return str(session["nonce"])


def ns_session() -> dict[str, Any]:
    return services().ns.session(
        nonce(), client_ip=request.remote_addr or "", user_agent=request.headers.get("User-Agent", "")
    )


def logout_at_ns(ns_nonce: str) -> None:
    try:
        services().ns.logout(ns_nonce)
    except NsError as exc:
        log.warning("ns logout failed: %s", exc.code)
