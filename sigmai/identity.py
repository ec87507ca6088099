"""Long-term keys on each side of the channel.

Servers (ns, its virtual servers, sfs, mc) sign with Ed25519. Devices sign with ECDSA P-256, what phone
secure hardware offers, or Ed25519. On the wire a device key is one type byte and its raw public bytes;
signatures are always 64 bytes (ECDSA as fixed-width r || s) so message lengths do not depend on DER.
"""

import base64
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from nacl.bindings import crypto_core_ed25519_is_valid_point

from sigmai.constants import (
    ED25519_PUBLIC_LEN,
    KEY_TYPE_ED25519,
    KEY_TYPE_P256,
    P256_PUBLIC_LEN,
    SIGNATURE_LEN,
)
from sigmai.errors import ProtocolError

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
# Keys that parsed and passed their checks, by wire form: a phone shows the same key on each of its
# channels, and parsing one (an Ed25519 key's small-order check is a scalar multiplication) costs a good part
# of a signature check. Only sound keys enter, so a peer sending bad keys costs the check each time and
# evicts nothing; the memo is emptied when full, as the keys of a few thousand phones fill it.
PARSED_KEYS_MAX = 4096
_PARSED: dict[tuple[int, bytes], "PeerKey"] = {}
_SEC1 = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # stateless: one serves every verification


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def server_key_hash(public_key: ed25519.Ed25519PublicKey) -> bytes:
    """What an app pins: SHA-256 of the server's raw Ed25519 public key (carried in QR payloads)."""
    return hashlib.sha256(public_key.public_bytes(*_RAW)).digest()


@dataclass(frozen=True)
class PeerKey:
    """A verified-format public key of the other side: ``key_type`` and its raw wire bytes."""

    key_type: int
    raw: bytes

    @classmethod
    def parse(cls, key_type: int, raw: bytes) -> "PeerKey":
        """The key, checked; the same object for the same wire form while it stays in a bounded memo."""
        raw = bytes(raw)
        found = _PARSED.get((key_type, raw))
        if found is not None:
            return found
        peer = cls(key_type, raw)
        peer._public_key  # noqa: B018 - parsed (and checked) now, and kept for verify()
        if len(_PARSED) >= PARSED_KEYS_MAX:
            _PARSED.clear()
        _PARSED[(key_type, raw)] = peer
        return peer

    @functools.cached_property
    def _public_key(self) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
        """The key as ``cryptography`` holds it, parsed once per PeerKey (a channel verifies with it more
        than once). Raises ProtocolError for a key that is not a sound one of its type, however the PeerKey
        was made."""
        try:
            if self.key_type == KEY_TYPE_ED25519 and len(self.raw) == ED25519_PUBLIC_LEN:
                # OpenSSL verifies against small-order keys, under which trivial signatures pass for
                # many messages; libsodium's check refuses them and non-canonical encodings.
                if not crypto_core_ed25519_is_valid_point(self.raw):
                    raise ProtocolError("weak or malformed Ed25519 key")
                return ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
            if self.key_type == KEY_TYPE_P256 and len(self.raw) == P256_PUBLIC_LEN:
                # from_encoded_point checks that the point lies on the curve (and, by the length, that it
                # is uncompressed, as jwk() reads it).
                return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.raw)
        except ValueError as exc:
            raise ProtocolError("malformed public key") from exc
        raise ProtocolError("unsupported key type or length")

    @property
    def type_name(self) -> str:
        return "ed25519" if self.key_type == KEY_TYPE_ED25519 else "p256"

    def verify(self, signature: bytes, message: bytes) -> None:
        if len(signature) != SIGNATURE_LEN:
            raise ProtocolError("bad signature length")
        public = self._public_key
        try:
            if isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(signature, message)
            else:
                r = int.from_bytes(signature[:32], "big")
                s = int.from_bytes(signature[32:], "big")
                public.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)
        except InvalidSignature as exc:
            raise ProtocolError("signature does not verify") from exc

    def jwk(self) -> dict[str, str]:
        if self.key_type == KEY_TYPE_ED25519:
            return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(self.raw)}
        return {"crv": "P-256", "kty": "EC", "x": _b64url(self.raw[1:33]), "y": _b64url(self.raw[33:])}

    def thumbprint(self) -> str:
        """RFC 7638 JWK thumbprint (SHA-256, base64url): the device key's stable, public name."""
        return self._thumbprint

    @functools.cached_property
    def _thumbprint(self) -> str:
        # Asked by several steps of every operation on a channel: computed once per key.
        canonical = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":")).encode("ascii")
        return _b64url(hashlib.sha256(canonical).digest())

    def matches_hash(self, expected: bytes) -> bool:
        return hmac.compare_digest(hashlib.sha256(self.raw).digest(), expected)


class ServerIdentity:
    """A server's long-term Ed25519 key, as used in the handshake."""

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_raw = private_key.public_key().public_bytes(*_RAW)
        self.key_hash = hashlib.sha256(self.public_raw).digest()

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    @property
    def peer_key(self) -> PeerKey:
        return PeerKey(KEY_TYPE_ED25519, self.public_raw)


class DeviceIdentity:
    """A device's long-term key, ECDSA P-256 or Ed25519.

    ECDSA signing is deterministic (RFC 6979) so that test vectors are reproducible; verification accepts
    any valid signature, as produced by phone secure hardware.
    """

    def __init__(self, private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> None:
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            self.key_type = KEY_TYPE_ED25519
            self.public_raw = private_key.public_key().public_bytes(*_RAW)
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
            private_key.curve, ec.SECP256R1
        ):
            self.key_type = KEY_TYPE_P256
            self.public_raw = private_key.public_key().public_bytes(*_SEC1)
        else:
            raise TypeError("device keys are Ed25519 or ECDSA P-256")
        self._private_key = private_key

    @classmethod
    def generate(cls, key_type: int = KEY_TYPE_P256) -> "DeviceIdentity":
        if key_type == KEY_TYPE_ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate())
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def private_key(self) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
        return self._private_key

    @property
    def peer_key(self) -> PeerKey:
        return PeerKey(self.key_type, self.public_raw)

    def sign(self, message: bytes) -> bytes:
        key = self._private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        der = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
