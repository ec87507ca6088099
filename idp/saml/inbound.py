"""The checks every SAML message from a service provider passes before the IdP acts on it.

Signature (against the keys in the SP's registered metadata only, SHA-1 refused), Destination (this very
endpoint), age (IssueInstant), and single use (the message ID, remembered in the shared store for longer
than a message stays acceptable).
"""

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from saml2 import SamlBase, samlp
from saml2.validate import valid_instance
from werkzeug.exceptions import TooManyRequests

from authserver.ratelimit import RateLimited, client_key
from authserver.storage.kv import KeyValueStore
from idp.context import services
from idp.i18n import N_
from idp.ratelimits import refuse
from idp.saml.bindings import SHA1_ALGORITHMS, WEAK_ALGORITHM, Incoming, verify_query_signature
from idp.saml.errors import SamlError
from idp.saml.names import BINDING_REDIRECT
from idp.saml.registry import ServiceProvider
from idp.saml.xmlsecurity import XmlSecurity

log = logging.getLogger("nextauth.idp.saml")

MAX_AGE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(minutes=1)
SEEN_PREFIX = "saml:seen:"
SEEN_TTL = (MAX_AGE + 2 * CLOCK_SKEW).total_seconds()
MAX_ID = 256

PARSERS: dict[str, Callable[[bytes], SamlBase | None]] = {
    "authn_request": samlp.authn_request_from_string,
    "logout_request": samlp.logout_request_from_string,
    "logout_response": samlp.logout_response_from_string,
}
LABELS = {
    "authn_request": "AuthnRequest",
    "logout_request": "LogoutRequest",
    "logout_response": "LogoutResponse",
}


def parse(incoming: Incoming, msgtype: str) -> SamlBase:
    try:
        message = PARSERS[msgtype](incoming.xml)
    except Exception as exc:  # defusedxml and pysaml2 raise many kinds; the answer is the same
        raise SamlError(
            N_("The %(what)s is not well-formed XML."),
            params={"what": LABELS[msgtype]},
            detail=type(exc).__name__,
        ) from exc
    if message is None:
        raise SamlError(N_("Expected a SAML %(what)s."), params={"what": LABELS[msgtype]})
    try:
        valid_instance(message)
    except Exception as exc:  # NotValid mostly; malformed values raise others
        raise SamlError(
            N_("The %(what)s is not valid SAML."), params={"what": LABELS[msgtype]}, detail=str(exc)[:200]
        ) from exc
    if message.version != "2.0":
        raise SamlError(N_("Only SAML 2.0 messages are accepted."))
    if not message.id or len(message.id) > MAX_ID:
        raise SamlError(N_("The %(what)s has no usable ID."), params={"what": LABELS[msgtype]})
    return message


def sender(message: SamlBase) -> str:
    text = message.issuer.text.strip() if message.issuer is not None and message.issuer.text else ""
    if not text:
        raise SamlError(N_("The message does not name its sender (Issuer)."))
    return text


def _verify_within_budget(verify: Callable[[], object]) -> None:
    """Run a signature check unless this client has already sent too many that failed (an XML signature
    costs xmlsec1 a process and about a quarter of a CPU second); a failure is counted against it."""
    limits = services().limits
    client, rule = limits.client(), limits.rules["saml_signatures"]
    try:
        limits.limiter.check(rule, client_key(client), client=client, what="SAML signatures that failed")
    except RateLimited as exc:
        refuse(exc, N_("Too many requests with signatures that did not verify. Wait a moment and try again."))
    try:
        verify()
    except Exception:
        limits.limiter.count(rule, client_key(client))
        raise


def check_signature(
    incoming: Incoming,
    message: SamlBase,
    msgtype: str,
    sp: ServiceProvider,
    security: Callable[[], XmlSecurity],
    *,
    required: bool,
) -> bool:
    """Verifies the signature if there is one; True if the message was signed. ``security`` builds the
    verifier for this SP's keys (only when an XML signature must be checked)."""
    label = LABELS[msgtype]
    if incoming.binding == BINDING_REDIRECT:
        # The Redirect binding signs the query string; a signature inside the XML is not used there.
        if incoming.query_signature is None:
            if required:
                raise SamlError(
                    N_("This application must sign its %(what)s, and this one is not signed."),
                    params={"what": label},
                    status=403,
                )
            return False
        if not sp.metadata.signing_certs:
            raise SamlError(
                N_("The application's metadata has no signing certificate to check this signature.")
            )
        query_signature = incoming.query_signature
        try:
            _verify_within_budget(lambda: verify_query_signature(query_signature, sp.metadata.signing_certs))
        except SamlError as exc:
            exc.detail = f"{exc.detail} (SP {sp.entity_id})"
            raise
        return True
    if message.signature is None:
        if required:
            raise SamlError(
                N_("This application must sign its %(what)s, and this one is not signed."),
                params={"what": label},
                status=403,
            )
        return False
    signed_info = message.signature.signed_info
    algorithms = [signed_info.signature_method.algorithm] + [
        r.digest_method.algorithm for r in signed_info.reference
    ]
    if any(algorithm in SHA1_ALGORITHMS or algorithm.endswith("#sha1") for algorithm in algorithms):
        raise SamlError(WEAK_ALGORITHM)
    if not sp.metadata.signing_certs:
        raise SamlError(N_("The application's metadata has no signing certificate to check this signature."))
    try:
        _verify_within_budget(lambda: security().verify(incoming.xml.decode("utf-8"), msgtype))
    except TooManyRequests:
        raise
    except Exception as exc:  # pysaml2 signals a bad signature with several exception types
        # The log line (one WARNING, by the error handler) names the SP and the kind of failure; the
        # exception's text is left out: pysaml2's carry the whole document or xmlsec1's command line.
        raise SamlError(
            N_("The signature of this %(what)s does not verify with the application's registered keys."),
            params={"what": label},
            status=403,
            detail=f"signature refused for SP {sp.entity_id}: {type(exc).__name__}",
        ) from exc
    return True


def check_destination(message: SamlBase, endpoint_url: str, signed: bool) -> None:
    if message.destination:
        if message.destination != endpoint_url:
            raise SamlError(
                N_(
                    "This message was addressed to another endpoint (Destination); check the IdP URLs the "
                    "application uses."
                ),
                detail=f"destination {message.destination[:200]!r}, expected {endpoint_url!r}",
            )
    elif signed:
        # A signed message must say where it is going (SAML bindings 3.4.5.2, 3.5.5.2).
        raise SamlError(N_("This signed message does not say where it is going (Destination)."))


def _instant(text: str | None, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise SamlError(N_("The message's %(what)s is not a date and time."), params={"what": what}) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_age(message: SamlBase, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    issued = _instant(message.issue_instant, "IssueInstant")
    if issued < now - MAX_AGE - CLOCK_SKEW or issued > now + CLOCK_SKEW:
        raise SamlError(
            N_(
                "This request is too old or dated in the future. Go back to the application and try again; "
                "if it happens again, check the clocks."
            ),
            detail=f"IssueInstant {message.issue_instant}",
        )
    not_on_or_after = getattr(message, "not_on_or_after", None)
    if not_on_or_after and _instant(not_on_or_after, "NotOnOrAfter") <= now - CLOCK_SKEW:
        raise SamlError(
            N_("This request has expired (NotOnOrAfter). Go back to the application and try again.")
        )


def check_replay(kv: KeyValueStore, sp_entity_id: str, message_id: str) -> None:
    """Each message ID once per SP, for as long as the message could pass ``check_age``."""
    digest = hashlib.sha256(f"{sp_entity_id}\n{message_id}".encode()).hexdigest()
    if not kv.set_if_absent(SEEN_PREFIX + digest, b"1", ttl=SEEN_TTL):
        raise SamlError(
            N_("This request was already used. Go back to the application and start again."),
            detail=f"replayed ID from {sp_entity_id}",
        )
