"""Test vectors for docs/sigmai-test-vectors.json: one handshake and one record each way, from fixed keys.

Run ``python -m sigmai.vectors`` to print them. The tests regenerate the file's content and compare it, and
feed the recorded frames to fresh connections, so the spec, the vectors and the code cannot drift apart.
"""

import json
import sys
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from sigmai import keyschedule as ks
from sigmai.connection import ClientConnection, ServerConnection
from sigmai.identity import DeviceIdentity, ServerIdentity

SERVER_SEED = bytes(range(0x00, 0x20))
CLIENT_EPHEMERAL = bytes(range(0x40, 0x60))
SERVER_EPHEMERAL = bytes(range(0x60, 0x80))
CLIENT_RANDOM = b"\xc1" * 32
SERVER_RANDOM = b"\x5e" * 32
DEVICE_ED25519_SEED = bytes(range(0x20, 0x40))
DEVICE_P256_SCALAR = int.from_bytes(bytes(range(0x80, 0xA0)), "big")
CLIENT_MESSAGE = b'{"op":"hello"}'
SERVER_MESSAGE = b'{"component":"ns"}'
EXPORTER_LABEL = b"EXPORTER-nextauth-login"
EXPORTER_CONTEXT = b"challenge"


def device_identities() -> dict[str, DeviceIdentity]:
    return {
        "ed25519": DeviceIdentity(ed25519.Ed25519PrivateKey.from_private_bytes(DEVICE_ED25519_SEED)),
        "p256": DeviceIdentity(ec.derive_private_key(DEVICE_P256_SCALAR, ec.SECP256R1())),
    }


def server_identity() -> ServerIdentity:
    return ServerIdentity(ed25519.Ed25519PrivateKey.from_private_bytes(SERVER_SEED))


def run_handshake(device: DeviceIdentity) -> dict[str, Any]:
    server_key = server_identity()
    client = ClientConnection(
        device,
        server_key.key_hash,
        ephemeral=x25519.X25519PrivateKey.from_private_bytes(CLIENT_EPHEMERAL),
        random=CLIENT_RANDOM,
    )
    server = ServerConnection(
        lambda wanted: server_key if wanted == server_key.key_hash else None,
        ephemeral=x25519.X25519PrivateKey.from_private_bytes(SERVER_EPHEMERAL),
        random=SERVER_RANDOM,
    )
    client_hello = client.initiate()
    server.receive(client_hello)
    (server_hello,) = server.frames_to_send()
    client.receive(server_hello)
    (client_finish,) = client.frames_to_send()
    server.receive(client_finish)

    shared = x25519.X25519PrivateKey.from_private_bytes(CLIENT_EPHEMERAL).exchange(
        x25519.X25519PrivateKey.from_private_bytes(SERVER_EPHEMERAL).public_key()
    )
    hs = ks.handshake_secrets(shared, ks.transcript_hash(client_hello, server_hello[:66]))
    full = ks.transcript_hash(client_hello, server_hello, client_finish)
    app = ks.application_secrets(hs.handshake_secret, full)
    return {
        "device_public_key": device.public_raw.hex(),
        "device_thumbprint": device.peer_key.thumbprint(),
        "client_hello": client_hello.hex(),
        "server_hello": server_hello.hex(),
        "client_finish": client_finish.hex(),
        "shared_secret": shared.hex(),
        "handshake_secret": hs.handshake_secret.hex(),
        "client_handshake_traffic_secret": hs.client_handshake.hex(),
        "server_handshake_traffic_secret": hs.server_handshake.hex(),
        "master_secret": app.master_secret.hex(),
        "client_application_traffic_secret": app.client_application.hex(),
        "server_application_traffic_secret": app.server_application.hex(),
        "exporter_master_secret": app.exporter_master.hex(),
        "transcript_hash": full.hex(),
        "client_record_0": client.send(CLIENT_MESSAGE).hex(),
        "server_record_0": server.send(SERVER_MESSAGE).hex(),
        "exporter_output": client.export(EXPORTER_LABEL, EXPORTER_CONTEXT, 32).hex(),
    }


def generate() -> dict[str, Any]:
    server_key = server_identity()
    return {
        "description": "sigmai version 1 test vectors; every byte string is hex. See docs/sigmai.md.",
        "inputs": {
            "server_ed25519_seed": SERVER_SEED.hex(),
            "server_public_key": server_key.public_raw.hex(),
            "server_key_hash": server_key.key_hash.hex(),
            "client_ephemeral_x25519_private": CLIENT_EPHEMERAL.hex(),
            "server_ephemeral_x25519_private": SERVER_EPHEMERAL.hex(),
            "client_random": CLIENT_RANDOM.hex(),
            "server_random": SERVER_RANDOM.hex(),
            "device_ed25519_seed": DEVICE_ED25519_SEED.hex(),
            "device_p256_private_scalar": f"{DEVICE_P256_SCALAR:064x}",
            "ecdsa_signing": "deterministic, RFC 6979 with SHA-256",
            "client_message": CLIENT_MESSAGE.hex(),
            "server_message": SERVER_MESSAGE.hex(),
            "exporter_label": EXPORTER_LABEL.hex(),
            "exporter_context": EXPORTER_CONTEXT.hex(),
            "exporter_length": 32,
        },
        "handshakes": {name: run_handshake(device) for name, device in device_identities().items()},
    }


def main() -> None:
    json.dump(generate(), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
