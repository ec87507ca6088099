"""Key schedule: HKDF-SHA256 in the shape of TLS 1.3 (RFC 8446 section 7.1), with sigmai's own labels.

Secrets flow  DH -> handshake secret -> (client/server handshake traffic secrets, master secret)
-> (client/server application traffic secrets, exporter master secret).  Handshake traffic secrets are
bound to the hello messages, application secrets and the exporter to the whole handshake transcript.
A future hybrid version feeds X25519 || ML-KEM-768 shared secrets into the same extract step.
"""

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from sigmai.constants import AEAD_KEY_LEN, AEAD_NONCE_LEN, HASH_LEN, LABEL_PREFIX

ZEROS = bytes(HASH_LEN)
EMPTY_HASH = hashlib.sha256(b"").digest()
_SHA256 = hashes.SHA256()  # stateless: one instance serves every derivation


def transcript_hash(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def extract(salt: bytes, key_material: bytes) -> bytes:
    return HKDF.extract(_SHA256, salt, key_material)


def expand_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    full_label = LABEL_PREFIX + label
    info = struct.pack(">H", length) + bytes([len(full_label)]) + full_label + bytes([len(context)]) + context
    return HKDFExpand(_SHA256, length, info).derive(secret)


def derive_secret(secret: bytes, label: bytes, transcript: bytes) -> bytes:
    return expand_label(secret, label, transcript, HASH_LEN)


def finished_mac(base_secret: bytes, transcript: bytes) -> bytes:
    key = expand_label(base_secret, b"finished", b"", HASH_LEN)
    return hmac.new(key, transcript, hashlib.sha256).digest()


@dataclass(frozen=True)
class TrafficKeys:
    key: bytes
    iv: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> "TrafficKeys":
        return cls(
            key=expand_label(secret, b"key", b"", AEAD_KEY_LEN),
            iv=expand_label(secret, b"iv", b"", AEAD_NONCE_LEN),
        )


@dataclass(frozen=True)
class HandshakeSecrets:
    handshake_secret: bytes
    client_handshake: bytes
    server_handshake: bytes


@dataclass(frozen=True)
class ApplicationSecrets:
    master_secret: bytes
    client_application: bytes
    server_application: bytes
    exporter_master: bytes


# Without a pre-shared key the early secret, and the salt derived from it, are the same for every
# handshake (RFC 8446 section 7.1 with a zero PSK): worked out once.
_HANDSHAKE_SALT = derive_secret(extract(ZEROS, ZEROS), b"derived", EMPTY_HASH)


def handshake_secrets(shared_secret: bytes, hello_transcript: bytes) -> HandshakeSecrets:
    handshake = extract(_HANDSHAKE_SALT, shared_secret)
    return HandshakeSecrets(
        handshake_secret=handshake,
        client_handshake=derive_secret(handshake, b"c hs traffic", hello_transcript),
        server_handshake=derive_secret(handshake, b"s hs traffic", hello_transcript),
    )


def application_secrets(handshake_secret: bytes, full_transcript: bytes) -> ApplicationSecrets:
    master = extract(derive_secret(handshake_secret, b"derived", EMPTY_HASH), ZEROS)
    return ApplicationSecrets(
        master_secret=master,
        client_application=derive_secret(master, b"c ap traffic", full_transcript),
        server_application=derive_secret(master, b"s ap traffic", full_transcript),
        exporter_master=derive_secret(master, b"exp master", full_transcript),
    )


def export(exporter_master: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """RFC 8446 section 7.5 exporter: binds application statements (login confirmations, PIN proofs)
    to this very channel, so they cannot be replayed through another one."""
    if not label or len(label) > 200 or not 1 <= length <= 255 * HASH_LEN:
        raise ValueError("exporter label must be 1..200 bytes and length 1..8160")
    secret = derive_secret(exporter_master, label, EMPTY_HASH)
    return expand_label(secret, b"exporter", transcript_hash(context), length)
