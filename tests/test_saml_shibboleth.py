"""The IdP's SAML answers as Shibboleth SP 3 takes them.

The unit tests here check what Shibboleth is strict about and lenient SPs (python3-saml) let pass: an
encrypted assertion must decrypt to exactly one element.
"""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from defusedxml.ElementTree import fromstring
from defusedxml.minidom import parseString

XENC = "{http://www.w3.org/2001/04/xmlenc#}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
ELEMENT = '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"/>'


def self_signed(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def decrypt(encrypted_xml: str, key: rsa.RSAPrivateKey) -> bytes:
    """What an SP does with our EncryptedAssertion: unwrap the AES key with RSA-OAEP, open AES-GCM."""
    root = fromstring(encrypted_xml)
    assert root.tag == f"{SAML}EncryptedAssertion"
    data = root.find(f"{XENC}EncryptedData")
    assert data is not None and data.get("Type") == "http://www.w3.org/2001/04/xmlenc#Element"
    wrapped = root.findtext(f".//{XENC}EncryptedKey/{XENC}CipherData/{XENC}CipherValue")
    sealed = data.findtext(f"{XENC}CipherData/{XENC}CipherValue")
    assert wrapped and sealed
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    content_key = key.decrypt(base64.b64decode(wrapped), oaep)
    raw = base64.b64decode(sealed)
    return AESGCM(content_key).decrypt(raw[:12], raw[12:], None)


def signed_assertion() -> str:
    """An assertion as the IdP signs it (xmlsec1, through pysaml2), before encryption."""
    from idp.keys import LoadedKey, _self_signed
    from idp.saml import assertion
    from idp.saml.xmlsecurity import XmlSecurity
    from idp.sessions import SignedInUser

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = LoadedKey(
        kid="test-saml",
        purpose="saml",
        alg="RS256",
        private_key=private_key,
        jose=None,  # type: ignore[arg-type]  # not used for XML signatures
        certificate=_self_signed(private_key, "test IdP"),
        created_at=datetime.now(UTC),
        retired_at=None,
    )
    now = datetime.now(UTC)
    user = SignedInUser(
        sid="sid",
        sub="sam",
        name="Sam Example",
        email="sam@example.org",
        email_verified=True,
        groups=("staff",),
        amr=("hwk",),
        acr="2",
        method="qr",
        auth_time=int(now.timestamp()),
        expires_at=int(now.timestamp()) + 3600,
    )
    built = assertion.build_assertion(
        idp_entity_id="https://idp.example/saml/metadata",
        sp_entity_id="https://sp.example/shibboleth",
        acs_url="https://sp.example/Shibboleth.sso/SAML2/POST",
        in_response_to="_request",
        subject=assertion.Subject("_transient", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "_s"),
        user=user,
        class_ref="urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        released=("uid",),
        now=now,
    )
    return assertion.sign(built, XmlSecurity(key))


def test_encrypted_assertion_decrypts_to_exactly_one_element() -> None:
    from idp.saml import xmlenc

    signed = signed_assertion()
    sp_key, sp_certificate = self_signed("sp")
    plaintext = decrypt(xmlenc.encrypted_assertion(signed, sp_certificate), sp_key).decode("utf-8")
    # No text node before or after the element: the first and last characters are its own tags.
    assert plaintext.startswith("<saml:Assertion ") and plaintext.endswith("</saml:Assertion>")
    # As Shibboleth checks it: the decrypted document has one child node, the assertion.
    nodes = parseString(plaintext).childNodes
    assert len(nodes) == 1 and nodes[0].nodeType == nodes[0].ELEMENT_NODE
    assert (nodes[0].namespaceURI, nodes[0].localName) == (SAML[1:-1], "Assertion")
    assert plaintext == signed  # exactly the signed element, nothing added or lost


def test_a_signed_assertion_has_no_text_around_it() -> None:
    signed = signed_assertion()
    assert signed == signed.strip() and not signed.startswith("<?xml")


@pytest.mark.parametrize(
    "plaintext",
    [
        f'<?xml version="1.0"?>{ELEMENT}',
        f"text{ELEMENT}",
        f"{ELEMENT}text",
        f"{ELEMENT}<!-- a comment -->",
        ELEMENT + ELEMENT,
        "",
    ],
)
def test_only_one_element_is_encrypted(plaintext: str) -> None:
    from idp.saml import xmlenc

    _, sp_certificate = self_signed("sp")
    with pytest.raises(ValueError, match="single element"):
        xmlenc.encrypted_assertion(plaintext, sp_certificate)


def test_whitespace_around_the_element_is_not_encrypted() -> None:
    from idp.saml import xmlenc

    sp_key, sp_certificate = self_signed("sp")
    encrypted = xmlenc.encrypted_assertion(f"\n{ELEMENT}\n", sp_certificate)
    assert decrypt(encrypted, sp_key) == ELEMENT.encode()
