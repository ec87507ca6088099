"""The IdP's own metadata (GET /saml/metadata): endpoints, NameID formats and signing certificates, signed
(unless NEXTAUTH_IDP_SAML_SIGN_METADATA=false), with what federations read: validUntil and cacheDuration,
the scope of eduPerson attributes (shibmd:Scope), mdui:UIInfo, Organization and ContactPerson.

Every published SAML key is listed (the active one first), so that SPs which refresh the metadata learn a
new key while the old one is still valid. No key is published for encryption: nothing an SP sends the IdP
is encrypted (encrypted NameIDs or requests are not supported), so an encryption key would be a promise the
IdP cannot keep.
"""

import threading
import time
from datetime import UTC, datetime, timedelta

from saml2 import md
from saml2.extension import mdui, shibmd
from saml2.xmldsig import KeyInfo, X509Certificate, X509Data

from idp.saml import assertion
from idp.saml.config import (
    SLO_POST,
    SLO_REDIRECT,
    SSO_POST,
    SSO_REDIRECT,
    SamlContext,
    SamlSettings,
)
from idp.saml.names import BINDING_POST, BINDING_REDIRECT, NAMEID_FORMATS, PROTOCOL
from idp.saml.xmlsecurity import certificate_body

CACHE_SECONDS = 300.0
_cache: dict[tuple[str, ...], tuple[float, str]] = {}
_lock = threading.Lock()


def _signing_key(certificate: str) -> md.KeyDescriptor:
    return md.KeyDescriptor(
        use="signing",
        key_info=KeyInfo(
            x509_data=[X509Data(x509_certificate=X509Certificate(text=certificate_body(certificate)))]
        ),
    )


def _ui_info(settings: SamlSettings) -> mdui.UIInfo | None:
    if not (settings.display_name or settings.logo_url or settings.privacy_url):
        return None
    info = mdui.UIInfo()
    if settings.display_name:
        info.display_name.append(mdui.DisplayName(lang=settings.lang, text=settings.display_name))
    if settings.logo_url:
        width, height = settings.logo_size
        info.logo.append(mdui.Logo(text=settings.logo_url, width=str(width), height=str(height)))
    if settings.privacy_url:
        info.privacy_statement_url.append(
            mdui.PrivacyStatementURL(lang=settings.lang, text=settings.privacy_url)
        )
    return info


def _extensions(settings: SamlSettings) -> md.Extensions | None:
    elements = []
    if settings.release.scope:
        elements.append(shibmd.Scope(regexp="false", text=settings.release.scope))
    if (info := _ui_info(settings)) is not None:
        elements.append(info)
    if not elements:
        return None
    extensions = md.Extensions()
    for element in elements:
        extensions.add_extension_element(element)
    return extensions


def _organization(settings: SamlSettings) -> md.Organization | None:
    if not settings.organization_name:
        return None
    lang = settings.lang
    return md.Organization(
        organization_name=[md.OrganizationName(lang=lang, text=settings.organization_name)],
        organization_display_name=[
            md.OrganizationDisplayName(lang=lang, text=settings.organization_display_name)
        ],
        organization_url=[md.OrganizationURL(lang=lang, text=settings.organization_url)],
    )


def _duration(seconds: int) -> str:
    return f"PT{seconds}S"


def build(saml: SamlContext) -> str:
    active = saml.key()
    published = [active] + [
        key for key in saml.services.keys.published("saml") if key.kid != active.kid and key.certificate
    ]
    cache_key = (saml.entity_id, *(key.kid for key in published))
    with _lock:
        cached = _cache.get(cache_key)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    settings = saml.settings
    descriptor = md.IDPSSODescriptor(
        protocol_support_enumeration=PROTOCOL,
        extensions=_extensions(settings),
        # Whether requests must be signed is each SP's own statement (AuthnRequestsSigned in its metadata).
        want_authn_requests_signed="false",
        key_descriptor=[_signing_key(key.certificate or "") for key in published],
        single_logout_service=[
            md.SingleLogoutService(binding=BINDING_REDIRECT, location=saml.url(SLO_REDIRECT)),
            md.SingleLogoutService(binding=BINDING_POST, location=saml.url(SLO_POST)),
        ],
        name_id_format=[md.NameIDFormat(text=uri) for uri in NAMEID_FORMATS.values()],
        single_sign_on_service=[
            md.SingleSignOnService(binding=BINDING_REDIRECT, location=saml.url(SSO_REDIRECT)),
            md.SingleSignOnService(binding=BINDING_POST, location=saml.url(SSO_POST)),
        ],
    )
    entity = md.EntityDescriptor(
        id=assertion.new_id(),
        entity_id=saml.entity_id,
        # From now: the cache below keeps a copy for minutes, not days.
        valid_until=assertion.instant(datetime.now(UTC) + timedelta(seconds=settings.metadata_valid_seconds)),
        cache_duration=_duration(settings.metadata_cache_seconds),
        idpsso_descriptor=descriptor,
        organization=_organization(settings),
        contact_person=[
            md.ContactPerson(
                contact_type=contact.kind, email_address=[md.EmailAddress(text=f"mailto:{contact.email}")]
            )
            for contact in settings.contacts
        ],
    )
    body = assertion.sign(entity, saml.security()) if settings.sign_metadata else assertion.serialise(entity)
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + body
    with _lock:
        _cache.clear()
        _cache[cache_key] = (time.monotonic(), xml)
    return xml
