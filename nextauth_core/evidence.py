"""Signed evidence of a transaction: what the app showed, the account's signature over exactly those
bytes, and the SFS attestation that the second factor was checked for it.

Anyone can check a record later with nothing but the record itself and the account's public key (taken
from ns's account list, or pinned by the integrator): ``verify`` recomputes the signed statement from the
canonical content and checks the signature. The canonical form is JSON with sorted keys, no whitespace,
UTF-8, so the same fields always give the same bytes.
"""

import hashlib
import json
from typing import Any

from nextauth_core.encoding import b64url, unb64url
from nextauth_core.statements import length_prefixed
from sigmai import PeerKey, ProtocolError
from sigmai.constants import KEY_TYPE_ED25519, KEY_TYPE_P256

TYPED_FIELDS = {"amount": str, "beneficiary": str, "description": str}
MAX_FIELD = 500


class EvidenceError(ValueError):
    pass


def canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_statement(canonical_content: bytes, ns_challenge: bytes, decision: str) -> bytes:
    """The person's decision is signed with the content: an approval cannot be turned into a refusal."""
    if decision not in ("approved", "declined"):
        raise EvidenceError("decision must be approved or declined")
    return length_prefixed(b"nextauth sign v1", canonical_content, ns_challenge, decision.encode())


def record(
    *,
    content: bytes,
    ns_challenge: bytes,
    signature: bytes,
    key: PeerKey,
    attestation: str | None,
    decision: str,
) -> dict[str, Any]:
    return {
        "version": 1,
        "decision": decision,
        "content": b64url(content),
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "ns_challenge": b64url(ns_challenge),
        "signature": b64url(signature),
        "account_key": {"type": key.type_name, "public": b64url(key.raw), "thumbprint": key.thumbprint()},
        "attestation": attestation,
    }


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
        signed = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvidenceError("the signed content is not JSON") from exc
    if not isinstance(signed, dict):
        raise EvidenceError("the signed content is not a JSON object")
    return signed
