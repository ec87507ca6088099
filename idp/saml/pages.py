"""The few pages SAML needs: the auto-submitting form of the HTTP-POST binding, errors, "logged out"."""

from flask import make_response, render_template
from werkzeug.wrappers import Response

from idp.saml.errors import SamlError


def _no_store(response: Response) -> Response:
    # A SAML message is single-use and personal: never kept by a cache or the back button.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def post_form(
    action: str, fields: dict[str, str], *, heading: str = "Continuing to the application"
) -> Response:
    """The HTTP-POST binding: a form the browser submits to ``action`` (by script, or by the button)."""
    return _no_store(
        make_response(render_template("saml_post.html", action=action, fields=fields, heading=heading))
    )


def error_page(error: SamlError) -> Response:
    return _no_store(make_response(render_template("saml_error.html", message=error.message), error.status))


def logged_out(*, partial: bool) -> Response:
    return _no_store(make_response(render_template("saml_logged_out.html", partial=partial)))
