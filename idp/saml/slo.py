"""Single Logout: ending the IdP session and telling every SP the session was used at.

- SP-initiated (a LogoutRequest at /saml/slo/redirect or /saml/slo/post): the IdP ends the session, sends
  the browser with a LogoutRequest to each other SP that has a front-channel (Redirect or POST)
  SingleLogoutService, one after the other, and finally answers the initiating SP with a LogoutResponse.
- IdP-initiated from the browser (POST /saml/logout): the same walk, ending on a "logged out" page.
- The session ending any other way (logout at /logout, ns logging the session out, expiry checks): no
  browser to walk, so only SPs with a SOAP SingleLogoutService hear of it (back-channel, in the background).

SPs that cannot be reached make the answer a PartialLogout. The walk's state waits in the shared store
under a random key that travels as RelayState.
"""

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import cast

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from defusedxml.ElementTree import fromstring
from flask import g, has_request_context, redirect
from saml2 import SamlBase, samlp
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from idp.models import RelyingPartyLogin
from idp.ns_client import NsError
from idp.saml import assertion, bindings, inbound, pages
from idp.saml.bindings import Incoming
from idp.saml.config import SamlContext
from idp.saml.errors import SamlError
from idp.saml.names import BINDING_POST, BINDING_REDIRECT, BINDING_SOAP
from idp.saml.registry import ServiceProvider
from idp.saml.spmetadata import Endpoint
from idp.saml.sso import known_sp

log = logging.getLogger("nextauth.idp.saml")

PLAN_PREFIX = "saml:logout:"
PLAN_SECONDS = 10 * 60
ENDING = "nextauth_saml_ending"  # flask.g: sessions this request ends itself, with its own walk
STATUS_NS = "urn:oasis:names:tc:SAML:2.0:status:"
SOAP_TIMEOUT = 5.0
SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class Participant:
    entity_id: str
    name_id: str | None
    session_index: str | None


@dataclass
class Plan:
    pending: list[Participant]
    initiator: str | None = None
    initiator_request: str | None = None
    initiator_relay_state: str | None = None
    initiator_binding: str | None = None
    awaiting: str | None = None
    awaiting_request: str | None = None
    partial: bool = False
    ended_sids: list[str] = field(default_factory=list)

    def dumps(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def loads(cls, data: bytes) -> "Plan":
        fields = json.loads(data)
        fields["pending"] = [Participant(**p) for p in fields["pending"]]
        return cls(**fields)


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


def _send(
    saml: SamlContext,
    sp: ServiceProvider,
    endpoint: Endpoint,
    message: SamlBase,
    field: str,
    relay_state: str | None,
) -> Response:
    """Through the browser: a signed Redirect, or an auto-submitted form with an enveloped signature."""
    location = message.destination
    if endpoint.binding == BINDING_REDIRECT:
        private_key = cast(rsa.RSAPrivateKey, saml.key().private_key)  # keys.py: the saml key is RSA
        url = bindings.redirect_url(location, field, assertion.serialise(message), relay_state, private_key)
        return redirect(url, 303)
    fields = {field: bindings.post_value(assertion.sign(message, saml.security(sp)))}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    return pages.post_form(location, fields, heading="Logging out")


def _soap(url: str, xml: str, entity_id: str) -> None:
    envelope = (
        f'<soap11:Envelope xmlns:soap11="{SOAP_ENVELOPE}"><soap11:Body>{xml}</soap11:Body></soap11:Envelope>'
    )
    try:
        answer = httpx.post(
            url,
            content=envelope.encode(),
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": "http://www.oasis-open.org/committees/security",
            },
            timeout=SOAP_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        log.warning("SAML back-channel logout to %s failed: %s", entity_id, type(exc).__name__)
        return
    status = "unreadable"
    try:
        codes = fromstring(answer.content).iter(f"{{{samlp.NAMESPACE}}}StatusCode")
        status = next(codes).get("Value", "").rsplit(":", 1)[-1]
    except Exception:  # noqa: S110 - only for the log line
        pass
    log.info("SAML back-channel logout to %s: HTTP %s, %s", entity_id, answer.status_code, status)


def back_channel(saml: SamlContext, sp: ServiceProvider, participant: Participant) -> bool:
    """Send a signed LogoutRequest over SOAP in the background; False if the SP has no SOAP endpoint."""
    endpoint = sp.metadata.slo_endpoint((BINDING_SOAP,))
    if endpoint is None:
        return False
    xml = assertion.sign(_logout_request(saml, sp, participant, endpoint.location), saml.security(sp))
    threading.Thread(target=_soap, args=(endpoint.location, xml, sp.entity_id), daemon=True).start()
    return True


# -- the walk ------------------------------------------------------------------------------------------


def proceed(saml: SamlContext, plan: Plan) -> Response:
    """Send the browser to the next SP to log out, or finish."""
    while plan.pending:
        participant = plan.pending.pop(0)
        sp = saml.registry.get(participant.entity_id)
        if sp is None:
            continue  # removed since: nothing to tell
        endpoint = sp.metadata.slo_endpoint((BINDING_REDIRECT, BINDING_POST))
        if endpoint is None:
            if not back_channel(saml, sp, participant):
                log.info("SAML logout: %s has no SingleLogoutService", sp.entity_id)
                plan.partial = True
            continue
        request = _logout_request(saml, sp, participant, endpoint.location)
        plan.awaiting, plan.awaiting_request = sp.entity_id, request.id
        key = secrets.token_urlsafe(24)
        saml.services.kv.set(PLAN_PREFIX + key, plan.dumps(), ttl=PLAN_SECONDS)
        return _send(saml, sp, endpoint, request, "SAMLRequest", key)
    return _finish(saml, plan)


def _finish(saml: SamlContext, plan: Plan) -> Response:
    sp = saml.registry.get(plan.initiator) if plan.initiator else None
    if sp is not None and plan.initiator_request:
        preferred = (BINDING_REDIRECT, BINDING_POST)
        if plan.initiator_binding == BINDING_POST:
            preferred = (BINDING_POST, BINDING_REDIRECT)
        endpoint = sp.metadata.slo_endpoint(preferred)
        if endpoint is not None:
            second = STATUS_NS + "PartialLogout" if plan.partial else None
            response = assertion.logout_response(
                idp_entity_id=saml.entity_id,
                destination=endpoint.response_location or endpoint.location,
                in_response_to=plan.initiator_request,
                response_status=assertion.status(assertion.STATUS_SUCCESS, second),
                now=datetime.now(UTC),
            )
            return _send(saml, sp, endpoint, response, "SAMLResponse", plan.initiator_relay_state)
    return pages.logged_out(partial=plan.partial)


def start(saml: SamlContext, sids: list[str], plan: Plan) -> Response:
    """End these sessions and walk the browser through the SPs they were used at (but the initiator)."""
    for sid in sids:
        plan.pending += [p for p in participants(saml, sid) if p.entity_id != plan.initiator]
        end_session(saml, sid)
        plan.ended_sids.append(sid)
    return proceed(saml, plan)


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
        raise SamlError("Encrypted NameIDs in a LogoutRequest are not supported; send the NameID in clear.")
    name_id = request.name_id.text.strip() if request.name_id is not None and request.name_id.text else ""
    if not name_id:
        raise SamlError("The LogoutRequest does not say who is logging out (NameID).")
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
    plan = Plan(
        pending=[],
        initiator=sp.entity_id,
        initiator_request=request.id,
        initiator_relay_state=incoming.relay_state,
        initiator_binding=incoming.binding,
    )
    return start(saml, sids, plan), sids


def handle_response(saml: SamlContext, incoming: Incoming, endpoint_url: str) -> Response:
    """A LogoutResponse from an SP the walk sent the browser to: on to the next one."""
    data = saml.services.kv.take(PLAN_PREFIX + (incoming.relay_state or "")) if incoming.relay_state else None
    if data is None:
        raise SamlError("This logout has expired or was already completed.", status=410)
    plan = Plan.loads(data)
    response = inbound.parse(incoming, "logout_response")
    entity_id = inbound.sender(response)
    if entity_id != plan.awaiting or response.in_response_to != plan.awaiting_request:
        raise SamlError("This LogoutResponse does not answer the logout in progress.", status=403)
    sp = known_sp(saml, entity_id)
    signed = inbound.check_signature(
        incoming, response, "logout_response", sp, lambda: saml.security(sp), required=False
    )
    inbound.check_destination(response, endpoint_url, signed)
    code = response.status.status_code.value if response.status and response.status.status_code else ""
    if code != assertion.STATUS_SUCCESS:
        log.info("SAML logout at %s answered %s", entity_id, code.rsplit(":", 1)[-1])
        plan.partial = True
    plan.awaiting = plan.awaiting_request = None
    return proceed(saml, plan)


def listener(saml: SamlContext) -> Callable[[str], None]:
    """Told of every IdP session that ends: the back-channel logout for sessions ended elsewhere."""

    def session_ended(sid: str) -> None:
        if has_request_context() and sid in g.get(ENDING, ()):
            return  # single logout in progress: its walk tells the SPs
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
