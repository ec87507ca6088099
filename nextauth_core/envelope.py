"""The end-to-end envelope ns sends an app through the Message Center.

ns signs the message with its server key *inside* the encryption, then encrypts to the account's X25519
key with HPKE (RFC 9180, base mode, single shot). The MC stores and forwards bytes it can neither read nor
alter undetected; the app checks the signature against the server key it pinned at enrolment. The HPKE
``info`` binds the ciphertext to the mailbox and the sending server, so an envelope cannot be moved to
another mailbox or passed off as coming from another server.

The first byte names the suite, with no negotiation: 0x01 is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
ChaCha20-Poly1305. A hybrid post-quantum suite (ML-KEM-768 + X25519, which cryptography's HPKE offers)
becomes 0x02 with an account key of that type, and nothing above this module changes.
"""

import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from nextauth_core.statements import length_prefixed

SUITE_V1 = 0x01
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_LABEL = b"nextauth mc envelope v1"
MAX_ENVELOPE = 16 * 1024


class EnvelopeError(ValueError):
    pass


def _info(mailbox: str, sender_key_hash: bytes) -> bytes:
    return length_prefixed(_LABEL, mailbox.encode(), sender_key_hash)


def seal(
    recipient: x25519.X25519PublicKey,
    sender: ed25519.Ed25519PrivateKey,
    sender_key_hash: bytes,
    mailbox: str,
    message: dict[str, Any],
    *,
    ttl: int = 120,
    now: float | None = None,
) -> bytes:
    issued = int(now if now is not None else time.time())
    inner = json.dumps(
        {"iat": issued, "exp": issued + ttl, "mailbox": mailbox, "msg": message}, separators=(",", ":")
    ).encode()
    signature = sender.sign(length_prefixed(_LABEL, b"signature", mailbox.encode(), sender_key_hash, inner))
    plaintext = length_prefixed(inner) + signature
    return bytes([SUITE_V1]) + _SUITE.encrypt(plaintext, recipient, info=_info(mailbox, sender_key_hash))


def open_envelope(
    envelope: bytes,
    recipient: x25519.X25519PrivateKey,
    sender: ed25519.Ed25519PublicKey,
    sender_key_hash: bytes,
    mailbox: str,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    if not envelope or len(envelope) > MAX_ENVELOPE or envelope[0] != SUITE_V1:
        raise EnvelopeError("unknown envelope format")
    try:
        plaintext = _SUITE.decrypt(envelope[1:], recipient, info=_info(mailbox, sender_key_hash))
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("envelope does not decrypt: not for this account, or altered") from exc
    size = int.from_bytes(plaintext[:2], "big")
    inner, signature = plaintext[2 : 2 + size], plaintext[2 + size :]
    try:
        sender.verify(
            signature, length_prefixed(_LABEL, b"signature", mailbox.encode(), sender_key_hash, inner)
        )
    except InvalidSignature as exc:
        raise EnvelopeError("envelope is not signed by the pinned server") from exc
    body = json.loads(inner)
    current = now if now is not None else time.time()
    if body.get("mailbox") != mailbox:
        raise EnvelopeError("envelope was meant for another mailbox")
    if current > body["exp"]:
        raise EnvelopeError("envelope expired")
    return dict(body["msg"])
