"""What the IdP needs from a service provider's SAML metadata, read once and checked.

The metadata is the SP's registration: it alone says where assertions may be sent (AssertionConsumerService),
where logout messages go (SingleLogoutService), which keys sign the SP's requests, which key assertions are
encrypted to, and whether every AuthnRequest must be signed. Nothing here trusts keys or URLs carried in a
request itself.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from idp.saml.names import BINDING_POST, BINDING_REDIRECT, BINDING_SOAP, PROTOCOL

MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
MAX_METADATA_BYTES = 512 * 1024
# idp_rp_logins.client_id holds the entity id of every SP a session used.
MAX_ENTITY_ID = 255
MAX_NAME_ID_FORMATS = 16


@dataclass(frozen=True)
class Endpoint:
    binding: str
    location: str
    response_location: str | None = None
    index: int | None = None
    is_default: bool = False


@dataclass(frozen=True)
class SpMetadata:
    entity_id: str
    acs: tuple[Endpoint, ...]
    slo: tuple[Endpoint, ...]
    signing_certs: tuple[x509.Certificate, ...]
    encryption_certs: tuple[x509.Certificate, ...]
    authn_requests_signed: bool
    want_assertions_signed: bool
    valid_until: datetime | None
    name_id_formats: tuple[str, ...] = ()  # NameIDFormat, in the metadata's order of preference
    display_name: str | None = None  # mdui:DisplayName, else md:OrganizationDisplayName (English first)

    def expired(self, now: datetime | None = None) -> bool:
        return self.valid_until is not None and self.valid_until <= (now or datetime.now(UTC))

    def default_acs(self) -> Endpoint | None:
        """The HTTP-POST endpoint marked default, else the one with the lowest index."""
        posts = [endpoint for endpoint in self.acs if endpoint.binding == BINDING_POST]
        for endpoint in posts:
            if endpoint.is_default:
                return endpoint
        return posts[0] if posts else None

    def acs_by_url(self, url: str) -> Endpoint | None:
        return next((e for e in self.acs if e.binding == BINDING_POST and e.location == url), None)

    def acs_by_index(self, index: int) -> Endpoint | None:
        return next((e for e in self.acs if e.binding == BINDING_POST and e.index == index), None)

    def slo_endpoint(self, bindings: tuple[str, ...]) -> Endpoint | None:
        """The first SingleLogoutService with one of ``bindings``, in the order of preference given."""
        for binding in bindings:
            for endpoint in self.slo:
                if endpoint.binding == binding:
                    return endpoint
        return None


LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _url(value: str | None, what: str) -> str:
    """Assertions and logout messages travel to these: https, or http on this machine only (as for OIDC
    redirect URIs)."""
    if not value:
        raise ValueError(f"{what}: no Location")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in value for c in "\r\n\t <>\"'"):
        raise ValueError(f"{what}: {value[:200]!r} is not an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ValueError(f"{what}: {value[:200]!r} must use https (http only on localhost)")
    if parts.fragment:
        raise ValueError(f"{what}: {value[:200]!r} has a fragment")
    return value


def _boolean(value: str | None) -> bool:
    return (value or "").strip() in ("true", "1")


def _certificates(descriptor: Element, use: str) -> tuple[x509.Certificate, ...]:
    found = []
    for key in descriptor.findall(f"{MD}KeyDescriptor"):
        if key.get("use") not in (None, "", use):
            continue
        for element in key.iter(f"{DS}X509Certificate"):
            text = "".join((element.text or "").split())
            try:
                certificate = x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
            except (ValueError, binascii.Error) as exc:
                raise ValueError(f"a {use} KeyDescriptor holds an unreadable certificate") from exc
            if not isinstance(certificate.public_key(), rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                raise ValueError(f"a {use} certificate has neither an RSA nor an EC key")
            found.append(certificate)
    return tuple(found)


def _endpoints(descriptor: Element, tag: str) -> tuple[Endpoint, ...]:
    found = []
    for element in descriptor.findall(f"{MD}{tag}"):
        binding = element.get("Binding", "")
        index_text = element.get("index")
        try:
            index = int(index_text) if index_text is not None else None
        except ValueError as exc:
            raise ValueError(f"{tag}: index {index_text!r} is not a number") from exc
        response_location = element.get("ResponseLocation")
        found.append(
            Endpoint(
                binding=binding,
                location=_url(element.get("Location"), tag),
                response_location=_url(response_location, f"{tag} ResponseLocation")
                if response_location
                else None,
                index=index,
                is_default=_boolean(element.get("isDefault")),
            )
        )
    return tuple(sorted(found, key=lambda e: (e.index is None, e.index or 0)))


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"validUntil {value!r} is not a date and time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


MDUI = "{urn:oasis:names:tc:SAML:metadata:ui}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_DISPLAY_NAME = 100


def _display_name(entity: Element, descriptor: Element) -> str | None:
    """What the login page and the phone call this SP: its UIInfo display name, else its organisation's;
    English when there is a choice. Printable text only, cut to ``MAX_DISPLAY_NAME``."""
    for found in (
        descriptor.findall(f"{MD}Extensions/{MDUI}UIInfo/{MDUI}DisplayName"),
        entity.findall(f"{MD}Organization/{MD}OrganizationDisplayName"),
    ):
        names = sorted(found, key=lambda element: element.get(XML_LANG, "") != "en")
        for element in names:
            text = " ".join((element.text or "").split())
            if text and text.isprintable():
                return text[:MAX_DISPLAY_NAME]
    return None


def parse(xml: str | bytes) -> SpMetadata:
    """Read one SP's metadata; ``ValueError`` says what is missing or wrong."""
    data = xml.encode() if isinstance(xml, str) else xml
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata larger than {MAX_METADATA_BYTES // 1024} KiB")
    try:
        root = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise ValueError(f"not well-formed XML without DTDs or entities ({exc})") from exc
    if root.tag == f"{MD}EntitiesDescriptor":
        entities = root.findall(f".//{MD}EntityDescriptor")
        if len(entities) != 1:
            raise ValueError(f"the file describes {len(entities)} entities; register one SP at a time")
        valid_until = _instant(root.get("validUntil"))
        root = entities[0]
        own = _instant(root.get("validUntil"))
        valid_until = min((v for v in (valid_until, own) if v), default=None)
    elif root.tag == f"{MD}EntityDescriptor":
        valid_until = _instant(root.get("validUntil"))
    else:
        raise ValueError("not SAML metadata: expected an md:EntityDescriptor")
    entity_id = (root.get("entityID") or "").strip()
    if not entity_id or len(entity_id) > MAX_ENTITY_ID:
        raise ValueError(f"entityID: 1 to {MAX_ENTITY_ID} characters")
    descriptors = [
        d for d in root.findall(f"{MD}SPSSODescriptor") if PROTOCOL in d.get("protocolSupportEnumeration", "")
    ]
    if len(descriptors) != 1:
        raise ValueError("expected one SPSSODescriptor supporting the SAML 2.0 protocol")
    descriptor = descriptors[0]
    acs = _endpoints(descriptor, "AssertionConsumerService")
    if not any(endpoint.binding == BINDING_POST for endpoint in acs):
        raise ValueError("no AssertionConsumerService with the HTTP-POST binding (the only one the IdP uses)")
    known = (BINDING_REDIRECT, BINDING_POST, BINDING_SOAP)
    slo = tuple(e for e in _endpoints(descriptor, "SingleLogoutService") if e.binding in known)
    metadata = SpMetadata(
        entity_id=entity_id,
        acs=acs,
        slo=slo,
        signing_certs=_certificates(descriptor, "signing"),
        encryption_certs=_certificates(descriptor, "encryption"),
        authn_requests_signed=_boolean(descriptor.get("AuthnRequestsSigned")),
        want_assertions_signed=_boolean(descriptor.get("WantAssertionsSigned")),
        valid_until=valid_until,
        name_id_formats=tuple(
            text
            for element in descriptor.findall(f"{MD}NameIDFormat")
            if (text := (element.text or "").strip())
        )[:MAX_NAME_ID_FORMATS],
        display_name=_display_name(root, descriptor),
    )
    if metadata.authn_requests_signed and not metadata.signing_certs:
        raise ValueError("AuthnRequestsSigned is true but there is no signing certificate")
    return metadata
