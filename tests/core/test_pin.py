"""PIN proofs: the right PIN on the right device against the right SFS key proves; nothing else does."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from nextauth_core import oprf, pin
from nextauth_core.pin import PinRequest

PIN = "4711"
STATEMENT = b"challenge 1 bound to channel A"


class Sfs:
    """Just enough of an SFS for these tests: one OPRF key, one stored verifier."""

    def __init__(self) -> None:
        self.key = oprf.generate_key()
        self.verifier: bytes | None = None

    def evaluate(self, request: PinRequest) -> bytes:
        return oprf.blind_evaluate(self.key, request.blinded_element)


def register(sfs: Sfs, pin_value: str, device_secret: bytes) -> bytes:
    request = pin.start(pin_value)
    sfs.verifier = pin.verifier(pin_value, request, sfs.evaluate(request), device_secret)
    return sfs.verifier


def prove(sfs: Sfs, pin_value: str, device_secret: bytes, statement: bytes = STATEMENT) -> bytes:
    request = pin.start(pin_value)
    return pin.prove(pin_value, request, sfs.evaluate(request), device_secret, statement)


@pytest.fixture
def sfs() -> Sfs:
    return Sfs()


@pytest.fixture
def device_secret() -> bytes:
    return pin.new_device_secret()


@pytest.fixture
def verifier_key(sfs: Sfs, device_secret: bytes) -> bytes:
    return register(sfs, PIN, device_secret)


# --- What must verify ----------------------------------------------------------------------------


def test_right_pin_verifies(sfs: Sfs, device_secret: bytes, verifier_key: bytes) -> None:
    signature = prove(sfs, PIN, device_secret)
    assert len(verifier_key) == 32
    assert len(signature) == 64
    assert pin.check_proof(verifier_key, STATEMENT, signature) is True


def test_verifier_is_stable_across_fresh_blinds(sfs: Sfs, device_secret: bytes, verifier_key: bytes) -> None:
    request = pin.start(PIN)
    assert pin.verifier(PIN, request, sfs.evaluate(request), device_secret) == verifier_key


def test_any_characters_are_a_pin(sfs: Sfs, device_secret: bytes) -> None:
    for pin_value in ("abcd", "pässwörd 12", "🔐🔑🗝️🚪", "x" * 64):
        verifier_key = register(sfs, pin_value, device_secret)
        assert pin.check_proof(verifier_key, STATEMENT, prove(sfs, pin_value, device_secret))


def test_composed_and_decomposed_forms_are_the_same_pin(sfs: Sfs, device_secret: bytes) -> None:
    verifier_key = register(sfs, "caf\u00e9", device_secret)  # é as one code point
    assert pin.check_proof(verifier_key, STATEMENT, prove(sfs, "cafe\u0301", device_secret))  # e + accent


# --- What must not verify ------------------------------------------------------------------------


def test_wrong_pin_does_not_verify(sfs: Sfs, device_secret: bytes, verifier_key: bytes) -> None:
    for wrong in ("4712", "0000", "47110", " 4711"):
        assert pin.check_proof(verifier_key, STATEMENT, prove(sfs, wrong, device_secret)) is False


def test_right_pin_with_wrong_device_secret_does_not_verify(sfs: Sfs, verifier_key: bytes) -> None:
    other_device = pin.new_device_secret()
    assert pin.check_proof(verifier_key, STATEMENT, prove(sfs, PIN, other_device)) is False


def test_right_pin_with_a_different_sfs_key_does_not_verify(
    sfs: Sfs, device_secret: bytes, verifier_key: bytes
) -> None:
    other_sfs = Sfs()
    assert pin.check_proof(verifier_key, STATEMENT, prove(other_sfs, PIN, device_secret)) is False


def test_proof_for_one_statement_does_not_verify_another(
    sfs: Sfs, device_secret: bytes, verifier_key: bytes
) -> None:
    signature = prove(sfs, PIN, device_secret, b"challenge 1 bound to channel A")
    assert pin.check_proof(verifier_key, b"challenge 1 bound to channel A", signature)
    assert not pin.check_proof(verifier_key, b"challenge 1 bound to channel B", signature)
    assert not pin.check_proof(verifier_key, b"challenge 2 bound to channel A", signature)
    assert not pin.check_proof(verifier_key, b"", signature)


def test_tampered_signature_does_not_verify(sfs: Sfs, device_secret: bytes, verifier_key: bytes) -> None:
    signature = prove(sfs, PIN, device_secret)
    for index in (0, 31, 32, 63):
        tampered = bytearray(signature)
        tampered[index] ^= 0x01
        assert pin.check_proof(verifier_key, STATEMENT, bytes(tampered)) is False


def test_tampered_verifier_does_not_verify(sfs: Sfs, device_secret: bytes, verifier_key: bytes) -> None:
    signature = prove(sfs, PIN, device_secret)
    tampered = bytes([verifier_key[0] ^ 0x01]) + verifier_key[1:]
    assert pin.check_proof(tampered, STATEMENT, signature) is False


def test_proof_is_domain_separated_from_plain_ed25519(
    sfs: Sfs, device_secret: bytes, verifier_key: bytes
) -> None:
    """The documented derivation is the implemented one, and a signature over the bare statement by the
    same key is not a PIN proof."""
    request = pin.start(PIN)
    y = oprf.finalize(b"nextauth-pin-v1" + PIN.encode(), request.blind, sfs.evaluate(request))
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=device_secret, info=b"nextauth pin key v1")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(hkdf.derive(y))
    # The documented construction really is the one implemented...
    assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == verifier_key
    assert pin.check_proof(verifier_key, STATEMENT, key.sign(b"nextauth pin proof v1\x00" + STATEMENT))
    # ...and a signature without the context is not accepted.
    assert not pin.check_proof(verifier_key, STATEMENT, key.sign(STATEMENT))


@pytest.mark.parametrize(
    ("verifier_key", "statement", "signature"),
    [
        (b"", STATEMENT, bytes(64)),
        (bytes(31), STATEMENT, bytes(64)),
        (bytes(32), STATEMENT, bytes(63)),
        (bytes(32), STATEMENT, bytes(65)),
        (None, STATEMENT, bytes(64)),
        (bytes(32), None, bytes(64)),
        (bytes(32), STATEMENT, None),
        ("00" * 32, STATEMENT, bytes(64)),
        (bytes(32), "statement", bytes(64)),
        (12, 34, 56),
        (bytes(32), STATEMENT, bytes(64)),  # well-formed lengths, small-order key, zero signature
        (b"\xff" * 32, STATEMENT, b"\xff" * 64),
    ],
)
def test_check_proof_never_raises(verifier_key: object, statement: object, signature: object) -> None:
    assert pin.check_proof(verifier_key, statement, signature) is False  # type: ignore[arg-type]


# Small-order Edwards25519 points, as public keys. OpenSSL accepts them, and then a zero signature
# verifies for many messages; the encodings are checked to decode, so they are rejected for their order.
SMALL_ORDER_KEYS = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # y = 0, order 4
    "0100000000000000000000000000000000000000000000000000000000000000",  # the identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = -1, order 2
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "0000000000000000000000000000000000000000000000000000000000000080",  # y = 0, other x
]


@pytest.mark.parametrize("encoding", SMALL_ORDER_KEYS)
def test_small_order_verifiers_are_refused(encoding: str) -> None:
    key = bytes.fromhex(encoding)
    ed25519.Ed25519PublicKey.from_public_bytes(key)  # a key OpenSSL takes...
    assert not pin.is_acceptable_verifier(key)  # ...and this module does not
    # The forgery it would allow: a signature that needs no PIN.
    assert not any(pin.check_proof(key, bytes([i]), bytes(64)) for i in range(32))


def test_non_canonical_and_off_curve_verifiers_are_refused() -> None:
    p = 2**255 - 19
    assert not pin.is_acceptable_verifier(p.to_bytes(32, "little"))  # y = p, not reduced
    assert not pin.is_acceptable_verifier((p + 2).to_bytes(32, "little"))  # y = p + 2
    assert not pin.is_acceptable_verifier(bytes.fromhex("02" + "00" * 31))  # y = 2 is not on the curve
    assert not pin.is_acceptable_verifier(bytes(31))
    assert not pin.is_acceptable_verifier("00" * 32)  # type: ignore[arg-type]


def test_real_verifiers_are_acceptable(verifier_key: bytes) -> None:
    assert pin.is_acceptable_verifier(verifier_key)
    for _ in range(20):
        public = ed25519.Ed25519PrivateKey.generate().public_key()
        assert pin.is_acceptable_verifier(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


# --- What the device secret buys -----------------------------------------------------------------


def test_stolen_sfs_database_cannot_test_the_right_pin(
    sfs: Sfs, device_secret: bytes, verifier_key: bytes
) -> None:
    """An attacker with the SFS's OPRF key and the stored verifier, but not the device, computes the PRF
    for the *right* PIN directly and still cannot get the verifier: without the 32-byte device secret,
    guesses cannot be checked offline."""
    y = oprf.evaluate(sfs.key, b"nextauth-pin-v1" + PIN.encode("utf-8"))

    def attacker_verifier(salt: bytes | None) -> bytes:
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"nextauth pin key v1").derive(y)
        private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    for guessed_secret in (None, bytes(32), b"\xff" * 32, hashlib.sha256(b"guess").digest()):
        assert attacker_verifier(guessed_secret) != verifier_key
    # With the device secret it does match: the secret is exactly what stands between them.
    assert attacker_verifier(device_secret) == verifier_key


def test_device_secret_is_random_and_32_bytes() -> None:
    secrets_seen = {pin.new_device_secret() for _ in range(50)}
    assert len(secrets_seen) == 50
    assert all(len(secret) == 32 for secret in secrets_seen)


@pytest.mark.parametrize("bad_secret", [b"", bytes(31), bytes(33), "00" * 32, None])
def test_device_secret_must_be_32_bytes(sfs: Sfs, bad_secret: object) -> None:
    request = pin.start(PIN)
    evaluated = sfs.evaluate(request)
    with pytest.raises(ValueError, match="device secret must be 32 bytes"):
        pin.verifier(PIN, request, evaluated, bad_secret)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device secret must be 32 bytes"):
        pin.prove(PIN, request, evaluated, bad_secret, STATEMENT)  # type: ignore[arg-type]


# --- The request -----------------------------------------------------------------------------------


def test_pin_never_appears_in_the_request() -> None:
    for pin_value in ("4711", "correct horse battery", "123456789012"):
        request = pin.start(pin_value)
        encoded = pin_value.encode("utf-8")
        oprf_input = b"nextauth-pin-v1" + encoded
        for value in (request.blind, request.blinded_element):
            assert len(value) == 32
            assert encoded not in value
            assert oprf_input not in value
            assert encoded.hex() not in value.hex()
        assert pin_value not in repr(request)
        assert request.blind.hex() not in repr(request)  # the blind stays private too


def test_each_request_is_freshly_blinded() -> None:
    first, second = pin.start(PIN), pin.start(PIN)
    assert first.blind != second.blind
    assert first.blinded_element != second.blinded_element


def test_request_is_immutable() -> None:
    request = pin.start(PIN)
    with pytest.raises(AttributeError):
        request.blind = bytes(32)  # type: ignore[misc]


@pytest.mark.parametrize("bad_pin", ["", "1", "123", "x" * 65, "12\n34", "12\x0034", "\ud800abc"])
def test_start_rejects_unacceptable_pins(bad_pin: str) -> None:
    with pytest.raises(ValueError, match="PIN must"):
        pin.start(bad_pin)


def test_start_rejects_a_non_string_pin() -> None:
    with pytest.raises(TypeError, match="PIN must be a str"):
        pin.start(4711)  # type: ignore[arg-type]


def test_pin_length_limits_are_inclusive() -> None:
    assert len(pin.start("1234").blinded_element) == 32
    assert len(pin.start("9" * 64).blinded_element) == 32


def test_bad_evaluated_element_raises_oprf_error(device_secret: bytes) -> None:
    request = pin.start(PIN)
    with pytest.raises(oprf.OPRFError):
        pin.verifier(PIN, request, bytes(32), device_secret)
    with pytest.raises(oprf.OPRFError):
        pin.prove(PIN, request, b"\x01" * 32, device_secret, STATEMENT)


def test_accepted_verifiers_are_memoised_and_refused_ones_never(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SFS checks the same verifier at every login: once accepted it is kept as a key (bounded, emptied
    when full); a small-order verifier is refused at every proof and never kept."""
    monkeypatch.setattr(pin, "_VERIFIER_KEYS", {})
    monkeypatch.setattr(pin, "VERIFIER_KEYS_MAX", 2)
    checks: list[bytes] = []
    real_check = pin.is_acceptable_verifier
    monkeypatch.setattr(pin, "is_acceptable_verifier", lambda key: checks.append(key) or real_check(key))
    signer = ed25519.Ed25519PrivateKey.generate()
    verifier = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    proof = signer.sign(pin.PROOF_CONTEXT + STATEMENT)
    assert pin.check_proof(verifier, STATEMENT, proof)
    assert pin.check_proof(memoryview(verifier), STATEMENT, proof)
    assert not pin.check_proof(verifier, STATEMENT + b"!", proof)  # the memo keeps the key, not a verdict
    assert checks == [verifier]
    weak = bytes.fromhex(SMALL_ORDER_KEYS[1])
    for i in range(3):
        assert not pin.check_proof(weak, bytes([i]), bytes(64))
    assert checks.count(weak) == 3
    assert list(pin._VERIFIER_KEYS) == [verifier]
    for _ in range(2):
        other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert not pin.check_proof(other, STATEMENT, proof)
    assert len(pin._VERIFIER_KEYS) <= 2 and verifier not in pin._VERIFIER_KEYS  # emptied when full
    assert pin.check_proof(verifier, STATEMENT, proof)
    assert checks.count(verifier) == 2  # checked again once it had left
