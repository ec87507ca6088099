"""The crypto one full QR login needs on the server side, each primitive timed alone: the floor under the
server CPU per login, measured in the same run as the logins so that both see the same machine.

Per login the servers (ns and the SFS together) do:

- two sigmai handshakes as the server (the phone's channel to ns with its account key, to the SFS with its
  device key): the primitives ``bench.sigmai_handshake`` counts in a real server-side handshake;
- at the SFS: one OPRF BlindEvaluate (RFC 9497, ristretto255), one Ed25519 verify of the PIN proof, one
  Ed25519 signature on the attestation;
- at ns: one Ed25519 verify of the attestation, one verify of the login signature with the account key;
- record protection: ChaCha20-Poly1305 on the requests and answers of both channels (four exchanges).

What is not here is everything else a server does: parsing, JSON, the database, Redis, HTTP. The ratio
server CPU : floor says how much of that there is.
"""

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bench.sigmai_handshake import count_server_operations, primitive_operations
from nextauth_core import oprf, pin
from sigmai import DeviceIdentity, ServerIdentity
from sigmai.constants import KEY_TYPE_P256

# Requests and answers on the phone's two channels during one login (login start and finish at ns, PIN
# evaluation and attestation at the SFS), each sealed by one side and opened by the other.
RECORDS_PER_LOGIN = 8


@dataclass
class Floor:
    microseconds: dict[str, float]  # per login, by step
    repetitions: int

    @property
    def total_ms(self) -> float:
        return sum(self.microseconds.values()) / 1000

    def markdown(self) -> str:
        lines = [
            "| server-side crypto of one login | µs |",
            "|---|---:|",
            *(f"| {name} | {us:.1f} |" for name, us in self.microseconds.items()),
            f"| **floor per login** | **{1000 * self.total_ms:.1f}** |",
        ]
        return "\n".join(lines) + "\n"


def _median_microseconds(operation: Callable[[], object], count: int, repetitions: int) -> float:
    operation()  # warm-up: lazy imports and first-use set-up stay out of the figure
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(count):
            operation()
        samples.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(samples)


def _handshake_microseconds(count: int, repetitions: int) -> float:
    device = DeviceIdentity.generate(KEY_TYPE_P256)
    server_key = ServerIdentity(ed25519.Ed25519PrivateKey.generate())
    counts = count_server_operations(device, server_key)
    operations = primitive_operations(device, server_key)
    return sum(counts[name] * _median_microseconds(operations[name], count, repetitions) for name in counts)


def measure(*, quick: bool = False) -> Floor:
    count, repetitions = (50, 3) if quick else (300, 5)
    oprf_key = oprf.generate_key()
    _blind, blinded = oprf.blind(b"device secret and PIN")
    pin_key = ed25519.Ed25519PrivateKey.generate()
    verifier = pin_key.public_key().public_bytes_raw()
    statement = os.urandom(180)
    proof = pin_key.sign(pin.PROOF_CONTEXT + statement)
    attestation_key = ed25519.Ed25519PrivateKey.generate()
    attestation_body = os.urandom(420)  # header and claims of an attestation, base64url
    attestation_signature = attestation_key.sign(attestation_body)
    attestation_public = attestation_key.public_key()
    account = DeviceIdentity.generate(KEY_TYPE_P256)
    login_statement = os.urandom(120)
    login_signature = account.sign(login_statement)
    account_peer = account.peer_key
    aead = ChaCha20Poly1305(os.urandom(32))
    nonce = os.urandom(12)
    record = os.urandom(300)
    sealed = aead.encrypt(nonce, record, b"")

    def check_pin_proof() -> None:
        if not pin.check_proof(verifier, statement, proof):
            raise RuntimeError("the PIN proof did not verify")

    def seal_and_open() -> None:
        aead.encrypt(nonce, record, b"")
        aead.decrypt(nonce, sealed, b"")

    steps: dict[str, tuple[Callable[[], object], int]] = {
        "OPRF BlindEvaluate (ristretto255)": (lambda: oprf.blind_evaluate(oprf_key, blinded), 1),
        "PIN proof verify (Ed25519)": (check_pin_proof, 1),
        "attestation sign (Ed25519)": (lambda: attestation_key.sign(attestation_body), 1),
        "attestation verify (Ed25519)": (
            lambda: attestation_public.verify(attestation_signature, attestation_body),
            1,
        ),
        "login signature verify (P-256)": (lambda: account_peer.verify(login_signature, login_statement), 1),
        f"records: ChaCha20-Poly1305 seal + open (300 B) x {RECORDS_PER_LOGIN}": (
            seal_and_open,
            RECORDS_PER_LOGIN,
        ),
    }
    microseconds = {"sigmai handshakes as the server x 2": 2 * _handshake_microseconds(count, repetitions)}
    for name, (operation, times) in steps.items():
        microseconds[name] = times * _median_microseconds(operation, count, repetitions)
    return Floor(microseconds, repetitions)


if __name__ == "__main__":
    print(measure().markdown())
