"""SAML single logout over the SOAP binding: the IdP itself sends an SP the signed LogoutRequest and checks
the LogoutResponse it answers with (signed with the SP's registered key, InResponseTo the request sent,
issued by that SP, status Success). Bounded: a whole-exchange timeout, and a cap on the answer's size."""

import logging
import re

import gevent
import httpx
from saml2 import samlp
from saml2.soap import parse_soap_enveloped_saml_logout_response

from idp.saml import assertion
from idp.saml.config import SamlContext
from idp.saml.registry import ServiceProvider

log = logging.getLogger("nextauth.idp.saml")

SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_RESPONSE_BYTES = 64 * 1024  # a signed LogoutResponse is a few KiB
DEFAULT_TIMEOUT = 5.0


def envelope(xml: str) -> bytes:
    return (
        f'<soap11:Envelope xmlns:soap11="{SOAP_ENVELOPE}"><soap11:Body>{xml}</soap11:Body></soap11:Envelope>'
    ).encode()


def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes] | None:
    """The status and body of the answer, or None if there was none in time or it was too large."""
    headers = {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": "http://www.oasis-open.org/committees/security",
    }
    # httpx's timeout bounds each read, not the exchange: a server dripping bytes is cut off here.
    with gevent.Timeout(timeout, False), httpx.Client(timeout=timeout, follow_redirects=False) as client:
        with client.stream("POST", url, content=body, headers=headers) as answer:
            received = bytearray()
            for chunk in answer.iter_bytes():
                received += chunk
                if len(received) > MAX_RESPONSE_BYTES:
                    log.warning("SOAP logout answer from %s is larger than %d bytes", url, MAX_RESPONSE_BYTES)
                    return None
            return answer.status_code, bytes(received)
    log.warning("SOAP logout to %s: no answer within %.1f s", url, timeout)
    return None


def element_text(body: bytes, tag: str) -> str:
    """The Body's one SAML element (``tag``), as the exact text the SP signed.

    Re-serialising it (as pysaml2's SOAP helpers do) renames namespace prefixes, and the exclusive
    canonicalisation its signature covers keeps prefixes: the digest would no longer match. SAML elements
    declare their namespaces themselves; one that relies on the envelope's declarations fails to parse."""
    parse_soap_enveloped_saml_logout_response(body)  # an envelope whose Body holds one LogoutResponse
    start = re.search(rb"<(?:([A-Za-z_][\w.-]*):)?" + tag.encode() + rb"[\s>/]", body)
    if start is None:
        raise ValueError(f"no {tag}")
    prefix = start.group(1)
    end_tag = b"</" + (prefix + b":" if prefix else b"") + tag.encode() + b">"
    stop = body.rindex(end_tag) + len(end_tag)
    return body[start.start() : stop].decode()


def check_response(saml: SamlContext, sp: ServiceProvider, body: bytes, request_id: str) -> bool:
    """Whether this SOAP answer is the SP's signed, successful LogoutResponse to ``request_id``."""
    try:
        message = saml.security(sp).verify(element_text(body, "LogoutResponse"), "logout_response")
    except Exception as exc:  # pysaml2 signals a bad envelope or signature with many exception types
        log.warning("SOAP logout answer from %s refused: %s", sp.entity_id, type(exc).__name__)
        return False
    if not isinstance(message, samlp.LogoutResponse):
        return False
    issuer = message.issuer.text.strip() if message.issuer is not None and message.issuer.text else ""
    if issuer != sp.entity_id or message.in_response_to != request_id:
        log.warning("SOAP logout answer from %s does not answer the request sent", sp.entity_id)
        return False
    code = message.status.status_code.value if message.status and message.status.status_code else ""
    if code != assertion.STATUS_SUCCESS:
        log.info("SOAP logout at %s answered %s", sp.entity_id, code.rsplit(":", 1)[-1])
        return False
    return True


def deliver(
    saml: SamlContext, sp: ServiceProvider, url: str, signed_request: str, request_id: str, timeout: float
) -> bool:
    """Send one signed LogoutRequest; True if the SP confirmed the logout."""
    try:
        answered = _post(url, envelope(signed_request), timeout)
    except httpx.HTTPError as exc:
        log.warning("SOAP logout to %s failed: %s", sp.entity_id, type(exc).__name__)
        return False
    if answered is None:
        return False
    status, body = answered
    if status != 200:
        log.warning("SOAP logout to %s: HTTP %d", sp.entity_id, status)
        return False
    confirmed = check_response(saml, sp, body, request_id)
    log.info("SOAP logout to %s: %s", sp.entity_id, "confirmed" if confirmed else "not confirmed")
    return confirmed
