"""XML Encryption of a signed assertion to an SP's certificate (SAML EncryptedAssertion).

AES-256-GCM for the assertion (XML Encryption 1.1), its key wrapped with RSA-OAEP (``rsa-oaep-mgf1p``),
the pair today's SP libraries (Shibboleth SP, SimpleSAMLphp, python3-saml, Keycloak) all decrypt.
pysaml2's own encryption is not used: it only offers 3DES-CBC, and an assertion it signs before encrypting
does not verify after decryption. The block cipher is the caller's choice from the SP's metadata
(``spoptions.encryption_method``): AES-128-GCM, or AES-CBC for an SP that lists nothing better.

The assertion is encrypted as a whole element that declares its own namespaces, so its signature (exclusive
canonicalisation) still verifies once the SP has put it back into the response.
"""

import base64
import os
from xml.parsers.expat import ExpatError

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from defusedxml import DefusedXmlException
from defusedxml.minidom import parseString

XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
AES256_CBC = XENC + "aes256-cbc"
AES128_CBC = XENC + "aes128-cbc"
KEY_BITS = {AES256_GCM: 256, AES128_GCM: 128, AES256_CBC: 256, AES128_CBC: 128}
RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
SHA1 = DS + "sha1"  # OAEP's hash inside rsa-oaep-mgf1p; not a signature


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _one_element(xml: str) -> str:
    """``xml`` without the whitespace around its element: an XML Encryption ``Type=Element`` plaintext is
    that one element and nothing else. Shibboleth SP refuses anything more ("Decryption did not result in a
    single element"); the newline xmlsec1 writes after a signed document would be a second node."""
    element = xml.strip()
    if element.startswith("<?"):
        raise ValueError("only a single element is encrypted, without an XML declaration")
    try:
        # minidom keeps comments and processing instructions beside the root; text there does not parse.
        document = parseString(element, forbid_dtd=True)
    except (ExpatError, DefusedXmlException) as exc:
        raise ValueError("only a single element is encrypted") from exc
    if len(document.childNodes) != 1:
        raise ValueError("only a single element is encrypted, nothing beside it")
    return element


def _seal(method: str, key: bytes, plaintext: bytes) -> bytes:
    """The cipher value: the IV, then the ciphertext (with GCM's 128-bit tag appended)."""
    if method in (AES256_GCM, AES128_GCM):
        iv = os.urandom(12)
        return iv + AESGCM(key).encrypt(iv, plaintext, None)
    # CBC, for SPs that can do nothing else. XML Encryption's padding only fixes the last byte (the count);
    # PKCS#7 padding satisfies it.
    iv = os.urandom(16)
    padder = block_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def encrypted_assertion(assertion_xml: str, certificate: x509.Certificate, method: str = AES256_GCM) -> str:
    """``<saml:EncryptedAssertion>`` holding ``assertion_xml``: one self-contained element, no declaration."""
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("assertions are encrypted to RSA keys only")
    plaintext = _one_element(assertion_xml).encode("utf-8")
    if method not in KEY_BITS:
        raise ValueError(f"unknown encryption method {method!r}")
    key = os.urandom(KEY_BITS[method] // 8)
    sealed = _seal(method, key, plaintext)
    wrapped = public_key.encrypt(
        key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
    )
    return (
        f'<saml:EncryptedAssertion xmlns:saml="{SAML}">'
        f'<xenc:EncryptedData xmlns:xenc="{XENC}" xmlns:ds="{DS}" Type="{XENC}Element">'
        f'<xenc:EncryptionMethod Algorithm="{method}"/>'
        "<ds:KeyInfo><xenc:EncryptedKey>"
        f'<xenc:EncryptionMethod Algorithm="{RSA_OAEP_MGF1P}"><ds:DigestMethod Algorithm="{SHA1}"/>'
        "</xenc:EncryptionMethod>"
        f"<xenc:CipherData><xenc:CipherValue>{_b64(wrapped)}</xenc:CipherValue></xenc:CipherData>"
        "</xenc:EncryptedKey></ds:KeyInfo>"
        f"<xenc:CipherData><xenc:CipherValue>{_b64(sealed)}</xenc:CipherValue></xenc:CipherData>"
        "</xenc:EncryptedData></saml:EncryptedAssertion>"
    )
