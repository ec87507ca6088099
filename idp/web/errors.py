"""The IdP's error pages and the headers every answer carries (the factory registers them on the app)."""

import logging
from typing import Any

from flask import Response, jsonify, render_template
from werkzeug.exceptions import TooManyRequests

from idp.ns_client import NsError
from idp.web.state import web_state

log = logging.getLogger("nextauth.idp")


def ns_error(error: NsError) -> Any:
    log.warning("ns answered %s %s", error.status, error.code)
    return render_template("error.html", message="The login service is unavailable. Try again shortly."), 503


def unauthenticated(_error: Any) -> Any:
    return jsonify(error="unauthenticated", message="Log in first."), 401


def too_many(error: TooManyRequests) -> Any:
    page = render_template("error.html", message=error.description or "Too many requests. Wait a moment.")
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return page, 429, headers


def too_large(_error: Any) -> Any:
    return render_template("error.html", message="The request is too large."), 413


def security_headers(response: Response) -> Response:
    """An ``after_request`` hook; a view that sets one of these headers itself keeps its own."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; connect-src 'self' {web_state().websocket_url}; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    )
    return response
