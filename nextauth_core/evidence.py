"""Signed evidence of a transaction: what the app showed, the account's signature over exactly those
bytes, the SFS attestation that the second factor was checked for it, and ns's signature over the whole.

Three parts, each checked on its own:

- ``verify``: the account's signature over the canonical content, ns's challenge and the decision. Anyone
  can check it with the record and the account's public key (from ns's account list, or pinned).
- ``verify_ns_signature``: ns's signature (the virtual server's Ed25519 key, published as ``public_key`` of
  ``GET /v1/servers/{sid}``) over content, challenge, decision, account key, account signature and
  attestation: ns says it issued this content, to this account, and accepted this answer.
- ``check_attestation``: the SFS's JWS, by a trusted SFS key, for this server, this challenge, this account
  key and purpose ``sign``, fresh at the moment ns recorded the decision.

The canonical form is JSON with sorted keys, no whitespace, UTF-8, so the same fields give the same bytes.
"""

import hashlib
import json
import unicodedata
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from nextauth_core import attestation, jsonlimits
from nextauth_core.encoding import b64url, unb64url
from nextauth_core.statements import length_prefixed
from sigmai import PeerKey, ProtocolError
from sigmai.constants import KEY_TYPE_ED25519, KEY_TYPE_P256

TYPED_FIELDS = {"amount": str, "beneficiary": str, "description": str}
MAX_FIELD = 500

# Characters that change how the text around them is shown without being seen themselves: the bidi
# embeddings and overrides (U+202A-U+202E), isolates (U+2066-U+2069), marks (U+200E, U+200F, U+061C).
# "EUR 1\u202e00,000" shows as "EUR 1000,00": what the person approves would not be what they read.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def display_text_problem(value: str) -> str | None:
    """Why ``value`` may not be shown for signing, or None. Each field is one line of plain text: no bidi
    controls, no control characters (line breaks included: a description ending in "\\nAmount: EUR 1" would
    pass for a field of its own), no line or paragraph separators, no lone surrogates."""
    for char in value:
        if char in BIDI_CONTROLS:
            return f"contains the invisible direction control U+{ord(char):04X}"
        category = unicodedata.category(char)
        if category == "Cc":
            return f"contains the control character U+{ord(char):04X} (fields are one line of text)"
        if category in ("Zl", "Zp"):
            return f"contains the line separator U+{ord(char):04X} (fields are one line of text)"
        if category == "Cs":
            return "contains a lone surrogate (not text)"
    return None


class EvidenceError(ValueError):
    pass


def canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_statement(canonical_content: bytes, ns_challenge: bytes, decision: str) -> bytes:
    """The person's decision is signed with the content: an approval cannot be turned into a refusal."""
    if decision not in ("approved", "declined"):
        raise EvidenceError("decision must be approved or declined")
    return length_prefixed(b"nextauth sign v1", canonical_content, ns_challenge, decision.encode())


def ns_statement(evidence: dict[str, Any], server_id: str) -> bytes:
    """What ns signs: every part of the record that says something (the digest follows from the content)."""
    key = evidence["account_key"]
    token = evidence.get("attestation")
    if token is not None and not isinstance(token, str):
        raise TypeError("attestation must be a string or null")
    return length_prefixed(
        b"nextauth evidence v2",
        server_id.encode(),
        str(evidence["decision"]).encode(),
        unb64url(evidence["content"]),
        unb64url(evidence["ns_challenge"]),
        str(key["type"]).encode(),
        unb64url(key["public"]),
        unb64url(evidence["signature"]),
        (token or "").encode(),
    )


def record(
    *,
    content: bytes,
    ns_challenge: bytes,
    signature: bytes,
    key: PeerKey,
    attestation: str | None,
    decision: str,
    ns_key: ed25519.Ed25519PrivateKey | None = None,
    server_id: str = "",
) -> dict[str, Any]:
    """The record; with ``ns_key`` (the virtual server's key) signed by ns as well, which a record must be
    to be valid evidence."""
    made: dict[str, Any] = {
        "version": 2 if ns_key is not None else 1,
        "decision": decision,
        "content": b64url(content),
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "ns_challenge": b64url(ns_challenge),
        "signature": b64url(signature),
        "account_key": {"type": key.type_name, "public": b64url(key.raw), "thumbprint": key.thumbprint()},
        "attestation": attestation,
    }
    if ns_key is not None:
        public = ns_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        made["ns_signature"] = {
            "server": server_id,
            "key_hash": hashlib.sha256(public).hexdigest(),
            "signature": b64url(ns_key.sign(ns_statement(made, server_id))),
        }
    return made


def verify_ns_signature(
    evidence: dict[str, Any], server_id: str, public_key: ed25519.Ed25519PublicKey
) -> None:
    """ns's signature by ``public_key`` (server ``server_id``'s); EvidenceError saying what does not hold."""
    signed = evidence.get("ns_signature")
    if not isinstance(signed, dict):
        raise EvidenceError("the record carries no signature of ns")
    if signed.get("server") != server_id:
        raise EvidenceError("ns's signature names another server than the account's")
    try:
        public_key.verify(unb64url(signed["signature"]), ns_statement(evidence, server_id))
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError("ns's signature is malformed") from exc
    except InvalidSignature as exc:
        raise EvidenceError("ns's signature does not verify: the record was altered or not ns's") from exc


def check_attestation(
    evidence: dict[str, Any],
    trusted_keys: attestation.TrustedKeys,
    *,
    audience: str,
    at: float,
    device: str | None,
) -> attestation.Attestation:
    """The record's SFS attestation: signed by one of ``trusted_keys``, for server ``audience``, this
    record's ns challenge, its account key and purpose ``sign``, fresh at ``at`` (when ns recorded the
    decision: evidence is checked long after its attestation expired), and vouched for by ``device``, the SFS
    app instance the account is bound to (None: an account enrolled before the binding, whose attestations
    prove nothing about its device). EvidenceError saying what does not hold."""
    token = evidence.get("attestation")
    if not isinstance(token, str) or not token:
        raise EvidenceError("the record carries no SFS attestation")
    if device is None:
        raise EvidenceError("the account is bound to no app instance: it must be enrolled again")
    try:
        checked = attestation.verify(
            token,
            trusted_keys,
            audience=audience,
            nonce=attestation.nonce_for(unb64url(evidence["ns_challenge"])),
            purpose="sign",
            account_thumbprint=str(evidence["account_key"]["thumbprint"]),
            device=device,
            now=at,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError("the record is incomplete or malformed") from exc
    except attestation.AttestationError as exc:
        raise EvidenceError(f"the SFS attestation is not valid: {exc}") from exc
    return checked


def verify(evidence: dict[str, Any], expected_thumbprint: str | None = None) -> dict[str, Any]:
    """Check a record; returns the signed content. Raises EvidenceError saying what does not hold."""
    try:
        key_info = evidence["account_key"]
        key_type = {"ed25519": KEY_TYPE_ED25519, "p256": KEY_TYPE_P256}[key_info["type"]]
        key = PeerKey.parse(key_type, unb64url(key_info["public"]))
        content = unb64url(evidence["content"])
        statement = signing_statement(content, unb64url(evidence["ns_challenge"]), evidence["decision"])
        signature = unb64url(evidence["signature"])
    except (KeyError, TypeError, ValueError, ProtocolError) as exc:
        raise EvidenceError("the record is incomplete or malformed") from exc
    if key.thumbprint() != key_info.get("thumbprint"):
        raise EvidenceError("the key's thumbprint does not match the key")
    if expected_thumbprint is not None and key.thumbprint() != expected_thumbprint:
        raise EvidenceError("signed by another account key than the one expected")
    if hashlib.sha256(content).hexdigest() != evidence.get("content_sha256"):
        raise EvidenceError("the content digest does not match the content")
    try:
        key.verify(signature, statement)
    except ProtocolError as exc:
        raise EvidenceError("the signature does not verify: the content or the record was altered") from exc
    try:
        signed = jsonlimits.loads(content)
    except ValueError as exc:
        raise EvidenceError("the signed content is not JSON") from exc
    if not isinstance(signed, dict):
        raise EvidenceError("the signed content is not a JSON object")
    return signed
