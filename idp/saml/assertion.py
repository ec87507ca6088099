"""Building the IdP's SAML messages: assertions, responses, logout messages; signed with the SAML key.

Every assertion is signed on its own, then (when the SP asked for it) encrypted, then placed in a response
that is signed as well. Each element is signed while it is a document of its own, so the signatures hold
wherever the element ends up.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from saml2 import SamlBase, md, saml, samlp
from saml2.s_utils import factory
from saml2.sigver import pre_signature_part

from idp.saml import attributes
from idp.saml.names import DIGEST_ALG, NAMEID_ENTITY, SIGN_ALG
from idp.saml.xmlsecurity import XmlSecurity
from idp.sessions import SignedInUser

ASSERTION_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")
# The usual prefixes, the same in every element the IdP signs. An SP that decrypts an assertion puts it back
# into the response, and an XML library may then rename a prefix that clashes with the response's, which
# would change what was signed.
PREFIXES = {
    "md": md.NAMESPACE,
    "samlp": samlp.NAMESPACE,
    "saml": saml.NAMESPACE,
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xs": "http://www.w3.org/2001/XMLSchema",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    # The IdP's metadata (idpmetadata): user-interface information and the scope of eduPerson attributes.
    "mdui": "urn:oasis:names:tc:SAML:metadata:ui",
    "shibmd": "urn:mace:shibboleth:metadata:1.0",
}


def new_id() -> str:
    # xs:ID must not start with a digit.
    return "_" + secrets.token_hex(20)


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_declaration(xml: str) -> str:
    # The trailing newline xmlsec1 writes goes too: a signed assertion is embedded or encrypted as exactly
    # its element.
    return _DECLARATION.sub("", xml, count=1).rstrip()


def serialise(element: SamlBase) -> str:
    return without_declaration(element.to_string(PREFIXES).decode("utf-8"))


def issuer(entity_id: str) -> saml.Issuer:
    return saml.Issuer(text=entity_id, format=NAMEID_ENTITY)


def sign(
    element: SamlBase, security: XmlSecurity, algorithms: tuple[str, str] = (SIGN_ALG, DIGEST_ALG)
) -> str:
    """``element`` as an XML document of its own with an enveloped signature (no XML declaration);
    ``algorithms`` are the (SignatureMethod, DigestMethod) URIs."""
    sign_alg, digest_alg = algorithms
    element.signature = pre_signature_part(
        element.id, security.certificate, None, digest_alg=digest_alg, sign_alg=sign_alg
    )
    signed = security.sign(
        serialise(element), node_name=f"{element.c_namespace}:{element.c_tag}", node_id=element.id
    )
    return without_declaration(signed)


def status(code: str = STATUS_SUCCESS, second: str | None = None, message: str | None = None) -> samlp.Status:
    inner = samlp.StatusCode(value=second) if second else None
    return samlp.Status(
        status_code=samlp.StatusCode(value=code, status_code=inner),
        status_message=samlp.StatusMessage(text=message) if message else None,
    )


@dataclass(frozen=True)
class Subject:
    """Who the assertion is about, as this SP knows them."""

    name_id: str
    name_id_format: str
    session_index: str


def build_assertion(
    *,
    idp_entity_id: str,
    sp_entity_id: str,
    acs_url: str,
    in_response_to: str,
    subject: Subject,
    user: SignedInUser,
    class_ref: str,
    released: tuple[str, ...],
    now: datetime,
    lifetime: timedelta = ASSERTION_LIFETIME,
    release: attributes.Release = attributes.DEFAULT_RELEASE,
) -> saml.Assertion:
    expires = instant(now + lifetime)
    name_id = saml.NameID(
        text=subject.name_id,
        format=subject.name_id_format,
        name_qualifier=idp_entity_id,
        sp_name_qualifier=sp_entity_id,
    )
    confirmation = saml.SubjectConfirmation(
        method=saml.SCM_BEARER,
        subject_confirmation_data=saml.SubjectConfirmationData(
            in_response_to=in_response_to, not_on_or_after=expires, recipient=acs_url
        ),
    )
    authn = saml.AuthnStatement(
        authn_instant=instant(datetime.fromtimestamp(user.auth_time, UTC)),
        session_index=subject.session_index,
        # The SP's session should not outlive the IdP session it came from.
        session_not_on_or_after=instant(datetime.fromtimestamp(user.expires_at, UTC)),
        authn_context=saml.AuthnContext(authn_context_class_ref=saml.AuthnContextClassRef(text=class_ref)),
    )
    return saml.Assertion(
        id=new_id(),
        version="2.0",
        issue_instant=instant(now),
        issuer=issuer(idp_entity_id),
        subject=saml.Subject(name_id=name_id, subject_confirmation=[confirmation]),
        conditions=saml.Conditions(
            not_before=instant(now - CLOCK_SKEW),
            not_on_or_after=expires,
            audience_restriction=[saml.AudienceRestriction(audience=[saml.Audience(text=sp_entity_id)])],
        ),
        authn_statement=[authn],
        attribute_statement=[s] if (s := attributes.statement(user, released, release)) is not None else [],
    )


def response(
    *,
    idp_entity_id: str,
    destination: str,
    in_response_to: str,
    response_status: samlp.Status,
    assertion_xml: str | None,
    security: XmlSecurity,
    now: datetime,
    signed: bool = True,
    algorithms: tuple[str, str] = (SIGN_ALG, DIGEST_ALG),
) -> str:
    """A samlp:Response, signed unless ``signed`` is false (an SP that only wants the assertion signed),
    carrying ``assertion_xml`` (a signed or encrypted assertion) if given."""
    message = samlp.Response(
        id=new_id(),
        version="2.0",
        issue_instant=instant(now),
        destination=destination,
        in_response_to=in_response_to,
        issuer=issuer(idp_entity_id),
        status=response_status,
    )
    if signed:
        message.signature = pre_signature_part(
            message.id, security.certificate, None, digest_alg=algorithms[1], sign_alg=algorithms[0]
        )
    xml = serialise(message)
    if assertion_xml is not None:
        # The assertion follows Status, the last child pysaml2 wrote: just before the closing tag.
        close = xml.rindex("</")
        if not xml[close:].rstrip().endswith(":Response>"):
            raise ValueError("unexpected serialisation of the response")
        xml = xml[:close] + assertion_xml + xml[close:]
    if not signed:
        return xml
    node_name = f"{samlp.Response.c_namespace}:{samlp.Response.c_tag}"
    return security.sign(xml, node_name=node_name, node_id=message.id)


def logout_request(
    *,
    idp_entity_id: str,
    destination: str,
    name_id: str,
    name_id_format: str,
    sp_entity_id: str,
    session_index: str | None,
    now: datetime,
) -> samlp.LogoutRequest:
    return samlp.LogoutRequest(
        id=new_id(),
        version="2.0",
        issue_instant=instant(now),
        destination=destination,
        not_on_or_after=instant(now + ASSERTION_LIFETIME),
        reason="urn:oasis:names:tc:SAML:2.0:logout:user",
        issuer=issuer(idp_entity_id),
        name_id=saml.NameID(
            text=name_id, format=name_id_format, name_qualifier=idp_entity_id, sp_name_qualifier=sp_entity_id
        ),
        session_index=[samlp.SessionIndex(text=session_index)] if session_index else [],
    )


def logout_response(
    *, idp_entity_id: str, destination: str, in_response_to: str, response_status: samlp.Status, now: datetime
) -> samlp.LogoutResponse:
    return factory(
        samlp.LogoutResponse,
        id=new_id(),
        version="2.0",
        issue_instant=instant(now),
        destination=destination,
        in_response_to=in_response_to,
        issuer=issuer(idp_entity_id),
        status=response_status,
    )
