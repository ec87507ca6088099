"""Single Logout: ending the IdP session and telling every application the session was used at, all at once.

- SP-initiated (a LogoutRequest at /saml/slo/redirect or /saml/slo/post) and IdP-initiated from the browser
  (POST /saml/logout): the IdP ends the session and starts a fan-out (``idp.logout_fanout``). SPs with a
  SOAP SingleLogoutService hear of it server to server, OIDC clients through back-channel logout, both in
  greenlets; SPs with only a front-channel (Redirect or POST) SingleLogoutService each get a hidden frame
  on the logout page carrying their signed LogoutRequest, and answer with a LogoutResponse into that frame.
  The page waits for every answer or the timeout, then shows who was and was not reached; an SP that
  initiated the logout gets its LogoutResponse then (PartialLogout if any application was missed).
- The session ending any other way (logout at /logout, ns logging the session out, expiry checks): no
  browser to wait with, so only SPs with a SOAP SingleLogoutService hear of it (in the background).

One SP failing (HTTP 500, hanging, a bad answer) costs only that SP: the others are told in parallel.
"""

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import gevent
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app, g, has_request_context, redirect, session, url_for
from saml2 import SamlBase
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from idp import logout_fanout
from idp.i18n import N_
from idp.logout_fanout import Fanout, Target
from idp.models import RelyingPartyLogin
from idp.ns_client import NsError
from idp.saml import assertion, bindings, inbound, pages, slo_backchannel
from idp.saml.bindings import Incoming
from idp.saml.config import SamlContext
from idp.saml.errors import SamlError
from idp.saml.names import BINDING_POST, BINDING_REDIRECT, BINDING_SOAP
from idp.saml.registry import ServiceProvider
from idp.saml.sso import known_sp
from nextauth_core.digits import only_digits

log = logging.getLogger("nextauth.idp.saml")

ENDING = "nextauth_saml_ending"  # flask.g: sessions this request ends itself, with its own fan-out
BROWSER_KEY = "logout_fanout"  # the Flask session's field: the fan-out this browser may look at
OIDC_BACKCHANNEL = "nextauth_oidc_backchannel"  # app extension: idp.oidc.backchannel.BackchannelLogout
STATUS_NS = "urn:oasis:names:tc:SAML:2.0:status:"
FRONT_BINDINGS = (BINDING_REDIRECT, BINDING_POST)


@dataclass(frozen=True)
class Participant:
    """One SAML login of a session: what a LogoutRequest to that SP must name."""

    entity_id: str
    name_id: str | None
    session_index: str | None


def participants(saml: SamlContext, sid: str) -> list[Participant]:
    with Session(saml.services.engine) as db:
        rows = db.scalars(
            select(RelyingPartyLogin)
            .where(RelyingPartyLogin.sid == sid, RelyingPartyLogin.protocol == "saml")
            .order_by(RelyingPartyLogin.id)
        ).all()
        return [Participant(row.client_id, row.name_id, row.session_index) for row in rows]


def _forget(saml: SamlContext, sid: str) -> None:
    with Session(saml.services.engine) as db, db.begin():
        db.execute(
            delete(RelyingPartyLogin).where(
                RelyingPartyLogin.sid == sid, RelyingPartyLogin.protocol == "saml"
            )
        )


def end_session(saml: SamlContext, sid: str) -> None:
    """End one IdP session for single logout, and its ns session, so that /login asks for a new QR."""
    if has_request_context():
        g.setdefault(ENDING, set()).add(sid)
    services = saml.services
    nonce = services.sessions.ns_nonce(sid)
    services.sessions.end(sid, by="saml-slo")
    if nonce is not None:
        try:
            services.ns.logout(nonce)
        except NsError as exc:
            log.warning("ns logout after SAML logout failed: %s", exc.code)
    _forget(saml, sid)


def display_name(entity_id: str) -> str:
    """An SP as the user knows it: the host of its entity id, which is most often a URL."""
    host = urlsplit(entity_id).hostname
    return host or entity_id


# -- messages to SPs -----------------------------------------------------------------------------------


def _logout_request(
    saml: SamlContext, sp: ServiceProvider, participant: Participant, destination: str
) -> SamlBase:
    return assertion.logout_request(
        idp_entity_id=saml.entity_id,
        destination=destination,
        name_id=participant.name_id or "",
        name_id_format=sp.name_id_format_uri,
        sp_entity_id=sp.entity_id,
        session_index=participant.session_index,
        now=datetime.now(UTC),
    )


def _private_key(saml: SamlContext) -> rsa.RSAPrivateKey:
    return cast(rsa.RSAPrivateKey, saml.key().private_key)  # keys.py: the saml key is RSA


def _frame(
    saml: SamlContext,
    sp: ServiceProvider,
    binding: str,
    message: SamlBase,
    field: str,
    relay_state: str | None,
) -> dict[str, Any]:
    """A message as the browser carries it: a signed Redirect URL, or POST fields with a signed message."""
    location = message.destination
    if binding == BINDING_REDIRECT:
        url = bindings.redirect_url(
            location, field, assertion.serialise(message), relay_state, _private_key(saml)
        )
        return {"redirect": url}
    fields = {field: bindings.post_value(assertion.sign(message, saml.security(sp)))}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    return {"post": location, "fields": fields}


def _send(frame: dict[str, Any], heading: str = N_("Logging out")) -> Response:
    if "redirect" in frame:
        return redirect(frame["redirect"], 303)
    return pages.post_form(frame["post"], frame["fields"], heading=heading)


def back_channel(saml: SamlContext, sp: ServiceProvider, participant: Participant) -> bool:
    """Send a signed LogoutRequest over SOAP in the background; False if the SP has no SOAP endpoint."""
    endpoint = sp.metadata.slo_endpoint((BINDING_SOAP,))
    if endpoint is None:
        return False
    request = _logout_request(saml, sp, participant, endpoint.location)
    xml = assertion.sign(request, saml.security(sp))
    gevent.spawn(
        slo_backchannel.deliver, saml, sp, endpoint.location, xml, request.id, slo_backchannel.DEFAULT_TIMEOUT
    )
    return True


# -- the fan-out ---------------------------------------------------------------------------------------


def _saml_target(
    saml: SamlContext, participant: Participant, fanout: Fanout, jobs: list[Callable[[], object]]
) -> Target | None:
    sp = saml.registry.get(participant.entity_id)
    if sp is None:
        return None  # removed since: nothing to tell
    index = len(fanout.targets)
    name = display_name(sp.entity_id)
    # SOAP first where offered: it needs no frame the SP might refuse, nor its cookies in a third-party frame.
    soap = sp.metadata.slo_endpoint((BINDING_SOAP,))
    if soap is not None:
        request = _logout_request(saml, sp, participant, soap.location)
        xml = assertion.sign(request, saml.security(sp))
        timeout = min(slo_backchannel.DEFAULT_TIMEOUT, saml.logout_timeout)
        deliver = functools.partial(
            slo_backchannel.deliver, saml, sp, soap.location, xml, request.id, timeout
        )
        jobs.append(functools.partial(logout_fanout.in_background, saml.services.kv, fanout, index, deliver))
        return Target(name, "saml", "back", sp.entity_id, request_id=request.id)
    front = sp.metadata.slo_endpoint(FRONT_BINDINGS)
    if front is None:
        log.info("SAML logout: %s has no SingleLogoutService", sp.entity_id)
        return Target(name, "saml", "none", sp.entity_id)
    request = _logout_request(saml, sp, participant, front.location)
    frame = _frame(saml, sp, front.binding, request, "SAMLRequest", f"{fanout.key}.{index}")
    return Target(name, "saml", "front", sp.entity_id, request_id=request.id, frame=frame)


def _oidc_targets(saml: SamlContext, sid: str, fanout: Fanout, jobs: list[Callable[[], object]]) -> None:
    """The OIDC back-channel logouts the session's end has just started: waited for like the SOAP ones."""
    backchannel = current_app.extensions.get(OIDC_BACKCHANNEL)
    if backchannel is None:
        return
    for client_id, name, job in backchannel.deliveries(sid):
        index = len(fanout.targets)
        fanout.targets.append(Target(name or client_id, "oidc", "back", client_id))
        jobs.append(functools.partial(logout_fanout.watch, saml.services.kv, fanout, index, job))


def start(saml: SamlContext, sids: list[str], initiator: dict[str, str | None] | None = None) -> Response:
    """End these sessions and tell every application they were used at (but the initiator), at once."""
    fanout = Fanout(
        targets=[],
        deadline=time.time() + saml.logout_timeout,
        initiator=initiator,
        key=logout_fanout.new_key(),
    )
    jobs: list[Callable[[], object]] = []
    initiator_id = initiator["entity_id"] if initiator else None
    for sid in sids:
        logins = [p for p in participants(saml, sid) if p.entity_id != initiator_id]
        for participant in logins:
            target = _saml_target(saml, participant, fanout, jobs)
            if target is not None:
                fanout.targets.append(target)
        end_session(saml, sid)
        _oidc_targets(saml, sid, fanout, jobs)
    kv = saml.services.kv
    logout_fanout.save(kv, fanout)
    for index, target in enumerate(fanout.targets):
        if target.channel == "none":
            logout_fanout.record(kv, fanout, index, False)
    for job in jobs:
        job()
    session[BROWSER_KEY] = fanout.key
    if not fanout.targets:
        return finish(saml, fanout.key)
    return pages.logout_progress(
        frames=[
            (index, target.name, url_for("saml.logout_frame", k=fanout.key, i=index))
            for index, target in enumerate(fanout.targets)
            if target.channel == "front"
        ],
        status_url=url_for("saml.logout_status", k=fanout.key),
        done_url=url_for("saml.logout_done", k=fanout.key),
        wait_seconds=math.ceil(saml.logout_timeout) + 1,
        frame_origins=sorted(
            {_origin(target.frame) for target in fanout.targets if target.frame is not None}
        ),
    )


def _origin(frame: dict[str, Any]) -> str:
    parts = urlsplit(frame.get("redirect") or frame["post"])
    return f"{parts.scheme}://{parts.netloc}"


def _browsers_fanout(saml: SamlContext, key: str, *, take: bool = False) -> Fanout:
    """The fan-out, if this browser started it: its key alone (which SPs see in RelayState) is not enough."""
    mine = session.get(BROWSER_KEY)
    if not isinstance(mine, str) or not logout_fanout.same_key(mine, key):
        raise SamlError(
            N_("This logout was started in another browser, or has already completed."), status=410
        )
    kv = saml.services.kv
    fanout = logout_fanout.take(kv, key) if take else logout_fanout.load(kv, key)
    if fanout is None:
        raise SamlError(N_("This logout has expired or was already completed."), status=410)
    return fanout


def frame(saml: SamlContext, key: str, index: int) -> Response:
    """What one hidden frame of the logout page loads: the signed LogoutRequest for its SP."""
    fanout = _browsers_fanout(saml, key)
    if not 0 <= index < len(fanout.targets) or fanout.targets[index].frame is None:
        raise SamlError(N_("There is no such application in this logout."), status=404)
    if time.time() > fanout.deadline:
        raise SamlError(N_("This logout has timed out."), status=410)
    target = fanout.targets[index]
    message = cast(dict[str, Any], target.frame)
    if "redirect" in message:
        # A page that navigates, not an HTTP redirect: the frame's history then shows the SP's own URL.
        return pages.frameable(pages.frame_redirect(message["redirect"], target.name))
    return pages.frameable(_send(message))


def status(saml: SamlContext, key: str) -> dict[str, Any]:
    fanout = _browsers_fanout(saml, key)
    answered = logout_fanout.results(saml.services.kv, fanout)
    return {
        "finished": logout_fanout.finished(saml.services.kv, fanout),
        "answered": sum(result is not None for result in answered),
        "total": len(answered),
    }


def done(saml: SamlContext, key: str) -> Response:
    return finish(saml, key)


def finish(saml: SamlContext, key: str) -> Response:
    """The end of a fan-out: the initiating SP's LogoutResponse, or the page saying who was reached."""
    fanout = _browsers_fanout(saml, key, take=True)
    session.pop(BROWSER_KEY, None)
    result = logout_fanout.outcome(saml.services.kv, fanout)
    for target in result.missed:
        log.info("logout did not reach %s (%s, %s)", target.entity_id, target.protocol, target.channel)
    initiator = fanout.initiator
    sp = saml.registry.get(initiator["entity_id"] or "") if initiator else None
    if initiator is not None and sp is not None and initiator.get("request_id"):
        preferred = FRONT_BINDINGS
        if initiator.get("binding") == BINDING_POST:
            preferred = (BINDING_POST, BINDING_REDIRECT)
        endpoint = sp.metadata.slo_endpoint(preferred)
        if endpoint is not None:
            second = None if result.complete else STATUS_NS + "PartialLogout"
            response = assertion.logout_response(
                idp_entity_id=saml.entity_id,
                destination=endpoint.response_location or endpoint.location,
                in_response_to=initiator["request_id"] or "",
                response_status=assertion.status(assertion.STATUS_SUCCESS, second),
                now=datetime.now(UTC),
            )
            message = _frame(
                saml, sp, endpoint.binding, response, "SAMLResponse", initiator.get("relay_state")
            )
            return _send(message)
    return pages.logged_out(
        reached=[target.name for target in result.reached],
        missed=[target.name for target in result.missed],
    )


def handle_request(saml: SamlContext, incoming: Incoming, endpoint_url: str) -> tuple[Response, list[str]]:
    """A LogoutRequest from an SP; the response and the sessions it ended."""
    request = inbound.parse(incoming, "logout_request")
    sp = known_sp(saml, inbound.sender(request))
    # Anyone who can make a browser visit this URL could otherwise log the user out everywhere.
    signed = inbound.check_signature(
        incoming, request, "logout_request", sp, lambda: saml.security(sp), required=True
    )
    inbound.check_destination(request, endpoint_url, signed)
    inbound.check_age(request)
    inbound.check_replay(saml.services.kv, sp.entity_id, request.id)
    if request.encrypted_id is not None:
        raise SamlError(
            N_("Encrypted NameIDs in a LogoutRequest are not supported; send the NameID in clear.")
        )
    name_id = request.name_id.text.strip() if request.name_id is not None and request.name_id.text else ""
    if not name_id:
        raise SamlError(N_("The LogoutRequest does not say who is logging out (NameID)."))
    indexes = {index.text.strip() for index in request.session_index if index.text}
    query = select(RelyingPartyLogin.sid).where(
        RelyingPartyLogin.protocol == "saml",
        RelyingPartyLogin.client_id == sp.entity_id,
        RelyingPartyLogin.name_id == name_id,
    )
    if indexes:
        query = query.where(RelyingPartyLogin.session_index.in_(indexes))
    with Session(saml.services.engine) as db:
        sids = list(dict.fromkeys(db.scalars(query).all()))
    log.info("SAML logout requested by %s: %d session(s)", sp.entity_id, len(sids))
    initiator: dict[str, str | None] = {
        "entity_id": sp.entity_id,
        "request_id": request.id,
        "relay_state": incoming.relay_state,
        "binding": incoming.binding,
    }
    return start(saml, sids, initiator), sids


def handle_response(saml: SamlContext, incoming: Incoming, endpoint_url: str) -> Response:
    """A LogoutResponse from an SP, in the frame the logout page gave it: recorded for that SP only if it
    is the SP's signed answer to the very request it was sent."""
    key, _, position = (incoming.relay_state or "").rpartition(".")
    fanout = logout_fanout.load(saml.services.kv, key) if key and only_digits(position) else None
    if fanout is None:
        raise SamlError(N_("This logout has expired or was already completed."), status=410)
    index = int(position)
    target = fanout.targets[index] if index < len(fanout.targets) else None
    response = inbound.parse(incoming, "logout_response")
    entity_id = inbound.sender(response)
    if (
        target is None
        or target.channel != "front"
        or entity_id != target.entity_id
        or not target.request_id
        or not logout_fanout.same_key(response.in_response_to or "", target.request_id)
    ):
        raise SamlError(N_("This LogoutResponse does not answer the logout in progress."), status=403)
    sp = known_sp(saml, entity_id)
    signed = inbound.check_signature(
        incoming, response, "logout_response", sp, lambda: saml.security(sp), required=True
    )
    inbound.check_destination(response, endpoint_url, signed)
    inbound.check_age(response)
    code = response.status.status_code.value if response.status and response.status.status_code else ""
    success = code == assertion.STATUS_SUCCESS
    if not success:
        log.info("SAML logout at %s answered %s", entity_id, code.rsplit(":", 1)[-1])
    if not logout_fanout.record(saml.services.kv, fanout, index, success):
        raise SamlError(N_("This logout was already answered, or has timed out."), status=409)
    return pages.frameable(pages.frame_answered(target.name, success))


def listener(saml: SamlContext) -> Callable[[str], None]:
    """Told of every IdP session that ends: the back-channel logout for sessions ended elsewhere."""

    def session_ended(sid: str) -> None:
        if has_request_context() and sid in g.get(ENDING, ()):
            return  # single logout in progress: its fan-out tells the SPs
        for participant in participants(saml, sid):
            sp = saml.registry.get(participant.entity_id)
            if sp is not None and not back_channel(saml, sp, participant):
                log.info(
                    "session ended: %s has no SOAP SingleLogoutService and keeps its own session until it "
                    "expires",
                    sp.entity_id,
                )
        _forget(saml, sid)

    return session_ended
