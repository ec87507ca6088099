"""The OIDC provider's HTTP side: discovery, JWKS, the authorization endpoint with login and consent,
token, userinfo, introspection, revocation and RP-initiated logout."""

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request, session
from flask_babel import gettext
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.context import current_user, login_redirect, services
from idp.i18n import N_
from idp.models import Consent
from idp.ns_client import NsError
from idp.oidc import ciba, cors, device
from idp.oidc.backchannel import BackchannelLogout, record_login
from idp.oidc.client_auth import CLIENT_AUTH_METHODS, CONFIDENTIAL_AUTH_METHODS
from idp.oidc.clients import BASIC_SCOPES, PRIVATE_KEY_ALGS, SCOPES, SECRET_ALGS, Client
from idp.oidc.dpop import ALGS as DPOP_ALGS
from idp.oidc.dpop import DPoPError, header_value
from idp.oidc.provider import DPOP_JKT, DPOP_USED, Provider
from idp.oidc.response_modes import QUERY, UnsupportedResponseMode, deliver, requested_mode
from idp.oidc.tokens import Grant
from idp.origin import from_another_site
from idp.sessions import ACR_MFA, ACR_POSSESSION, SignedInUser
from nextauth_core.digits import only_digits

log = logging.getLogger("nextauth.idp.oidc")

blueprint = Blueprint("oidc", __name__)
EXTENSION = "nextauth_oidc"
ASSERTION_ALGS = [*PRIVATE_KEY_ALGS, *SECRET_ALGS]
LOGIN_AFTER = "nextauth_login_after"  # set on the way to a forced login; the login must be newer
LOGIN_MARKER_SECONDS = 1800  # how long a forced login may take before the request must start again
SCOPE_TEXT = {
    "groups": N_("your group memberships"),
    "offline_access": N_("access while you are away (stays after you log out)"),
    "profile": N_("your name and username"),
    "email": N_("your e-mail address"),
}


@blueprint.record_once
def _setup(state: Any) -> None:
    app: Flask = state.app
    idp = app.extensions["nextauth_idp"]
    provider = Provider(idp, require_par=idp.oidc_require_par)
    # Both ID token keys exist from the start, so the published JWKS never surprises a client.
    for alg in ("ES256", "RS256"):
        idp.keys.active("oidc", alg)
    backchannel = BackchannelLogout(provider)
    idp.sessions.on_end.append(backchannel)
    app.extensions[EXTENSION] = provider
    app.extensions["nextauth_oidc_backchannel"] = backchannel


def provider() -> Provider:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


# -- discovery ------------------------------------------------------------------------------------------


@blueprint.get("/.well-known/openid-configuration")
def discovery() -> Any:
    idp = services()
    url = idp.url
    return jsonify(
        issuer=idp.issuer,
        authorization_endpoint=url("/oidc/authorize"),
        token_endpoint=url("/oidc/token"),
        userinfo_endpoint=url("/oidc/userinfo"),
        jwks_uri=url("/oidc/jwks"),
        end_session_endpoint=url("/oidc/logout"),
        introspection_endpoint=url("/oidc/introspect"),
        revocation_endpoint=url("/oidc/revoke"),
        pushed_authorization_request_endpoint=url("/oidc/par"),
        require_pushed_authorization_requests=provider().require_par,
        scopes_supported=list(SCOPES),
        response_types_supported=["code"],
        response_modes_supported=["query", "fragment", "form_post"],
        authorization_response_iss_parameter_supported=True,
        grant_types_supported=[
            "authorization_code",
            "refresh_token",
            "client_credentials",
            ciba.GRANT_TYPE,
            device.GRANT_TYPE,
        ],
        subject_types_supported=["public", "pairwise"],
        id_token_signing_alg_values_supported=["ES256", "RS256"],
        token_endpoint_auth_methods_supported=CLIENT_AUTH_METHODS,
        token_endpoint_auth_signing_alg_values_supported=ASSERTION_ALGS,
        introspection_endpoint_auth_methods_supported=CONFIDENTIAL_AUTH_METHODS,
        introspection_endpoint_auth_signing_alg_values_supported=ASSERTION_ALGS,
        revocation_endpoint_auth_methods_supported=CLIENT_AUTH_METHODS,
        revocation_endpoint_auth_signing_alg_values_supported=ASSERTION_ALGS,
        code_challenge_methods_supported=["S256"],
        dpop_signing_alg_values_supported=list(DPOP_ALGS),
        claims_supported=[
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "name",
            "preferred_username",
            "email",
            "email_verified",
            "groups",
        ],
        acr_values_supported=[ACR_MFA, ACR_POSSESSION],
        prompt_values_supported=["none", "login", "consent"],
        claims_parameter_supported=False,
        request_parameter_supported=True,
        # Only the request_uri values our PAR endpoint issues; the IdP fetches no URLs (SSRF).
        request_uri_parameter_supported=True,
        request_object_signing_alg_values_supported=ASSERTION_ALGS,
        backchannel_logout_supported=True,
        backchannel_logout_session_supported=True,
        frontchannel_logout_supported=False,
        **ciba.discovery(url),
        **device.discovery(url),
    )


@blueprint.get("/oidc/jwks")
def jwks() -> Any:
    response = jsonify(services().keys.jwks("oidc"))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# -- authorization ------------------------------------------------------------------------------------


def _current_grant_user() -> SignedInUser | None:
    """The browser's user, after asking ns whether its login still stands (a person is waiting anyway)."""
    user = current_user()
    if user is None:
        return None
    idp = services()
    nonce = idp.sessions.ns_nonce(user.sid)
    try:
        still_in = nonce is not None and bool(idp.ns.session(nonce).get("loggedin"))
    except NsError:
        still_in = True  # ns unreachable: the signed session stands until it expires or is ended
    if not still_in:
        idp.sessions.end(user.sid, by="ns")
        return None
    return user


def _error_page(error: OAuth2Error) -> Any:
    """Errors that must not go back to the client (unknown client, unregistered redirect URI)."""
    if isinstance(error, InsecureTransportError):
        raise error  # the IdP's address, not the application's request: idp.web.errors says so
    message = error.description or error.error
    log.info("authorization request refused: %s (%s)", error.error, message)
    return render_template(
        "error.html",
        message=gettext("This application's login request is not valid: %(reason)s", reason=message),
    ), 400


def _login_markers() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="nextauth-login-after")


def _query_digest(args: dict[str, str]) -> str:
    """The authorization request a forced-login marker belongs to: its query, the marker aside."""
    canonical = urlencode(sorted((k, v) for k, v in args.items() if k != LOGIN_AFTER))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _forced_login(client_name: str) -> Any:
    """Back to the login page for a new approval in the app, then here again (without prompt=login), with
    a marker saying when that was: signed and tied to this request's query, so that neither the browser
    nor anyone else can write one that lets an older login through (a pushed or signed request keeps its
    prompt=login, which only a genuine marker answers)."""
    args = request.args.to_dict(flat=True)
    args.pop(LOGIN_AFTER, None)
    prompts = [p for p in args.pop("prompt", "").split() if p != "login"]
    if prompts:
        args["prompt"] = " ".join(prompts)
    args[LOGIN_AFTER] = _login_markers().dumps({"at": time.time(), "q": _query_digest(args)})
    return login_redirect(f"/oidc/authorize?{urlencode(args)}", reauth=True, asking=client_name)


def _login_after() -> float | None:
    """When this request was sent to a forced login, from its marker; None without a genuine one (not
    ours, altered, for another request, or older than LOGIN_MARKER_SECONDS)."""
    marker = request.args.get(LOGIN_AFTER)
    if not marker:
        return None
    try:
        found = _login_markers().loads(marker, max_age=LOGIN_MARKER_SECONDS)
    except BadSignature:
        log.info("authorization request with a forced-login marker that is not genuine: ignored")
        return None
    if not isinstance(found, dict) or not isinstance(found.get("at"), int | float):
        return None
    if not hmac.compare_digest(str(found.get("q", "")), _query_digest(request.args.to_dict(flat=True))):
        log.info("authorization request with another request's forced-login marker: ignored")
        return None
    return float(found["at"])


def _needs_fresh_login(user: SignedInUser, params: Any) -> bool:
    """``params``: the authorization request's parameters (from the query, a request object or PAR)."""
    after = _login_after()
    if after is not None:
        # The forced login happened once the session's login is newer (to the millisecond); prompt=login
        # is then answered.
        return user.authenticated_at < after
    if "login" in str(params.get("prompt") or "").split():
        return True
    max_age = str(params.get("max_age") or "")
    return bool(only_digits(max_age) and time.time() - user.auth_time > int(max_age))


def _consented(user_id: str, client: Client, scopes: set[str]) -> bool:
    extra = scopes - BASIC_SCOPES
    if not extra or client.trusted:
        return True
    with Session(services().engine) as db:
        granted = db.scalar(
            select(Consent.scope).where(Consent.user_id == user_id, Consent.client_id == client.client_id)
        )
    return granted is not None and extra <= set(granted.split())


def _save_consent(user_id: str, client: Client, scopes: set[str]) -> None:
    with Session(services().engine) as db, db.begin():
        row = db.scalar(
            select(Consent).where(Consent.user_id == user_id, Consent.client_id == client.client_id)
        )
        if row is None:
            db.add(Consent(user_id=user_id, client_id=client.client_id, scope=" ".join(sorted(scopes))))
        else:
            row.scope = " ".join(sorted(set(row.scope.split()) | scopes))


@blueprint.route("/oidc/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    server = provider().server
    user = _current_grant_user()
    end_user = (
        Grant(
            client_id="",
            user_id=user.sub,
            scope="",
            sid=user.sid,
            auth_time=user.auth_time,
            acr=user.acr,
            amr=user.amr,
        )
        if user is not None
        else None
    )
    try:
        mode = requested_mode(request.values)
    except UnsupportedResponseMode:
        mode = QUERY
    try:
        grant = server.get_consent_grant(end_user=end_user)
    except OAuth2Error as error:
        redirect_uri = getattr(error, "redirect_uri", None)
        if redirect_uri:
            return _to_client(server.handle_error_response(None, error), redirect_uri, mode)
        return _error_page(error)
    # A signed request object (JAR) or a pushed request (PAR) names the response mode, not the query.
    params = grant.request.payload.data
    try:
        mode = requested_mode(params)
    except UnsupportedResponseMode:
        unsupported = "Unsupported response_mode: use query, fragment or form_post."
        return _redirect_error(server, grant, "invalid_request", unsupported, QUERY)
    prompts = str(params.get("prompt") or "").split()
    if user is None or _needs_fresh_login(user, params):
        if "none" in prompts:
            return _redirect_error(server, grant, "login_required", "The user must log in.", mode)
        if user is None:
            return login_redirect(request.full_path, asking=grant.client.name)
        return _forced_login(grant.client.name)
    client: Client = grant.client
    scopes = set((grant.request.payload.scope or "").split())
    needs_consent = "consent" in prompts or not _consented(user.sub, client, scopes)
    if needs_consent and request.method == "POST":
        sent = request.form.get("csrf", "")
        expected = session.get("oidc_csrf", "")
        if from_another_site():  # the consent form is the IdP's own page; authorization requests may not be
            return render_template(
                "error.html", message=N_("This consent was sent from another website. Start the login again.")
            ), 403
        if not expected or not hmac.compare_digest(sent, expected):
            return render_template(
                "error.html", message=N_("The consent form expired. Start the login again.")
            ), 400
        session.pop("oidc_csrf", None)
        if request.form.get("decision") != "allow":
            log.info("%s declined consent for %s", user.sub, client.client_id)
            if not _use_up_pushed(grant):
                return _pushed_used_page()
            denied = server.create_authorization_response(request=grant.request, grant_user=None, grant=grant)
            return _to_client(denied, grant.redirect_uri, mode)
        _save_consent(user.sub, client, scopes - BASIC_SCOPES)
        needs_consent = False
    if needs_consent:
        if "none" in prompts:
            return _redirect_error(server, grant, "consent_required", "The user must consent.", mode)
        session["oidc_csrf"] = secrets.token_urlsafe(24)
        return render_template(
            "consent.html",
            client=client,
            user=user,
            asked=[SCOPE_TEXT[s] for s in sorted(scopes - {"openid"}) if s in SCOPE_TEXT],
            action=request.full_path,
            csrf=session["oidc_csrf"],
        )
    if not _use_up_pushed(grant):
        return _pushed_used_page()
    response = server.create_authorization_response(request=grant.request, grant_user=end_user, grant=grant)
    if response.status_code == 302 and "code=" in response.headers.get("Location", ""):
        record_login(provider(), user.sid, client.client_id)
    return _to_client(response, grant.redirect_uri, mode)


def _to_client(response: Any, redirect_uri: str, mode: str) -> Any:
    """Every authorization response names the issuer and travels in the client's response mode."""
    return deliver(response, redirect_uri, mode, services().issuer)


def _use_up_pushed(grant: Any) -> bool:
    """A pushed request yields one authorization response: False if it has yielded one already."""
    request_uri = getattr(grant.request, "pushed_request_uri", None)
    return request_uri is None or provider().pushed.take(request_uri)


def _pushed_used_page() -> Any:
    return render_template(
        "error.html", message=N_("This login request was used already. Start again from the application.")
    ), 400


def _redirect_error(server: Any, grant: Any, error: str, description: str, mode: str) -> Any:
    failure = OAuth2Error(description=description, redirect_uri=grant.redirect_uri)
    failure.error = error
    failure.state = grant.request.payload.state
    return _to_client(server.handle_error_response(None, failure), grant.redirect_uri, mode)


# -- token, userinfo, introspection, revocation ------------------------------------------------------------


def _dpop_proof_checked() -> Any:
    """The request's DPoP proof, if it has one, checked for this endpoint; its key's thumbprint goes to
    ``g`` for the tokens to be bound to. An error response if the proof fails, else None."""
    proof = header_value(request.headers)
    if proof is None:
        return None
    try:
        g.setdefault(DPOP_USED, True)
        g.setdefault(DPOP_JKT, provider().dpop.verify(proof, request.method, services().url(request.path)))
    except DPoPError as error:
        return _with_dpop_nonce(provider().server.handle_error_response(None, error))
    return None


def _with_dpop_nonce(response: Any) -> Any:
    if g.get(DPOP_USED) and "DPoP-Nonce" not in response.headers:
        response.headers["DPoP-Nonce"] = provider().dpop.nonce()
    return _no_store(response)


@blueprint.post("/oidc/token")
def token() -> Any:
    refused = _dpop_proof_checked()
    if refused is not None:
        return refused
    return _with_dpop_nonce(provider().server.create_token_response())


@blueprint.post("/oidc/par")
def pushed_authorization_request() -> Any:
    refused = _dpop_proof_checked()
    if refused is not None:
        return refused
    server = provider().server
    oauth_request = server.create_oauth2_request(None)
    try:
        status, body = provider().pushed.push(oauth_request)
    except OAuth2Error as error:
        return _with_dpop_nonce(server.handle_error_response(oauth_request, error))
    return _with_dpop_nonce(server.handle_response(status, body, [("Content-Type", "application/json")]))


@blueprint.route("/oidc/userinfo", methods=["GET", "POST"])
def userinfo() -> Any:
    if header_value(request.headers) is not None:
        g.setdefault(DPOP_USED, True)
    return _with_dpop_nonce(provider().server.create_endpoint_response("userinfo"))


@blueprint.post("/oidc/introspect")
def introspect() -> Any:
    return _no_store(provider().server.create_endpoint_response("introspection"))


@blueprint.post("/oidc/revoke")
def revoke() -> Any:
    return _no_store(provider().server.create_endpoint_response("revocation"))


# -- RP-initiated logout -------------------------------------------------------------------------------


@blueprint.route("/oidc/logout", methods=["GET", "POST"])
def end_session() -> Any:
    server = provider().server
    try:
        validated = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        if isinstance(error, InsecureTransportError):
            raise
        return render_template(
            "error.html",
            message=gettext("This logout request is not valid: %(reason)s", reason=error.description),
        ), 400
    user = current_user()
    # Without an ID token from us for this very session, a page elsewhere could log the user out (and every
    # application with them): ask first. Only the IdP's own confirmation form, posted from its own page,
    # answers the question.
    other = user is not None and not validated.needs_confirmation and not _hint_names(validated, user)
    if (validated.needs_confirmation or other) and user is not None:
        if request.method == "GET" or from_another_site():
            if other:
                log.info("logout requested with an ID token of another session; asking the user")
            action = f"{request.path}?{urlencode(request.values.to_dict(flat=True))}"
            return render_template("logout.html", user=user, action=action, other_session=other)
    idp = services()
    if user is not None:
        idp.sessions.end(user.sid, by="rp-logout")
        nonce = idp.sessions.ns_nonce(user.sid)
        if nonce is not None:
            try:
                idp.ns.logout(nonce)
            except NsError as exc:
                log.warning("ns logout failed: %s", exc.code)
    session.clear()
    response = server.create_endpoint_response("end_session", validated)
    if response is None:
        response = current_app.make_response(render_template("logged_out.html"))
    response.delete_cookie(idp.cookie_name, domain=idp.cookie_domain)
    return response


def _hint_names(validated: Any, user: SignedInUser) -> bool:
    """Whether the request's ID token hint was issued for this browser's session and user."""
    claims = validated.id_token_claims or {}
    client = validated.client
    if client is None or claims.get("sid") != user.sid:
        return False
    return bool(claims.get("sub") == provider().subject(client, user.sub))


cors.install(blueprint, provider)
