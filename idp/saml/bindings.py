"""The HTTP-Redirect and HTTP-POST bindings: reading SAML messages from requests, writing them back.

An HTTP-Redirect signature covers the query string exactly as it was sent (SAML bindings 3.4.4.1), so it
is checked over the raw, still URL-encoded parameters, never over a re-encoding of the decoded values.
"""

import base64
import binascii
import zlib
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from idp.i18n import N_
from idp.saml.errors import SamlError
from idp.saml.names import BINDING_POST, BINDING_REDIRECT, SIGN_ALG

MAX_MESSAGE_BYTES = 128 * 1024  # an inflated message; signed AuthnRequests are a few KiB
MAX_RELAY_STATE = 1024  # the bindings say 80 bytes; some SPs send more, none needs this much

_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
SIGNATURE_ALGORITHMS: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    _MORE + "rsa-sha256": ("rsa", hashes.SHA256()),
    _MORE + "rsa-sha384": ("rsa", hashes.SHA384()),
    _MORE + "rsa-sha512": ("rsa", hashes.SHA512()),
    _MORE + "ecdsa-sha256": ("ec", hashes.SHA256()),
    _MORE + "ecdsa-sha384": ("ec", hashes.SHA384()),
    _MORE + "ecdsa-sha512": ("ec", hashes.SHA512()),
}
SHA1_ALGORITHMS = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", _MORE + "ecdsa-sha1")
WEAK_ALGORITHM = N_(
    "The application signs with SHA-1, which this IdP does not accept. Configure it to sign with RSA-SHA256."
)


@dataclass(frozen=True)
class QuerySignature:
    algorithm: str
    value: bytes
    signed: bytes  # the octets the signature covers


@dataclass(frozen=True)
class Incoming:
    """One SAML message as it arrived: ``field`` is SAMLRequest or SAMLResponse."""

    binding: str
    field: str
    xml: bytes
    relay_state: str | None
    query_signature: QuerySignature | None = None


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SamlError(N_("The SAML message is not valid base64.")) from exc


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        xml = inflater.decompress(data, MAX_MESSAGE_BYTES)
    except zlib.error as exc:
        raise SamlError(
            N_("The SAML message is not DEFLATE-compressed as the Redirect binding requires.")
        ) from exc
    if inflater.unconsumed_tail:
        raise SamlError(N_("The SAML message is too large."), status=413)
    return xml


def _relay_state(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_RELAY_STATE:
        raise SamlError(N_("The RelayState is too long."))
    return value


def read_redirect(query_string: bytes) -> Incoming:
    try:
        query = query_string.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SamlError(N_("The query string is not URL-encoded.")) from exc
    raw: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name = unquote_plus(name)
        if name in raw:
            # Which copy would the signature cover? Refuse rather than guess.
            raise SamlError(N_("The parameter %(name)s appears twice."), params={"name": name})
        raw[name] = value
    fields = [name for name in ("SAMLRequest", "SAMLResponse") if name in raw]
    if len(fields) != 1:
        raise SamlError(N_("Expected one SAMLRequest or SAMLResponse parameter."))
    field = fields[0]
    xml = _inflate(_b64decode(unquote_plus(raw[field])))
    relay_state = _relay_state(unquote_plus(raw["RelayState"]) if "RelayState" in raw else None)
    signature = None
    if "Signature" in raw or "SigAlg" in raw:
        if "Signature" not in raw or "SigAlg" not in raw:
            raise SamlError(N_("The query string carries SigAlg or Signature without the other."))
        signed = f"{field}={raw[field]}"
        if "RelayState" in raw:
            signed += f"&RelayState={raw['RelayState']}"
        signed += f"&SigAlg={raw['SigAlg']}"
        signature = QuerySignature(
            algorithm=unquote_plus(raw["SigAlg"]),
            value=_b64decode(unquote_plus(raw["Signature"])),
            signed=signed.encode("ascii"),
        )
    return Incoming(BINDING_REDIRECT, field, xml, relay_state, signature)


def read_post(form: dict[str, str]) -> Incoming:
    fields = [name for name in ("SAMLRequest", "SAMLResponse") if form.get(name)]
    if len(fields) != 1:
        raise SamlError(N_("Expected one SAMLRequest or SAMLResponse form field."))
    xml = _b64decode(form[fields[0]])
    if len(xml) > MAX_MESSAGE_BYTES:
        raise SamlError(N_("The SAML message is too large."), status=413)
    return Incoming(BINDING_POST, fields[0], xml, _relay_state(form.get("RelayState")))


def verify_query_signature(signature: QuerySignature, certificates: tuple[x509.Certificate, ...]) -> None:
    """Raises unless one of the SP's signing certificates made ``signature``."""
    if signature.algorithm in SHA1_ALGORITHMS:
        raise SamlError(WEAK_ALGORITHM, detail=f"SigAlg {signature.algorithm}")
    if signature.algorithm not in SIGNATURE_ALGORITHMS:
        raise SamlError(
            N_("The signature algorithm is not supported; use RSA-SHA256."), detail=signature.algorithm
        )
    kind, digest = SIGNATURE_ALGORITHMS[signature.algorithm]
    for certificate in certificates:
        key = certificate.public_key()
        try:
            if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
                key.verify(signature.value, signature.signed, padding.PKCS1v15(), digest)
                return
            if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
                # XML signatures carry ECDSA as r || s, not DER.
                half = len(signature.value) // 2
                der = encode_dss_signature(
                    int.from_bytes(signature.value[:half], "big"),
                    int.from_bytes(signature.value[half:], "big"),
                )
                key.verify(der, signature.signed, ec.ECDSA(digest))
                return
        except (InvalidSignature, ValueError):
            continue
    raise SamlError(
        N_("The signature of this request does not verify with the application's registered keys."),
        status=403,
        detail="signature refused: query signature invalid",
    )


def redirect_url(
    location: str, field: str, xml: str, relay_state: str | None, private_key: rsa.RSAPrivateKey
) -> str:
    """``location`` with the message DEFLATE-compressed in the query, signed RSA-SHA256."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressed = deflater.compress(xml.encode("utf-8")) + deflater.flush()
    query = f"{field}={quote_plus(base64.b64encode(compressed).decode())}"
    if relay_state is not None:
        query += f"&RelayState={quote_plus(relay_state)}"
    query += f"&SigAlg={quote_plus(SIGN_ALG)}"
    signature = private_key.sign(query.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    query += f"&Signature={quote_plus(base64.b64encode(signature).decode())}"
    return location + ("&" if "?" in location else "?") + query


def post_value(xml: str) -> str:
    return base64.b64encode(xml.encode("utf-8")).decode()
