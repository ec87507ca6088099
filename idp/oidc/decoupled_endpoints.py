"""The HTTP side of the decoupled flows, where the person approves on another device than the one asking:
CIBA's backchannel authentication endpoint (``idp.oidc.ciba``), and the device grant's authorization
endpoint and verification pages (``idp.oidc.device``). The token endpoint is the provider's own."""

import hmac
import logging
import secrets
import time
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from authserver.ratelimit import RateLimited, client_key
from idp.context import current_user, login_redirect, remember_login_context, services
from idp.i18n import N_
from idp.oidc import ciba
from idp.oidc.device import PendingDevice, display_user_code, normalise_user_code
from idp.oidc.endpoints import SCOPE_TEXT, provider
from idp.oidc.tokens import Grant
from idp.origin import from_another_site

log = logging.getLogger("nextauth.idp.oidc")

blueprint = Blueprint("oidc_decoupled", __name__)
CROSS_SITE = ("oidc_decoupled.backchannel_authentication", "oidc_decoupled.device_authorization")


@blueprint.post("/oidc/backchannel-authentication")
def backchannel_authentication() -> Any:
    return ciba.authentication_response(provider())


@blueprint.post("/oidc/device-authorization")
def device_authorization() -> Any:
    return provider().server.create_endpoint_response("device_authorization")


# -- the verification page: enter the code, log in with the phone, allow ---------------------------------


@blueprint.route("/device", methods=["GET", "POST"])
def device() -> Any:
    typed = (request.values.get("user_code") or "")[:32]
    if request.method == "GET":
        return render_template("device.html", user_code=typed)
    if not _count_code_entry():
        return render_template(
            "device.html",
            user_code=typed,
            error=N_("Too many codes were tried from your network. Wait a minute."),
        ), 429
    code = normalise_user_code(typed)
    pending = PendingDevice(provider(), code) if code else None
    if pending is None or not pending.valid or pending.client is None:
        log.info("a device user code was not accepted")
        return render_template(
            "device.html",
            user_code=typed,
            error=N_("That code is not valid or has expired. Check the device."),
        ), 400
    assert code is not None
    # The phone shows the device's code next to the application's name: the person compares them there.
    # The fresh login must come after this moment. It travels signed (logging in starts a new session
    # cookie), so that a browser already logged in cannot skip the phone, where the code shows, by editing
    # the URL.
    started = _started_signer().dumps({"user_code": code, "at": time.time()})
    target = url_for("oidc_decoupled.device_confirm", user_code=code, started=started)
    remember_login_context(
        target, {"client_name": pending.client.name[:100], "user_code": display_user_code(code)}
    )
    # Always a new approval on the phone, even for a browser that is logged in: that is where the code shows.
    return login_redirect(target, reauth=current_user() is not None)


@blueprint.route("/device/confirm", methods=["GET", "POST"])
def device_confirm() -> Any:
    code = normalise_user_code(request.values.get("user_code") or "")
    started = _started_from(request.values.get("started", ""))
    user = current_user()
    if (
        user is None
        or code is None
        or started.get("user_code") != code
        or not isinstance(started.get("at"), int | float)
        or user.authenticated_at < started["at"]  # to the millisecond: not a login of the same second before
    ):
        return redirect(url_for("oidc_decoupled.device", user_code=code or ""))
    pending = PendingDevice(provider(), code) if code else None
    if code is None or pending is None or not pending.valid or pending.client is None:
        return render_template(
            "error.html", message=N_("This device code has expired or was used. Start again on the device.")
        ), 400
    client = pending.client
    if request.method == "POST":
        expected = session.pop("device_csrf", "")
        if (
            from_another_site()
            or not expected
            or not hmac.compare_digest(request.form.get("csrf", ""), expected)
        ):
            return render_template("error.html", message=N_("This form expired. Enter the code again.")), 400
        allowed = request.form.get("decision") == "allow"
        grant = (
            Grant(
                client_id=client.client_id,
                user_id=user.sub,
                scope=pending.scope,
                auth_time=user.auth_time,
                acr=user.acr,
                amr=user.amr,
            )
            if allowed
            else None
        )
        if not pending.decide(grant):
            return render_template("error.html", message=N_("This device code was used already.")), 400
        log.info("%s %s a device for %s", user.sub, "allowed" if allowed else "denied", client.client_id)
        return render_template("device_done.html", allowed=allowed, client=client)
    session["device_csrf"] = secrets.token_urlsafe(24)
    return render_template(
        "device_confirm.html",
        client=client,
        user=user,
        user_code=display_user_code(code),
        asked=[SCOPE_TEXT[s] for s in sorted(set(pending.scope.split()) - {"openid"}) if s in SCOPE_TEXT],
        action=url_for("oidc_decoupled.device_confirm", user_code=code, started=request.values["started"]),
        csrf=session["device_csrf"],
    )


def _started_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="nextauth-device-started")


def _started_from(token: str) -> dict[str, Any]:
    """The code and moment ``/device`` signed, if the signature holds and the code can still be alive."""
    try:
        started = _started_signer().loads(token[:512], max_age=3600)
    except BadSignature:
        return {}
    return started if isinstance(started, dict) else {}


def _count_code_entry() -> bool:
    limits = services().limits
    address = limits.client()
    try:
        limits.limiter.hit(
            limits.rules["device_user_code"], client_key(address), client=address, what="device codes tried"
        )
    except RateLimited:
        return False
    return True
