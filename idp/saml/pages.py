"""The few pages SAML needs: the auto-submitting form of the HTTP-POST binding, errors, "logged out"."""

from flask import make_response, render_template
from flask_babel import gettext
from werkzeug.wrappers import Response

from idp.i18n import N_
from idp.saml.errors import SamlError


def _no_store(response: Response) -> Response:
    # A SAML message is single-use and personal: never kept by a cache or the back button.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def post_form(
    action: str, fields: dict[str, str], *, heading: str = N_("Continuing to the application")
) -> Response:
    """The HTTP-POST binding: a form the browser submits to ``action`` (by script, or by the button)."""
    return _no_store(
        make_response(render_template("saml_post.html", action=action, fields=fields, heading=heading))
    )


def error_page(error: SamlError) -> Response:
    return _no_store(
        make_response(
            render_template("saml_error.html", message=gettext(error.text, **error.params)), error.status
        )
    )


def logged_out(*, reached: list[str], missed: list[str]) -> Response:
    """The end of single logout: which applications were told, and which could not be reached."""
    page = render_template("saml_logged_out.html", reached=reached, missed=missed)
    return _no_store(make_response(page))


def logout_progress(
    *,
    frames: list[tuple[int, str, str]],
    status_url: str,
    done_url: str,
    wait_seconds: int,
    frame_origins: list[str],
) -> Response:
    """The page that logs out of every front-channel SP at once: one hidden frame each, then the result
    (by script as soon as all answered, or by the refresh after ``wait_seconds`` without script)."""
    page = render_template(
        "logout_progress.html",
        frames=frames,
        status_url=status_url,
        done_url=done_url,
        wait_seconds=wait_seconds,
    )
    response = _no_store(make_response(page))
    response.headers["Refresh"] = f"{wait_seconds}; url={done_url}"
    # The frames load our own /saml/logout/frame first, which sends them on to the SPs' endpoints.
    sources = " ".join(["'self'", *frame_origins])
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"connect-src 'self'; frame-src {sources}; frame-ancestors 'none'"
    )
    return response


def frameable(response: Response) -> Response:
    """A page a frame of the logout page shows: framing allowed by the IdP's own pages only."""
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'self'"
    )
    return _no_store(response)


def frame_answered(name: str, success: bool) -> Response:
    return make_response(render_template("logout_frame_done.html", name=name, success=success))


def frame_redirect(url: str, name: str) -> Response:
    """The HTTP-Redirect binding inside a frame: a page whose script (or link) goes on to ``url``."""
    return make_response(render_template("logout_frame_redirect.html", url=url, name=name))
