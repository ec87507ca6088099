"""PIN proofs: the app proves to the SFS that the user typed the right PIN, and neither side can test PIN
guesses on its own.

What must hold, and why this design gets it
-------------------------------------------

1. The SFS never learns the PIN. The PIN only ever leaves the app inside an RFC 9497 OPRF blinded
   element (:mod:`nextauth_core.oprf`), which is a uniformly random group element whatever the PIN.
2. A stolen phone alone cannot test PIN guesses offline. The key that signs PIN proofs is derived from
   ``y = OPRF(k, PIN)``, and ``k`` lives only at the SFS: every guess costs one SFS evaluation, which the
   SFS counts and locks after N failures.
3. A stolen SFS database alone cannot test PIN guesses offline. With ``k`` and the stored verifier an
   attacker can compute ``y`` for any PIN, but the signing key also depends on ``device_secret``, 32
   random bytes that exist only on the device, so no guess can be checked against the verifier.

Both the phone *and* the SFS database are needed for an offline attack; that is the residual risk.

Registration (app and SFS)
--------------------------

- app: ``device_secret = new_device_secret()``, kept on the device (in its secure storage);
- app: ``request = start(pin)``, sends ``request.blinded_element``; the blind stays on the device;
- SFS: ``k = oprf.generate_key()`` for this app instance, stored; answers
  ``oprf.blind_evaluate(k, blinded_element)``;
- app: ``verifier_key = verifier(pin, request, evaluated_element, device_secret)``, sent to the SFS,
  which stores it. Internally: ``y = Finalize(b"nextauth-pin-v1" || UTF-8(PIN))``, ``seed =
  HKDF-SHA256(ikm=y, salt=device_secret, info=b"nextauth pin key v1", L=32)``, and ``verifier_key`` is the
  public half of the Ed25519 key whose private seed is ``seed``. The SFS stores it only if
  :func:`is_acceptable_verifier` accepts it (a small-order key would make forged proofs easy).

The device keeps ``device_secret`` only: never the PIN, ``y``, the seed or the private key.

Verification
------------

- app: ``request = start(pin)``, sends the blinded element;
- SFS: counts the attempt as a failure *before* answering (durably, so a crash or a parallel request
  cannot give a free guess; it refuses once the count reaches the limit), then answers
  ``oprf.blind_evaluate(k, blinded_element)`` and a fresh challenge;
- app: ``signature = prove(pin, request, evaluated_element, device_secret, statement)``, where the caller
  builds ``statement`` from the SFS's challenge and the channel's exporter secret, so that a proof cannot
  be replayed on another channel or for another challenge;
- SFS: ``check_proof(verifier_key, statement, signature)``; on success it resets the failure count.

Counting, locking and channel binding are the SFS's and the caller's job; this module only provides the
cryptography. The signed message is ``b"nextauth pin proof v1" || 0x00 || statement``, so that a PIN
proof cannot be mistaken for any other Ed25519 signature.
"""

import secrets
import unicodedata
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_core_ed25519_is_valid_point

from nextauth_core import oprf

__all__ = [
    "DEVICE_SECRET_LENGTH",
    "MAX_PIN_LENGTH",
    "MIN_PIN_LENGTH",
    "PROOF_CONTEXT",
    "PinRequest",
    "check_proof",
    "is_acceptable_verifier",
    "new_device_secret",
    "prove",
    "start",
    "verifier",
]

MIN_PIN_LENGTH = 4
MAX_PIN_LENGTH = 64
DEVICE_SECRET_LENGTH = 32
VERIFIER_LENGTH = 32
SIGNATURE_LENGTH = 64

# Domain separation: the OPRF input, the key derivation and the signed message each carry their own
# versioned label, so a later scheme (or another use of the same primitives) cannot collide with this one.
_OPRF_INPUT_PREFIX = b"nextauth-pin-v1"
_HKDF_INFO = b"nextauth pin key v1"
PROOF_CONTEXT = b"nextauth pin proof v1" + b"\x00"


@dataclass(frozen=True)
class PinRequest:
    """One OPRF request for a PIN. Send ``blinded_element`` to the SFS; keep ``blind`` on the device and
    use it once. Neither field reveals anything about the PIN (and ``blind`` stays out of ``repr``)."""

    blind: bytes = field(repr=False)
    blinded_element: bytes


def new_device_secret() -> bytes:
    """The 32 random bytes that make the PIN verifier useless without the device."""
    return secrets.token_bytes(DEVICE_SECRET_LENGTH)


def _pin_input(pin: str) -> bytes:
    """Validate a PIN and turn it into the OPRF input.

    The PIN is NFC-normalised first, so that the same PIN typed as composed or decomposed characters (as
    different keyboards may produce) is the same PIN. Any characters are allowed (digits-only is a UI
    choice, not a cryptographic one), but control characters and lone surrogates are refused because
    they are never typed on purpose.
    """
    if not isinstance(pin, str):
        raise TypeError("the PIN must be a str")
    normalised = unicodedata.normalize("NFC", pin)
    if not MIN_PIN_LENGTH <= len(normalised) <= MAX_PIN_LENGTH:
        raise ValueError(f"the PIN must be {MIN_PIN_LENGTH} to {MAX_PIN_LENGTH} characters long")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in normalised):
        raise ValueError("the PIN must not contain control characters or unpaired surrogates")
    return _OPRF_INPUT_PREFIX + normalised.encode("utf-8")


def start(pin: str) -> PinRequest:
    """Validate the PIN and blind it for the SFS. Raises ValueError if the PIN is not acceptable."""
    blind, blinded_element = oprf.blind(_pin_input(pin))
    return PinRequest(blind=blind, blinded_element=blinded_element)


def _device_secret(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != DEVICE_SECRET_LENGTH:
        raise ValueError(f"the device secret must be {DEVICE_SECRET_LENGTH} bytes")
    return bytes(value)


def _signing_key(
    pin: str, request: PinRequest, evaluated_element: bytes, device_secret: bytes
) -> ed25519.Ed25519PrivateKey:
    """Finalize the OPRF and bind its output to the device secret: the key exists only where both the
    SFS's evaluation of this PIN and the device secret are available."""
    if not isinstance(request, PinRequest):
        raise TypeError("request must be the PinRequest returned by start()")
    salt = _device_secret(device_secret)
    y = oprf.finalize(_pin_input(pin), request.blind, evaluated_element)
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(y)
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def verifier(pin: str, request: PinRequest, evaluated_element: bytes, device_secret: bytes) -> bytes:
    """Registration (app): the PIN verifier to hand to the SFS, a 32-byte Ed25519 public key.

    Raises ValueError (oprf.OPRFError for a bad ``evaluated_element``) on invalid input.
    """
    key = _signing_key(pin, request, evaluated_element, device_secret)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def prove(
    pin: str, request: PinRequest, evaluated_element: bytes, device_secret: bytes, statement: bytes
) -> bytes:
    """Verification (app): sign the SFS's statement with the PIN key; a 64-byte Ed25519 signature.

    A wrong PIN gives a different key, hence a signature that does not verify; the app cannot tell, only
    the SFS can (and it has already counted the attempt).
    """
    if not isinstance(statement, bytes | bytearray | memoryview):
        raise TypeError("the statement must be bytes")
    key = _signing_key(pin, request, evaluated_element, device_secret)
    return key.sign(PROOF_CONTEXT + bytes(statement))


def is_acceptable_verifier(verifier_key: bytes) -> bool:
    """Is this a usable PIN verifier: a canonical Ed25519 public key that is not of small order?

    Why: OpenSSL's Ed25519 verification accepts small-order public keys, and for such a key a trivial
    signature (e.g. 64 zero bytes) verifies for a good fraction of all messages, with no PIN at all. The
    SFS should refuse such a verifier at registration; :func:`check_proof` refuses it as well.
    libsodium's point validation (through PyNaCl) rejects non-canonical, off-curve and small-order
    encodings.
    """
    if not isinstance(verifier_key, bytes | bytearray | memoryview) or len(verifier_key) != VERIFIER_LENGTH:
        return False
    return bool(crypto_core_ed25519_is_valid_point(bytes(verifier_key)))


# Verifiers that passed is_acceptable_verifier, as keys: an app instance proves its PIN against the same
# verifier at every login, and the small-order check (a scalar multiplication) costs about half the
# signature check. Only acceptable verifiers enter; the memo is emptied when full.
VERIFIER_KEYS_MAX = 4096
_VERIFIER_KEYS: dict[bytes, ed25519.Ed25519PublicKey] = {}


def _verifier_public_key(verifier_key: bytes) -> ed25519.Ed25519PublicKey | None:
    found = _VERIFIER_KEYS.get(verifier_key)
    if found is None:
        if not is_acceptable_verifier(verifier_key):
            return None
        if len(_VERIFIER_KEYS) >= VERIFIER_KEYS_MAX:
            _VERIFIER_KEYS.clear()
        found = _VERIFIER_KEYS[verifier_key] = ed25519.Ed25519PublicKey.from_public_bytes(verifier_key)
    return found


def check_proof(verifier_key: bytes, statement: bytes, signature: bytes) -> bool:
    """Verification (SFS): does ``signature`` prove the PIN for ``statement``? Never raises: anything
    malformed (including a verifier that :func:`is_acceptable_verifier` refuses) is simply not a proof."""
    try:
        values = (verifier_key, statement, signature)
        if not all(isinstance(v, bytes | bytearray | memoryview) for v in values):
            return False
        if len(signature) != SIGNATURE_LENGTH:
            return False
        public_key = _verifier_public_key(bytes(verifier_key))
        if public_key is None:
            return False
        public_key.verify(bytes(signature), PROOF_CONTEXT + bytes(statement))
    except InvalidSignature:
        return False
    except Exception:
        # A verifier must answer False, not crash, whatever it is fed.
        return False
    return True
