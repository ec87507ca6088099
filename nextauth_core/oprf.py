"""RFC 9497 OPRF, mode 0x00 (plain OPRF, no proofs), suite ristretto255-SHA512.

Why an OPRF: the app learns ``F(k, PIN)`` while the SFS, which holds ``k``, learns nothing about the PIN,
and the app cannot compute ``F`` for any other PIN without asking the SFS again. That is what lets the
SFS count (and lock) PIN guesses without ever seeing a PIN; see :mod:`nextauth_core.pin`.

Why the plain OPRF mode: the client is the party that gains from the evaluation, and a wrong key at the
SFS simply makes the PIN proof fail, so the VOPRF's DLEQ proof would add nothing here.

Everything follows RFC 9497 §3 and §4.1 to the letter, so that the RFC's Appendix A.1.1 vectors pass:

- ``contextString = "OPRFV1-" || I2OSP(0x00, 1) || "-" || "ristretto255-SHA512"``;
- HashToGroup is ``hash_to_ristretto255`` (RFC 9380): ``expand_message_xmd`` with SHA-512 to 64 bytes,
  DST ``"HashToGroup-" || contextString``, then ristretto255's one-way map (RFC 9496 §4.3.4);
- HashToScalar is ``expand_message_xmd`` to 64 bytes, DST ``"HashToScalar-" || contextString`` (or the
  one the caller names), read little-endian and reduced mod the group order L;
- elements are RFC 9496 canonical encodings (32 bytes), scalars 32-byte little-endian integers < L.

Group operations come from libsodium through ``rbcl`` (PyNaCl does not expose ristretto255);
``expand_message_xmd`` is written out here from RFC 9380 §5.3.1 because it is only a construction over
SHA-512.

Every input-validation failure raises :class:`OPRFError`; messages name the offending parameter, never
its value, so that secrets (blinds, keys, PINs) cannot end up in logs.
"""

import hashlib
import hmac

import rbcl

__all__ = [
    "CONTEXT_STRING",
    "ELEMENT_LENGTH",
    "MAX_INPUT_LENGTH",
    "OUTPUT_LENGTH",
    "SCALAR_LENGTH",
    "OPRFError",
    "blind",
    "blind_evaluate",
    "derive_key_pair",
    "evaluate",
    "expand_message_xmd",
    "finalize",
    "generate_key",
]

MODE_OPRF = 0x00
SUITE_IDENTIFIER = b"ristretto255-SHA512"
CONTEXT_STRING = b"OPRFV1-" + MODE_OPRF.to_bytes(1, "big") + b"-" + SUITE_IDENTIFIER

ELEMENT_LENGTH = 32  # Ne
SCALAR_LENGTH = 32  # Ns
OUTPUT_LENGTH = 64  # Nh (SHA-512)
# Private inputs and KeyInfo are framed with I2OSP(len, 2) (RFC 9497 §3.3.1, §3.2.1), so they cannot be
# longer than 2^16 - 1 bytes.
MAX_INPUT_LENGTH = 2**16 - 1

_HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
_HASH_TO_SCALAR_DST = b"HashToScalar-" + CONTEXT_STRING
_DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + CONTEXT_STRING
_FINALIZE_LABEL = b"Finalize"

# The canonical encoding of the identity element is 32 zero bytes (RFC 9496 §4.3.2), and canonical
# decoding is injective, so comparing encodings is comparing elements.
_IDENTITY = bytes(ELEMENT_LENGTH)
_ZERO_SCALAR = bytes(SCALAR_LENGTH)

# SHA-512 parameters for expand_message_xmd (RFC 9380 §5.3.1): b_in_bytes and s_in_bytes.
_SHA512_B_IN_BYTES = 64
_SHA512_S_IN_BYTES = 128


class OPRFError(ValueError):
    """An OPRF input failed validation: bad length, non-canonical encoding, identity element, zero
    scalar, or an input too long to frame. The message never includes the value itself."""


def _as_bytes(value: object, name: str) -> bytes:
    """Accept any bytes-like value (so callers may pass a bytearray or memoryview); reject the rest."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise OPRFError(f"{name} must be bytes")


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


# --- RFC 9380 §5.3.1 ---------------------------------------------------------------------------------


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """``expand_message_xmd`` with SHA-512, exactly as RFC 9380 §5.3.1 specifies.

    Public because it is the one piece of RFC 9380 this module implements itself, and so has its own
    test vectors (RFC 9380 Appendix K.3).
    """
    msg = _as_bytes(msg, "msg")
    dst = _as_bytes(dst, "dst")
    if not dst:
        # RFC 9380 §3.1: tags MUST have nonzero length.
        raise OPRFError("dst must not be empty")
    if len(dst) > 255:
        raise OPRFError("dst must be at most 255 bytes")
    if not isinstance(len_in_bytes, int) or isinstance(len_in_bytes, bool) or len_in_bytes <= 0:
        raise OPRFError("len_in_bytes must be a positive integer")
    ell = -(-len_in_bytes // _SHA512_B_IN_BYTES)
    if ell > 255 or len_in_bytes > 65535:
        raise OPRFError("len_in_bytes is too large for expand_message_xmd")

    dst_prime = dst + _i2osp(len(dst), 1)
    z_pad = _i2osp(0, _SHA512_S_IN_BYTES)
    l_i_b_str = _i2osp(len_in_bytes, 2)
    msg_prime = z_pad + msg + l_i_b_str + _i2osp(0, 1) + dst_prime

    b_0 = hashlib.sha512(msg_prime).digest()
    b_i = hashlib.sha512(b_0 + _i2osp(1, 1) + dst_prime).digest()
    uniform_bytes = bytearray(b_i)
    for i in range(2, ell + 1):
        chained = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(chained + _i2osp(i, 1) + dst_prime).digest()
        uniform_bytes += b_i
    return bytes(uniform_bytes[:len_in_bytes])


# --- The ristretto255 group (RFC 9497 §4.1) ---------------------------------------------------------


def _hash_to_group(data: bytes) -> bytes:
    """HashToGroup: hash_to_ristretto255 with DST ``"HashToGroup-" || contextString``."""
    uniform_bytes = expand_message_xmd(data, _HASH_TO_GROUP_DST, 64)
    element: bytes = rbcl.crypto_core_ristretto255_from_hash(uniform_bytes)
    return element


def _hash_to_scalar(data: bytes, dst: bytes = _HASH_TO_SCALAR_DST) -> bytes:
    """HashToScalar: 64 uniform bytes, read little-endian, reduced mod L."""
    uniform_bytes = expand_message_xmd(data, dst, 64)
    scalar: bytes = rbcl.crypto_core_ristretto255_scalar_reduce(uniform_bytes)
    return scalar


def _deserialize_scalar(value: object, name: str) -> bytes:
    """DeserializeScalar plus a non-zero check (every scalar this module receives is inverted or used as
    a key, and zero would make the output the identity).

    Canonical means the 32-byte little-endian integer is < L; this is tested by reducing it and comparing
    in constant time, which keeps secret scalars off data-dependent branches.
    """
    data = _as_bytes(value, name)
    if len(data) != SCALAR_LENGTH:
        raise OPRFError(f"{name} must be {SCALAR_LENGTH} bytes")
    reduced = rbcl.crypto_core_ristretto255_scalar_reduce(data + _ZERO_SCALAR)
    if not hmac.compare_digest(reduced, data):
        raise OPRFError(f"{name} is not a canonical ristretto255 scalar")
    if hmac.compare_digest(data, _ZERO_SCALAR):
        raise OPRFError(f"{name} must not be zero")
    return data


def _deserialize_element(value: object, name: str) -> bytes:
    """DeserializeElement: RFC 9496 canonical decoding, and not the identity (RFC 9497 §4.1)."""
    data = _as_bytes(value, name)
    if len(data) != ELEMENT_LENGTH:
        raise OPRFError(f"{name} must be {ELEMENT_LENGTH} bytes")
    if not rbcl.crypto_core_ristretto255_is_valid_point(data):
        raise OPRFError(f"{name} is not a valid canonical ristretto255 encoding")
    if hmac.compare_digest(data, _IDENTITY):
        raise OPRFError(f"{name} must not be the identity element")
    return data


def _scalar_mult(scalar: bytes, element: bytes) -> bytes:
    """``scalar * element`` for a validated non-zero scalar and non-identity element.

    In a prime-order group that product is never the identity; libsodium still refuses to output it, and
    that refusal is mapped to OPRFError rather than leaking a RuntimeError.
    """
    try:
        product: bytes = rbcl.crypto_scalarmult_ristretto255(scalar, element)
        return product
    except RuntimeError:
        raise OPRFError("scalar multiplication produced the identity element") from None


def _check_input(private_input: object) -> bytes:
    data = _as_bytes(private_input, "private_input")
    if len(data) > MAX_INPUT_LENGTH:
        raise OPRFError(f"private_input must be at most {MAX_INPUT_LENGTH} bytes")
    return data


def _input_element(private_input: bytes) -> bytes:
    element = _hash_to_group(private_input)
    if hmac.compare_digest(element, _IDENTITY):
        # RFC 9497 §3.3.1: InvalidInputError. Happens with negligible probability.
        raise OPRFError("private_input maps to the identity element")
    return element


def _finalize_hash(private_input: bytes, element: bytes) -> bytes:
    hash_input = (
        _i2osp(len(private_input), 2) + private_input + _i2osp(len(element), 2) + element + _FINALIZE_LABEL
    )
    return hashlib.sha512(hash_input).digest()


# --- RFC 9497 key generation (§3.2) -----------------------------------------------------------------


def generate_key() -> bytes:
    """GenerateKeyPair's private half: a uniformly random non-zero scalar (32 bytes)."""
    while True:
        key: bytes = rbcl.crypto_core_ristretto255_scalar_random()
        if not hmac.compare_digest(key, _ZERO_SCALAR):
            return key


def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """DeriveKeyPair (RFC 9497 §3.2.1): ``(skS, pkS)`` from a 32-byte secret seed and a public info.

    The public key is only needed by the verifiable modes; it is returned because the RFC does, and it
    lets a deployment publish which key an SFS uses.
    """
    seed = _as_bytes(seed, "seed")
    info = _as_bytes(info, "info")
    if len(seed) != SCALAR_LENGTH:
        raise OPRFError(f"seed must be {SCALAR_LENGTH} bytes")
    if len(info) > MAX_INPUT_LENGTH:
        raise OPRFError(f"info must be at most {MAX_INPUT_LENGTH} bytes")
    derive_input = seed + _i2osp(len(info), 2) + info
    for counter in range(256):
        secret_key = _hash_to_scalar(derive_input + _i2osp(counter, 1), _DERIVE_KEY_PAIR_DST)
        if not hmac.compare_digest(secret_key, _ZERO_SCALAR):
            return secret_key, rbcl.crypto_scalarmult_ristretto255_base(secret_key)
    raise OPRFError("DeriveKeyPair found no non-zero scalar")  # pragma: no cover - probability ~2^-64000


# --- RFC 9497 OPRF protocol (§3.3.1) ----------------------------------------------------------------


def blind(private_input: bytes, blind: bytes | None = None) -> tuple[bytes, bytes]:
    """Blind (client): returns ``(blind, blinded_element)``; keep the blind, send the element.

    ``blind`` may be given only to reproduce test vectors; in use it must be left to this function,
    which draws a fresh random one (reusing a blind links two requests).
    """
    data = _check_input(private_input)
    blind_scalar = generate_key() if blind is None else _deserialize_scalar(blind, "blind")
    element = _input_element(data)
    return blind_scalar, _scalar_mult(blind_scalar, element)


def blind_evaluate(server_key: bytes, blinded_element: bytes) -> bytes:
    """BlindEvaluate (server): ``skS * blindedElement``, after validating what the client sent."""
    key = _deserialize_scalar(server_key, "server_key")
    element = _deserialize_element(blinded_element, "blinded_element")
    return _scalar_mult(key, element)


def finalize(private_input: bytes, blind: bytes, evaluated_element: bytes) -> bytes:
    """Finalize (client): unblind the server's answer and hash it with the input (64 bytes)."""
    data = _check_input(private_input)
    blind_scalar = _deserialize_scalar(blind, "blind")
    element = _deserialize_element(evaluated_element, "evaluated_element")
    inverse = rbcl.crypto_core_ristretto255_scalar_invert(blind_scalar)
    unblinded = _scalar_mult(inverse, element)
    return _finalize_hash(data, unblinded)


def evaluate(server_key: bytes, private_input: bytes) -> bytes:
    """Evaluate: the PRF computed directly by whoever holds both key and input (tests, and showing what
    an attacker with the server key can compute)."""
    key = _deserialize_scalar(server_key, "server_key")
    data = _check_input(private_input)
    issued = _scalar_mult(key, _input_element(data))
    return _finalize_hash(data, issued)
