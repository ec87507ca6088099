"""The SFS attestation: a short-lived JWS saying "this device's second factor was checked just now, for
this purpose, for this ns challenge, for this account key".

Signed with the SFS's Ed25519 key (JWS alg ``Ed25519``, RFC 9864), the same key the app pins for the
SFS's sigmai channel: an ns trusts an SFS by that one key. The two uses cannot be confused: a JWS signing
input starts with a base64url header, a sigmai signature with 64 spaces and a context string.

ns checks: signature by a trusted SFS key, ``aud`` is this ns server, ``nonce`` is derived from the
challenge ns issued, ``purpose`` is what ns asked for, ``cnf.jkt`` is the account key's thumbprint, the
token is fresh (``exp``, at most 60 s plus a little clock skew), and its ``jti`` was never seen before.
"""

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc import jwk, jwt
from joserfc.errors import JoseError

from nextauth_core import jsonlimits

ALGORITHM = "Ed25519"
LIFETIME = 60
CLOCK_SKEW = 5
PURPOSES = ("login", "sign", "enrol")
METHODS = ("pin", "biometric")


class AttestationError(Exception):
    """The attestation is not acceptable; the message says which rule failed (no secrets in it)."""


def nonce_for(challenge: bytes) -> str:
    """The attestation nonce derived from ns's challenge: the SFS never sees the raw challenge reused."""
    digest = hashlib.sha256(b"nextauth attestation nonce v1\x00" + challenge).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Attestation:
    issuer: str  # the SFS key hash, hex
    audience: str
    nonce: str
    purpose: str
    method: str
    account_thumbprint: str
    device: str
    issued_at: int
    expires_at: int
    token_id: str


def issue(
    key: ed25519.Ed25519PrivateKey,
    *,
    issuer: str,
    audience: str,
    nonce: str,
    purpose: str,
    method: str,
    account_thumbprint: str,
    device: str,
    now: float | None = None,
) -> str:
    if purpose not in PURPOSES or method not in METHODS:
        raise ValueError("unknown purpose or method")
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + LIFETIME,
        "jti": uuid.uuid4().hex,
        "nonce": nonce,
        "purpose": purpose,
        "amr": [method],
        "cnf": {"jkt": account_thumbprint},
        "sub": device,
    }
    return jwt.encode(
        {"alg": ALGORITHM, "typ": "nextauth-attestation+jwt"},
        claims,
        jwk.OKPKey.import_key(key),
        algorithms=[ALGORITHM],
    )


def verify(
    token: str,
    trusted_keys: dict[str, ed25519.Ed25519PublicKey],
    *,
    audience: str,
    nonce: str,
    purpose: str,
    account_thumbprint: str,
    now: float | None = None,
) -> Attestation:
    """Check every rule except single use (the caller records ``token_id``, which needs shared state)."""
    try:
        unverified = jwt.decode(token, lambda obj: _key_for(obj, trusted_keys), algorithms=[ALGORITHM])
    except AttestationError:
        raise
    except (JoseError, ValueError, TypeError) as exc:
        raise AttestationError("attestation signature or format is invalid") from exc
    if unverified.header.get("typ") != "nextauth-attestation+jwt":
        raise AttestationError("not an attestation")
    claims: dict[str, Any] = unverified.claims
    current = now if now is not None else time.time()
    try:
        issued, expires = int(claims["iat"]), int(claims["exp"])
        cnf = claims["cnf"]["jkt"]
        amr = claims["amr"]
    except (KeyError, TypeError, ValueError) as exc:
        raise AttestationError("attestation lacks required claims") from exc
    if expires - issued > LIFETIME or current > expires + CLOCK_SKEW or issued > current + CLOCK_SKEW:
        raise AttestationError("attestation expired or not yet valid")
    if claims.get("aud") != audience:
        raise AttestationError("attestation is for another server")
    if claims.get("nonce") != nonce:
        raise AttestationError("attestation answers another challenge")
    if claims.get("purpose") != purpose:
        raise AttestationError("attestation is for another purpose")
    if cnf != account_thumbprint:
        raise AttestationError("attestation is for another account key")
    if not isinstance(amr, list) or len(amr) != 1 or amr[0] not in METHODS:
        raise AttestationError("attestation names no known second factor")
    return Attestation(
        issuer=str(claims["iss"]),
        audience=audience,
        nonce=nonce,
        purpose=purpose,
        method=amr[0],
        account_thumbprint=cnf,
        device=str(claims.get("sub", "")),
        issued_at=issued,
        expires_at=expires,
        token_id=str(claims.get("jti", "")),
    )


def _key_for(obj: Any, trusted_keys: dict[str, ed25519.Ed25519PublicKey]) -> jwk.OKPKey:
    # joserfc hands over the parsed, not yet verified, compact JWS: pick the key by its issuer.
    try:
        issuer = jsonlimits.loads(obj.payload).get("iss")  # not yet verified: bounded, like all outside JSON
    except (ValueError, AttributeError) as exc:
        raise AttestationError("attestation payload is not JSON") from exc
    key = trusted_keys.get(str(issuer))
    if key is None:
        raise AttestationError("attestation comes from an SFS this server does not trust")
    return jwk.OKPKey.import_key(key)
