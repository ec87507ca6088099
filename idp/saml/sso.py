"""Web Browser SSO: accept an AuthnRequest, let the user log in, answer the SP's AssertionConsumerService.

An accepted request waits in the shared store under a random key while the browser goes through the QR
login page (``/saml/sso/continue?k=<key>`` is where the login page sends it back), so nothing about the
request rides in the browser's URL but that key. The answer only ever goes to an AssertionConsumerService
URL from the SP's registered metadata.
"""

import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from saml2 import samlp
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.i18n import N_
from idp.models import RelyingPartyLogin
from idp.saml import assertion, authn_context, inbound, nameid, xmlenc
from idp.saml.bindings import Incoming
from idp.saml.config import SamlContext
from idp.saml.errors import SamlError
from idp.saml.names import BINDING_POST, NAMEID_FORMATS, NAMEID_UNSPECIFIED
from idp.saml.registry import ServiceProvider
from idp.sessions import SignedInUser

log = logging.getLogger("nextauth.idp.saml")

PENDING_PREFIX = "saml:authn:"
PENDING_SECONDS = 15 * 60  # long enough to find the phone and scan
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_NS = "urn:oasis:names:tc:SAML:2.0:status:"


@dataclass(frozen=True)
class PendingLogin:
    sp: str
    request_id: str
    acs: str
    relay_state: str | None
    force_authn: bool
    is_passive: bool
    name_id_format: str | None  # as the request's NameIDPolicy asked
    comparison: str | None
    class_refs: tuple[str, ...]
    received_at: float
    sp_name_qualifier: str | None = None  # as the request's NameIDPolicy asked

    def dumps(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def loads(cls, data: bytes) -> "PendingLogin":
        fields = json.loads(data)
        fields["class_refs"] = tuple(fields["class_refs"])
        return cls(**fields)

    @property
    def requested(self) -> authn_context.Requested | None:
        if not self.class_refs:
            return None
        return authn_context.Requested(self.comparison or "exact", self.class_refs)


def known_sp(saml: SamlContext, entity_id: str) -> ServiceProvider:
    sp = saml.registry.get(entity_id)
    if sp is None:
        raise SamlError(
            N_(
                "This application is not registered with the IdP. Its administrator must register its "
                "metadata "
                "(nextauth saml-sp add)."
            ),
            status=403,
            detail=f"unknown SP {entity_id[:200]!r}",
        )
    if sp.metadata.expired():
        raise SamlError(
            N_(
                "This application's registration has expired (its metadata's validUntil has passed). Its "
                "administrator must register current metadata."
            ),
            status=403,
            detail=f"metadata of {entity_id} expired",
        )
    return sp


def _acs(sp: ServiceProvider, request: samlp.AuthnRequest) -> str:
    binding = request.protocol_binding
    if binding and binding != BINDING_POST:
        raise SamlError(
            N_("This IdP answers with the HTTP-POST binding only; the application asked for another.")
        )
    if request.assertion_consumer_service_url:
        endpoint = sp.metadata.acs_by_url(request.assertion_consumer_service_url)
        if endpoint is None:
            raise SamlError(
                N_(
                    "The application asked for the answer at an address its registered metadata does not "
                    "list "
                    "(AssertionConsumerServiceURL). Its administrator must register current metadata."
                ),
                status=403,
                detail=f"ACS {request.assertion_consumer_service_url[:200]!r} unknown for {sp.entity_id}",
            )
        return endpoint.location
    if request.assertion_consumer_service_index is not None:
        try:
            index = int(request.assertion_consumer_service_index)
        except ValueError:
            index = -1
        endpoint = sp.metadata.acs_by_index(index)
        if endpoint is None:
            raise SamlError(
                N_("The application asked for an AssertionConsumerService index its metadata lacks.")
            )
        return endpoint.location
    endpoint = sp.metadata.default_acs()
    if endpoint is None:
        raise SamlError(N_("The application's metadata has no HTTP-POST AssertionConsumerService."))
    return endpoint.location


def accept(saml: SamlContext, incoming: Incoming, endpoint_url: str) -> PendingLogin:
    """Check an AuthnRequest; the login it asks for, or a SamlError for the error page."""
    if incoming.field != "SAMLRequest":
        raise SamlError(N_("Expected a SAMLRequest."))
    request = inbound.parse(incoming, "authn_request")
    sp = known_sp(saml, inbound.sender(request))
    signed = inbound.check_signature(
        incoming,
        request,
        "authn_request",
        sp,
        lambda: saml.security(sp),
        required=sp.metadata.authn_requests_signed,
    )
    inbound.check_destination(request, endpoint_url, signed)
    inbound.check_age(request)
    acs = _acs(sp, request)
    inbound.check_replay(saml.services.kv, sp.entity_id, request.id)
    requested = request.requested_authn_context
    policy = request.name_id_policy
    return PendingLogin(
        sp=sp.entity_id,
        request_id=request.id,
        acs=acs,
        relay_state=incoming.relay_state,
        force_authn=str(request.force_authn).lower() in ("true", "1"),
        is_passive=str(request.is_passive).lower() in ("true", "1"),
        name_id_format=policy.format.strip()[:256] if policy is not None and policy.format else None,
        sp_name_qualifier=policy.sp_name_qualifier.strip()[:256]
        if policy is not None and policy.sp_name_qualifier
        else None,
        comparison=requested.comparison if requested is not None else None,
        class_refs=tuple(
            ref.text.strip()
            for ref in (requested.authn_context_class_ref if requested is not None else [])
            if ref.text
        ),
        received_at=time.time(),
    )


def store(saml: SamlContext, pending: PendingLogin) -> str:
    key = secrets.token_urlsafe(24)
    saml.services.kv.set(PENDING_PREFIX + key, pending.dumps(), ttl=PENDING_SECONDS)
    return key


def load(saml: SamlContext, key: str, *, take: bool) -> PendingLogin:
    if not key or len(key) > 64:
        raise SamlError(N_("This login link is incomplete. Go back to the application and start again."))
    kv = saml.services.kv
    data = kv.take(PENDING_PREFIX + key) if take else kv.get(PENDING_PREFIX + key)
    if data is None:
        raise SamlError(
            N_(
                "This login has expired or was already completed. Go back to the application and start again."
            ),
            status=410,
        )
    return PendingLogin.loads(data)


def _subject(
    saml: SamlContext, sp: ServiceProvider, user: SignedInUser, format_key: str
) -> assertion.Subject:
    """The NameID and SessionIndex for this SP in this session, recorded for single logout."""
    fresh = nameid.value(format_key, user, sp.entity_id, saml.name_id_secret)
    format_uri = NAMEID_FORMATS[format_key]
    # What the other formats would be: a stored NameID that is one of them is no transient one to reuse.
    computed = {nameid.persistent(saml.name_id_secret, sp.entity_id, user.sub), user.email}
    engine = saml.services.engine
    for _attempt in range(2):
        with Session(engine) as db, db.begin():
            row = db.scalars(
                select(RelyingPartyLogin).where(
                    RelyingPartyLogin.sid == user.sid,
                    RelyingPartyLogin.protocol == "saml",
                    RelyingPartyLogin.client_id == sp.entity_id,
                )
            ).first()
            if row is not None:
                # A transient NameID lasts for the session at this SP; the others are computed each time.
                if format_key != "transient" or not row.name_id or row.name_id in computed:
                    row.name_id = fresh
                return assertion.Subject(row.name_id, format_uri, row.session_index or "")
        try:
            with Session(engine) as db, db.begin():
                session_index = "_" + secrets.token_urlsafe(24)
                db.add(
                    RelyingPartyLogin(
                        sid=user.sid,
                        protocol="saml",
                        client_id=sp.entity_id,
                        name_id=fresh,
                        session_index=session_index,
                    )
                )
            return assertion.Subject(fresh, format_uri, session_index)
        except IntegrityError:
            continue  # the same browser in two tabs: the other request recorded it first
    raise SamlError(N_("The login could not be recorded. Try again."), status=503)


def _error(
    saml: SamlContext, sp: ServiceProvider, pending: PendingLogin, code: str, second: str, message: str
) -> str:
    log.info("SAML login for %s answered %s", sp.entity_id, second)
    return assertion.response(
        idp_entity_id=saml.entity_id,
        destination=pending.acs,
        in_response_to=pending.request_id,
        response_status=assertion.status(code, STATUS_NS + second, message),
        assertion_xml=None,
        security=saml.security(sp),
        now=datetime.now(UTC),
        algorithms=sp.options.algorithms,  # an error status is always signed, as the SP's options say
    )


def no_passive(saml: SamlContext, pending: PendingLogin) -> str:
    sp = known_sp(saml, pending.sp)
    return _error(saml, sp, pending, STATUS_RESPONDER, "NoPassive", "The user is not logged in.")


def _name_id_format(sp: ServiceProvider, pending: PendingLogin, user: SignedInUser) -> tuple[str | None, str]:
    """The NameID format to answer with, or None and why (the status message the SP gets)."""
    if pending.sp_name_qualifier not in (None, sp.entity_id):
        return None, "This IdP issues NameIDs for the application itself only (SPNameQualifier)."
    wanted = pending.name_id_format
    chosen = nameid.choose(sp.name_id_format, wanted)
    if chosen is None:
        allowed = nameid.DISCLOSURE[: nameid.DISCLOSURE.index(sp.name_id_format) + 1]
        asked = nameid.key_of(wanted or "") or "that format"
        return None, f"This IdP sends this application {' or '.join(allowed)} NameIDs, not {asked}."
    explicit = wanted not in (None, "", NAMEID_UNSPECIFIED)
    if chosen == "email" and explicit and not nameid.has_email(user):
        return None, "The user has no verified e-mail address to send as the NameID."
    return chosen, ""


def answer(saml: SamlContext, pending: PendingLogin, user: SignedInUser) -> str:
    """The signed Response for this login: an assertion, or a SAML error status the SP can show."""
    sp = known_sp(saml, pending.sp)
    format_key, refusal = _name_id_format(sp, pending, user)
    if format_key is None:
        return _error(saml, sp, pending, STATUS_REQUESTER, "InvalidNameIDPolicy", refusal)
    class_ref = authn_context.class_ref(user)
    if not authn_context.satisfies(class_ref, pending.requested):
        return _error(
            saml,
            sp,
            pending,
            STATUS_RESPONDER,
            "NoAuthnContext",
            f"The login does not meet the requested authentication context: it was {class_ref}.",
        )
    if pending.force_authn and user.authenticated_at < pending.received_at:
        # The endpoint sends such a browser back to the login page first; this only guards the rule.
        return _error(
            saml,
            sp,
            pending,
            STATUS_RESPONDER,
            "RequestUnsupported",
            "ForceAuthn within a running IdP session.",
        )
    subject = _subject(saml, sp, user, format_key)
    now = datetime.now(UTC)
    security = saml.security(sp)
    options = sp.options
    built = assertion.build_assertion(
        idp_entity_id=saml.entity_id,
        sp_entity_id=sp.entity_id,
        acs_url=pending.acs,
        in_response_to=pending.request_id,
        subject=subject,
        user=user,
        class_ref=class_ref,
        released=sp.attributes,
        now=now,
        lifetime=timedelta(seconds=options.assertion_lifetime),
        release=replace(saml.settings.release, name_format=options.name_format),
    )
    if options.sign_assertion:
        signed = assertion.sign(built, security, options.algorithms)
    else:
        signed = assertion.serialise(built)
    if sp.encrypt_assertions:
        signed = xmlenc.encrypted_assertion(signed, _encryption_certificate(sp), sp.encryption_method)
    log.info("SAML login for %s (%s NameID)", sp.entity_id, format_key)
    return assertion.response(
        idp_entity_id=saml.entity_id,
        destination=pending.acs,
        in_response_to=pending.request_id,
        response_status=assertion.status(),
        assertion_xml=signed,
        security=security,
        now=now,
        signed=options.sign_response,
        algorithms=options.algorithms,
    )


def _encryption_certificate(sp: ServiceProvider) -> x509.Certificate:
    for certificate in sp.metadata.encryption_certs:
        if isinstance(certificate.public_key(), rsa.RSAPublicKey):
            return certificate
    # Registration checks this; metadata replaced in the database by hand could still lack one.
    raise SamlError(
        N_("This application wants encrypted assertions but has no RSA encryption key."), status=500
    )
