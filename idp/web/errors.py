"""The IdP's error pages and the headers every answer carries (the factory registers them on the app).

Every error a browser can meet gets the IdP's own page: what happened, and what to do now. A stack trace
or a framework's default page never reaches the browser; the log keeps the details.
"""

import logging
from typing import Any

from flask import Response, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException, TooManyRequests

from idp.i18n import N_
from idp.ns_client import NsError
from idp.web.state import web_state

log = logging.getLogger("nextauth.idp")


def page(status: int, heading: str, message: str, advice: str = "", headers: Any = None) -> Any:
    """The error page; texts are catalog entries (``N_``), translated on the page."""
    body = render_template("error.html", heading=heading, message=message, advice=advice)
    return body, status, {"Cache-Control": "no-store", **(headers or {})}


def ns_error(error: NsError) -> Any:
    log.warning("ns answered %s %s", error.status, error.code)
    return page(
        503,
        N_("The login service cannot be reached"),
        N_("The login service is unavailable. Try again shortly."),
        N_("Wait a minute, then reload this page. If it keeps happening, tell your support desk."),
    )


def unauthenticated(_error: Any) -> Any:
    return jsonify(error="unauthenticated", message=gettext("Log in first.")), 401


def too_many(error: TooManyRequests) -> Any:
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return page(
        429,
        N_("Too many requests"),
        error.description or N_("Too many requests. Wait a moment."),
        headers=headers,
    )


def too_large(_error: Any) -> Any:
    return page(413, N_("Something went wrong"), N_("The request is too large."))


def not_found(_error: Any) -> Any:
    return page(
        404,
        N_("Page not found"),
        N_("There is no page at this address."),
        N_("Check the address, or start again from the application you came from."),
    )


def method_not_allowed(error: HTTPException) -> Any:
    response = page(
        405,
        N_("This page cannot be used this way"),
        N_("The browser sent a kind of request this address does not take."),
        N_("Go back to the application you came from and start again."),
    )
    allowed = error.get_response().headers.get("Allow")
    if allowed:
        response[2]["Allow"] = allowed
    return response


def insecure_transport(_error: Exception) -> Any:
    """OAuth over plain HTTP to an address other than this machine's: Authlib refuses it (RFC 6749 3.1).
    Only an IdP whose public URL is http:// meets this; say so instead of "something went wrong"."""
    log.warning(
        "OpenID Connect refused a request over http to %s: give the IdP an https:// address "
        "(NEXTAUTH_IDP_PUBLIC_URL, TLS at a proxy in front is fine)",
        request.host,
    )
    if request.endpoint == "oidc.authorize" or request.accept_mimetypes.accept_html:
        return page(
            400,
            N_("This login needs a secure connection"),
            N_("This login service is reached over an unencrypted connection. OpenID Connect forbids that."),
            N_("Tell the administrator of this login service; they need to give it an https:// address."),
        )
    description = "OpenID Connect needs https: this IdP's public address is http://, and not on this machine."
    return jsonify(error="insecure_transport", error_description=description), 400


def internal_error(error: Exception) -> Any:
    """Anything unhandled: logged with its trace here, a plain page for the browser."""
    original = getattr(error, "original_exception", None) or error
    if isinstance(original, HTTPException):
        return original
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
    return page(
        500,
        N_("Something went wrong"),
        N_("The login service ran into a problem and could not finish this request."),
        N_("Try again in a moment. If it keeps happening, tell your support desk."),
    )


def security_header_values(websocket_url: str) -> list[tuple[str, str]]:
    """What every answer of the IdP carries unless its view set its own (also forward-auth's fast path)."""
    return [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        (
            "Content-Security-Policy",
            f"default-src 'self'; connect-src 'self' {websocket_url}; img-src 'self' data:; "
            "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    ]


def security_headers(response: Response) -> Response:
    """An ``after_request`` hook; a view that sets one of these headers itself keeps its own."""
    for name, value in security_header_values(web_state().websocket_url):
        response.headers.setdefault(name, value)
    return response
