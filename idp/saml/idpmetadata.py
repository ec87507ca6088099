"""The IdP's own metadata (GET /saml/metadata): endpoints, NameID formats and signing certificates, signed.

Every published SAML key is listed (the active one first), so that SPs which refresh the metadata learn a
new key while the old one is still valid.
"""

import threading
import time

from saml2 import md
from saml2.xmldsig import KeyInfo, X509Certificate, X509Data

from idp.saml import assertion
from idp.saml.config import (
    SLO_POST,
    SLO_REDIRECT,
    SSO_POST,
    SSO_REDIRECT,
    SamlContext,
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
    descriptor = md.IDPSSODescriptor(
        protocol_support_enumeration=PROTOCOL,
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
        id=assertion.new_id(), entity_id=saml.entity_id, idpsso_descriptor=descriptor
    )
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + assertion.sign(entity, saml.security())
    with _lock:
        _cache.clear()
        _cache[cache_key] = (time.monotonic(), xml)
    return xml
