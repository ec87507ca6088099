"""The SAML blueprint: metadata, SSO and SLO endpoints. Each route only translates HTTP to ``sso``/``slo``.

Every refusal is a ``SamlError`` and ends on the error page with its message; anything unexpected is logged
and shown as a generic error, never as a stack trace.
"""

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, jsonify, make_response, redirect, request, session
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from idp.context import EXTENSION as IDP_EXTENSION
from idp.context import current_user, login_redirect, services
from idp.i18n import N_
from idp.saml import bindings, config, idpmetadata, pages, slo, sso
from idp.saml.config import saml
from idp.saml.errors import SamlError
from nextauth_core.digits import only_digits

log = logging.getLogger("nextauth.idp.saml")

blueprint = Blueprint("saml", __name__)


@blueprint.record_once
def _setup(state: BlueprintSetupState) -> None:
    idp = state.app.extensions[IDP_EXTENSION]
    context = config.build(idp, state.app.secret_key or b"")
    state.app.extensions[config.EXTENSION] = context
    idp.sessions.on_end.append(slo.listener(context))


@blueprint.errorhandler(SamlError)
def _refused(error: SamlError) -> Response:
    log.warning("SAML request refused: %s%s", error.message, f" ({error.detail})" if error.detail else "")
    return pages.error_page(error)


@blueprint.errorhandler(Exception)
def _failed(error: Exception) -> Any:
    if isinstance(error, HTTPException):
        return error
    log.exception("SAML request failed")
    return pages.error_page(
        SamlError(N_("The IdP could not handle this request. Try again later."), status=500)
    )


@blueprint.get(config.METADATA)
def metadata() -> Response:
    response = make_response(idpmetadata.build(saml()))
    response.headers["Content-Type"] = "application/samlmetadata+xml"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# -- single sign-on ------------------------------------------------------------------------------------


def _sso(incoming: bindings.Incoming, path: str) -> Response:
    pending = sso.accept(saml(), incoming, saml().url(path))
    key = sso.store(saml(), pending)
    # Even a logged-in browser goes through here: a cross-site POST carries no Lax cookie, this GET does.
    return redirect(f"{config.SSO_CONTINUE}?k={key}", 303)


@blueprint.get(config.SSO_REDIRECT)
def sso_redirect() -> Response:
    return _sso(bindings.read_redirect(request.query_string), config.SSO_REDIRECT)


@blueprint.post(config.SSO_POST)
def sso_post() -> Response:
    return _sso(bindings.read_post(request.form.to_dict()), config.SSO_POST)


def sp_display_name(entity_id: str) -> str:
    """What the login page and the phone call an SP: its metadata's display name, else its host."""
    sp = saml().registry.get(entity_id)
    if sp is not None and sp.metadata.display_name:
        return sp.metadata.display_name
    return urlsplit(entity_id).hostname or entity_id


@blueprint.get(config.SSO_CONTINUE)
def sso_continue() -> Response:
    key = request.args.get("k", "")
    pending = sso.load(saml(), key, take=False)
    user = current_user()
    # ForceAuthn: a login approved in the app after the request, even inside a running session.
    stale = user is not None and pending.force_authn and user.authenticated_at < pending.received_at
    if user is None or stale:
        if pending.is_passive:
            sso.load(saml(), key, take=True)
            return _to_acs(pending, sso.no_passive(saml(), pending))
        return login_redirect(
            f"{config.SSO_CONTINUE}?k={key}", reauth=stale, asking=sp_display_name(pending.sp)
        )
    # Taken only now: the request stays usable while the user logs in, and is answered once.
    pending = sso.load(saml(), key, take=True)
    return _to_acs(pending, sso.answer(saml(), pending, user))


def _to_acs(pending: sso.PendingLogin, xml: str) -> Response:
    fields = {"SAMLResponse": bindings.post_value(xml)}
    if pending.relay_state is not None:
        fields["RelayState"] = pending.relay_state
    return pages.post_form(pending.acs, fields)


# -- single logout -------------------------------------------------------------------------------------


def _slo(incoming: bindings.Incoming, path: str) -> Response:
    endpoint_url = saml().url(path)
    if incoming.field == "SAMLResponse":
        return slo.handle_response(saml(), incoming, endpoint_url)
    browser = current_user()
    response, ended = slo.handle_request(saml(), incoming, endpoint_url)
    if browser is not None and browser.sid in ended:
        _forget_browser(response)
    return response


def _forget_browser(response: Response) -> None:
    idp = services()
    session.pop("nonce", None)
    response.delete_cookie(idp.cookie_name, domain=idp.cookie_domain)


@blueprint.get(config.SLO_REDIRECT)
def slo_redirect() -> Response:
    return _slo(bindings.read_redirect(request.query_string), config.SLO_REDIRECT)


@blueprint.post(config.SLO_POST)
def slo_post() -> Response:
    return _slo(bindings.read_post(request.form.to_dict()), config.SLO_POST)


def _from_another_site() -> bool:
    """A form on another site posting here (logout CSRF): browsers say so in Origin or Sec-Fetch-Site."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null":
        parts = urlsplit(services().issuer)
        if origin != f"{parts.scheme}://{parts.netloc}":
            return True
    return request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site")


@blueprint.post(config.LOGOUT)
def logout() -> Response:
    """IdP-initiated single logout from the browser: every SP of the session, then "logged out"."""
    if _from_another_site():
        raise SamlError(N_("Log out from the IdP's own page."), status=403)
    user = current_user()
    if user is None:
        return pages.logged_out(reached=[], missed=[])
    response = slo.start(saml(), [user.sid])
    _forget_browser(response)
    return response


def _fanout_key() -> str:
    return request.args.get("k", "")


@blueprint.get(config.LOGOUT_FRAME)
def logout_frame() -> Response:
    """One hidden frame of the logout page: on to its SP with the signed LogoutRequest."""
    index = request.args.get("i", "")
    if not only_digits(index) or len(index) > 4:
        raise SamlError(N_("There is no such application in this logout."), status=404)
    return slo.frame(saml(), _fanout_key(), int(index))


@blueprint.get(config.LOGOUT_STATUS)
def logout_status() -> Response:
    response = jsonify(slo.status(saml(), _fanout_key()))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get(config.LOGOUT_DONE)
def logout_done() -> Response:
    """The logout page's end: who was reached, or the initiating SP's LogoutResponse."""
    return slo.done(saml(), _fanout_key())
