"""The committed test vectors are what the code produces, and a fresh peer accepts the recorded frames."""

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from sigmai import ClientConnection, HandshakeComplete, MessageReceived, ServerConnection, vectors

VECTOR_FILE = Path(__file__).resolve().parents[2] / "docs" / "sigmai-test-vectors.json"


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(VECTOR_FILE.read_text())


def test_committed_vectors_match_the_implementation(recorded: dict) -> None:
    assert vectors.generate() == recorded


@pytest.mark.parametrize("device_name", ["ed25519", "p256"])
def test_server_accepts_recorded_client_frames(recorded: dict, device_name: str) -> None:
    case = recorded["handshakes"][device_name]
    server_key = vectors.server_identity()
    server = ServerConnection(
        lambda wanted: server_key if wanted == server_key.key_hash else None,
        ephemeral=x25519.X25519PrivateKey.from_private_bytes(vectors.SERVER_EPHEMERAL),
        random=vectors.SERVER_RANDOM,
    )
    assert server.receive(bytes.fromhex(case["client_hello"])) == []
    assert server.frames_to_send() == [bytes.fromhex(case["server_hello"])]
    (done,) = server.receive(bytes.fromhex(case["client_finish"]))
    assert isinstance(done, HandshakeComplete)
    assert done.peer.raw.hex() == case["device_public_key"]
    assert done.transcript_hash.hex() == case["transcript_hash"]
    assert server.receive(bytes.fromhex(case["client_record_0"])) == [MessageReceived(vectors.CLIENT_MESSAGE)]


@pytest.mark.parametrize("device_name", ["ed25519", "p256"])
def test_client_reproduces_recorded_frames(recorded: dict, device_name: str) -> None:
    case = recorded["handshakes"][device_name]
    client = ClientConnection(
        vectors.device_identities()[device_name],
        bytes.fromhex(recorded["inputs"]["server_key_hash"]),
        ephemeral=x25519.X25519PrivateKey.from_private_bytes(vectors.CLIENT_EPHEMERAL),
        random=vectors.CLIENT_RANDOM,
    )
    assert client.initiate().hex() == case["client_hello"]
    (done,) = client.receive(bytes.fromhex(case["server_hello"]))
    assert done.peer.raw.hex() == recorded["inputs"]["server_public_key"]
    assert [frame.hex() for frame in client.frames_to_send()] == [case["client_finish"]]
    assert client.receive(bytes.fromhex(case["server_record_0"])) == [MessageReceived(vectors.SERVER_MESSAGE)]
    exported = client.export(vectors.EXPORTER_LABEL, vectors.EXPORTER_CONTEXT, 32)
    assert exported.hex() == case["exporter_output"]
