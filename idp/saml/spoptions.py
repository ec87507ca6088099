"""Per-SP options: how the IdP signs what it sends an SP, how long an assertion lives, how attributes are
named, and (for SPs registered by URL) where their metadata comes from.

Stored as JSON in ``saml_service_providers.options``; a missing key means the default, so SPs registered
before an option existed keep today's behaviour (both signed, RSA-SHA256, five minutes, ``uri`` names).
"""

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from defusedxml.ElementTree import fromstring

from idp.saml.names import DIGEST_ALG, SIGN_ALG

# The operator's word -> (SignatureMethod, DigestMethod). The SAML key is RSA; SHA-1 is never made.
SIGNATURE_ALGORITHMS = {
    "rsa-sha256": (SIGN_ALG, DIGEST_ALG),
    "rsa-sha384": (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
    ),
    "rsa-sha512": (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    ),
}
SIGN_CHOICES = ("both", "response", "assertion")
NAME_FORMATS = ("uri", "basic")
MIN_LIFETIME = 60
MAX_LIFETIME = 3600
DEFAULT_LIFETIME = 300
MAX_PEM_BYTES = 16 * 1024


@dataclass(frozen=True)
class MetadataSource:
    """Where an SP's metadata is fetched from and what must have signed it (None: explicitly unsigned)."""

    url: str
    certificate: str | None  # PEM
    fetched_at: float = 0.0
    next_refresh_at: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True)
class SpOptions:
    signature_algorithm: str = "rsa-sha256"
    sign: str = "both"  # what carries a signature: the response, the assertion, or both
    assertion_lifetime: int = DEFAULT_LIFETIME  # seconds
    name_format: str = "uri"  # attribute names: urn:oid (uri) or their friendly names (basic)
    source: MetadataSource | None = field(default=None)

    @property
    def sign_response(self) -> bool:
        return self.sign in ("both", "response")

    @property
    def sign_assertion(self) -> bool:
        return self.sign in ("both", "assertion")

    @property
    def algorithms(self) -> tuple[str, str]:
        """(SignatureMethod, DigestMethod) URIs."""
        return SIGNATURE_ALGORITHMS[self.signature_algorithm]

    def changed(self, **changes: Any) -> "SpOptions":
        """A copy with the given options (None: unchanged), each checked; ValueError says what is wrong."""
        given = {key: value for key, value in changes.items() if value is not None}
        return check(replace(self, **given))

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def summary(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "signature_algorithm": self.signature_algorithm,
            "sign": self.sign,
            "assertion_lifetime": self.assertion_lifetime,
            "name_format": self.name_format,
        }
        if self.source is not None:
            shown["metadata_url"] = self.source.url
            shown["metadata_signed"] = self.source.certificate is not None
            shown["metadata_last_error"] = self.source.last_error
        return shown


def check(options: SpOptions) -> SpOptions:
    if options.signature_algorithm not in SIGNATURE_ALGORITHMS:
        raise ValueError(
            f"signature algorithm {options.signature_algorithm!r}: expected one of "
            f"{', '.join(SIGNATURE_ALGORITHMS)} (SHA-1 is not offered)"
        )
    if options.sign not in SIGN_CHOICES:
        raise ValueError(f"sign {options.sign!r}: expected one of {', '.join(SIGN_CHOICES)}")
    if not isinstance(options.assertion_lifetime, int) or not (
        MIN_LIFETIME <= options.assertion_lifetime <= MAX_LIFETIME
    ):
        raise ValueError(f"assertion lifetime: {MIN_LIFETIME} to {MAX_LIFETIME} seconds")
    if options.name_format not in NAME_FORMATS:
        raise ValueError(f"name format {options.name_format!r}: expected one of {', '.join(NAME_FORMATS)}")
    return options


def loads(text: str | None) -> SpOptions:
    """The stored options; unknown keys (from a newer version) are ignored."""
    if not text:
        return SpOptions()
    stored = json.loads(text)
    source = stored.pop("source", None)
    known = {key: value for key, value in stored.items() if key in SpOptions.__dataclass_fields__}
    return SpOptions(**known, source=MetadataSource(**source) if source else None)


XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
# Block encryption the IdP can do, best first: GCM unless the SP can do nothing else (CBC has no integrity
# of its own; an SP that decrypts it is open to padding-oracle attacks).
DATA_ENCRYPTION = (
    XENC11 + "aes256-gcm",
    XENC11 + "aes128-gcm",
    XENC + "aes256-cbc",
    XENC + "aes128-cbc",
)
KEY_TRANSPORT = (XENC + "rsa-oaep-mgf1p", XENC11 + "rsa-oaep")
RSA_1_5 = XENC + "rsa-1_5"
_MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"


def encryption_method(metadata_xml: str) -> str:
    """The block encryption for assertions to this SP, from the EncryptionMethod elements of its encryption
    keys in its metadata: AES-256-GCM when it lists none. The key is always wrapped with RSA-OAEP."""
    root = fromstring(metadata_xml.encode(), forbid_dtd=True)
    listed: list[str] = []
    for key in root.iter(f"{_MD}KeyDescriptor"):
        if key.get("use") not in (None, "", "encryption"):
            continue
        listed += [(m.get("Algorithm") or "").strip() for m in key.findall(f"{_MD}EncryptionMethod")]
    if not listed:
        return DATA_ENCRYPTION[0]
    transport = [uri for uri in listed if uri in KEY_TRANSPORT or uri == RSA_1_5]
    if transport and not any(uri in KEY_TRANSPORT for uri in transport):
        raise ValueError(
            "the SP's metadata offers only RSA PKCS#1 v1.5 key transport (EncryptionMethod rsa-1_5), which "
            "the IdP does not use; it wraps keys with RSA-OAEP"
        )
    blocks = [uri for uri in listed if uri not in transport]
    if not blocks:
        return DATA_ENCRYPTION[0]
    for uri in DATA_ENCRYPTION:
        if uri in blocks:
            return uri
    raise ValueError(
        "the SP's metadata lists only encryption methods the IdP does not offer (EncryptionMethod); it "
        "encrypts with AES-GCM or, if an SP can do nothing else, AES-CBC"
    )
