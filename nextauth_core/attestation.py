"""The SFS attestation: a short-lived JWS saying "this device's second factor was checked just now, for
this purpose, for this ns challenge, for this account key".

Signed with the SFS's *attestation key* (Ed25519, JWS alg ``Ed25519``, RFC 9864), a key of its own and
not the sigmai identity key the app pins: a key that signs handshakes never signs statements ns acts on,
and either can be replaced or guarded on its own. ``iss`` names the SFS by its sigmai key hash (what apps
pin and ns records per account); the header's ``kid`` names the attestation key by its hash. ns trusts a
pair: this SFS, with these attestation keys; a token signed by any other key (the SFS's identity key
included) is refused.

ns checks: signature by a trusted attestation key of the SFS named in ``iss``, ``aud`` is this ns server,
``nonce`` is derived from the challenge ns issued, ``purpose`` is what ns asked for, ``cnf.jkt`` is the
account key's thumbprint, ``sub`` (the app instance at the SFS, its device key thumbprint) is the one the
account was enrolled with, the token is fresh (``exp``, at most 60 s plus a little clock skew), and its
``jti`` was never seen before.
"""

import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc import jwk, jwt
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from nextauth_core import jsonlimits
from nextauth_core.encoding import b64url

ALGORITHM = "Ed25519"
LIFETIME = 60
CLOCK_SKEW = 5
PURPOSES = ("login", "sign", "enrol")
METHODS = ("pin", "biometric")


MAX_DEVICE_LENGTH = 128
# joserfc builds a registry for each call given ``algorithms``; this one, made once, allows the same.
_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])
_JOSE_KEYS_MAX = 64

# SFS key hash (hex) -> {attestation key id: attestation public key}
TrustedKeys = Mapping[str, Mapping[str, ed25519.Ed25519PublicKey]]


class AttestationError(Exception):
    """The attestation is not acceptable; the message says which rule failed (no secrets in it)."""


class DeviceMismatch(AttestationError):
    """A valid attestation, but from another app instance than the one the account is bound to."""


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """The name of an attestation key: hex SHA-256 of its raw 32 bytes (the same form as a key hash)."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()


def nonce_for(challenge: bytes) -> str:
    """The attestation nonce derived from ns's challenge: the SFS never sees the raw challenge reused."""
    digest = hashlib.sha256(b"nextauth attestation nonce v1\x00" + challenge).digest()
    return b64url(digest)


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
    signing, kid = _signing_key(key)
    return jwt.encode(
        {"alg": ALGORITHM, "typ": "nextauth-attestation+jwt", "kid": kid}, claims, signing, registry=_REGISTRY
    )


def verify(
    token: str,
    trusted_keys: TrustedKeys,
    *,
    audience: str,
    nonce: str,
    purpose: str,
    account_thumbprint: str,
    device: str | None = None,
    now: float | None = None,
) -> Attestation:
    """Check every rule except single use (the caller records ``token_id``, which needs shared state).

    ``device``: the app instance the account is bound to; ``None`` only at enrolment, where the binding
    is made. A mismatch raises :class:`DeviceMismatch`, after every other rule passed."""
    try:
        unverified = jwt.decode(token, lambda obj: _key_for(obj, trusted_keys), registry=_REGISTRY)
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
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_DEVICE_LENGTH:
        raise AttestationError("attestation names no app instance")
    if device is not None and not hmac.compare_digest(subject.encode(), device.encode()):
        raise DeviceMismatch("attestation comes from another app instance than the enrolled one")
    return Attestation(
        issuer=str(claims["iss"]),
        audience=audience,
        nonce=nonce,
        purpose=purpose,
        method=amr[0],
        account_thumbprint=cnf,
        device=subject,
        issued_at=issued,
        expires_at=expires,
        token_id=str(claims.get("jti", "")),
    )


def _key_for(obj: Any, trusted_keys: TrustedKeys) -> jwk.OKPKey:
    # joserfc hands over the parsed, not yet verified, compact JWS: pick the SFS by its issuer, then one
    # of that SFS's attestation keys by the header's kid. Nothing else is tried, so a token signed by the
    # SFS's identity key (or another SFS's attestation key) finds no key and is refused.
    try:
        issuer = jsonlimits.loads(obj.payload).get("iss")  # not yet verified: bounded, like all outside JSON
        kid = obj.headers().get("kid")
    except (ValueError, AttributeError) as exc:
        raise AttestationError("attestation payload is not JSON") from exc
    keys = trusted_keys.get(str(issuer))
    if not keys:
        raise AttestationError("attestation comes from an SFS this server does not trust")
    key = keys.get(str(kid)) if isinstance(kid, str) else None
    if key is None:
        raise AttestationError("attestation is not signed by a trusted attestation key of its SFS")
    return _verifying_key(key)


# The JWK form of the keys in use, made once per key object (an SFS signs with one key for months, ns
# trusts a handful): importing one costs about as much as the signature it checks. Keyed by the object's
# identity, kept with the object itself, so an id reused by a new key object never finds the old entry.
_SIGNING: dict[int, tuple[ed25519.Ed25519PrivateKey, jwk.OKPKey, str]] = {}
_VERIFYING: dict[int, tuple[ed25519.Ed25519PublicKey, jwk.OKPKey]] = {}


def _signing_key(key: ed25519.Ed25519PrivateKey) -> tuple[jwk.OKPKey, str]:
    found = _SIGNING.get(id(key))
    if found is None or found[0] is not key:
        if len(_SIGNING) >= _JOSE_KEYS_MAX:
            _SIGNING.clear()
        found = _SIGNING[id(key)] = (key, jwk.OKPKey.import_key(key), key_id(key.public_key()))
    return found[1], found[2]


def _verifying_key(key: ed25519.Ed25519PublicKey) -> jwk.OKPKey:
    found = _VERIFYING.get(id(key))
    if found is None or found[0] is not key:
        if len(_VERIFYING) >= _JOSE_KEYS_MAX:
            _VERIFYING.clear()
        found = _VERIFYING[id(key)] = (key, jwk.OKPKey.import_key(key))
    return found[1]
