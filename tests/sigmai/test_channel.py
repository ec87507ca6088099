"""sigmai handshake and records, including every way a peer or a man in the middle may misbehave."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sigmai import (
    ClientConnection,
    DeviceIdentity,
    HandshakeComplete,
    MessageReceived,
    PeerKey,
    ProtocolError,
    ServerConnection,
    State,
)
from sigmai.constants import KEY_TYPE_ED25519, KEY_TYPE_P256

from .helpers import handshake, pair, server_identity


@pytest.mark.parametrize("key_type", [KEY_TYPE_P256, KEY_TYPE_ED25519])
def test_handshake_authenticates_both_sides(key_type: int) -> None:
    device = DeviceIdentity.generate(key_type)
    client, server, server_key = pair(device)
    handshake(client, server)
    assert client.state is server.state is State.ESTABLISHED
    assert client.peer == server_key.peer_key
    assert server.peer == device.peer_key
    assert client.transcript_hash == server.transcript_hash
    assert server.receive(client.send(b"ping")) == [MessageReceived(b"ping")]
    assert client.receive(server.send(b"pong")) == [MessageReceived(b"pong")]


def test_exporter_is_shared_and_unique_per_channel() -> None:
    device = DeviceIdentity.generate()
    server_key = server_identity()
    first_client, first_server, _ = pair(device, server_key)
    handshake(first_client, first_server)
    second_client, second_server, _ = pair(device, server_key)
    handshake(second_client, second_server)
    assert first_client.export(b"label", b"ctx") == first_server.export(b"label", b"ctx")
    assert first_client.export(b"label", b"ctx") != second_client.export(b"label", b"ctx")
    assert first_client.export(b"label", b"ctx") != first_client.export(b"label", b"other")


def test_device_identity_is_not_visible_on_the_wire() -> None:
    device = DeviceIdentity.generate()
    client, server, _ = pair(device)
    frames = handshake(client, server)
    for frame in frames:
        assert device.public_raw not in frame
        assert device.public_raw[1:33] not in frame  # not even the P-256 x coordinate


def _flip(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x01]) + frame[index + 1 :]


@pytest.mark.parametrize("message_index", [0, 1, 2])
def test_every_tampered_handshake_byte_is_detected(message_index: int) -> None:
    reference_client, reference_server, _ = pair()
    length = len(handshake(reference_client, reference_server)[message_index])
    for index in range(length):
        client, server, _ = pair()
        hello = client.initiate()
        with pytest.raises(ProtocolError):
            if message_index == 0:
                server.receive(_flip(hello, index))
                client.receive(server.frames_to_send()[0])
                raise AssertionError(f"tampered ClientHello byte {index} accepted")
            server.receive(hello)
            server_hello = server.frames_to_send()[0]
            if message_index == 1:
                client.receive(_flip(server_hello, index))
                raise AssertionError(f"tampered ServerHello byte {index} accepted")
            client.receive(server_hello)
            server.receive(_flip(client.frames_to_send()[0], index))
            raise AssertionError(f"tampered ClientFinish byte {index} accepted")


def test_wrong_server_key_is_refused_before_the_device_reveals_itself() -> None:
    genuine, impostor = server_identity(), server_identity()
    client = ClientConnection(DeviceIdentity.generate(), genuine.key_hash)
    # The impostor answers whatever key hash is asked for with its own key.
    server = ServerConnection(lambda _wanted: impostor)
    server.receive(client.initiate())
    with pytest.raises(ProtocolError):
        client.receive(server.frames_to_send()[0])
    assert client.state is State.CLOSED
    assert client.frames_to_send() == []


def test_unknown_server_key_hash_ends_the_handshake() -> None:
    client = ClientConnection(DeviceIdentity.generate(), bytes(32))
    _, server, _ = pair()
    with pytest.raises(ProtocolError):
        server.receive(client.initiate())
    assert server.frames_to_send() == []


@pytest.mark.parametrize("version", [0x00, 0x02, 0xFF])
def test_other_protocol_versions_are_refused(version: int) -> None:
    client, server, _ = pair()
    hello = client.initiate()
    with pytest.raises(ProtocolError):
        server.receive(bytes([version]) + hello[1:])


def test_downgrade_by_rewriting_the_version_in_later_messages_fails() -> None:
    client, server, _ = pair()
    server.receive(client.initiate())
    server_hello = server.frames_to_send()[0]
    with pytest.raises(ProtocolError):
        client.receive(b"\x00" + server_hello[1:])


def test_replayed_client_finish_is_refused_by_a_new_server_session() -> None:
    device = DeviceIdentity.generate()
    server_key = server_identity()
    client, server, _ = pair(device, server_key)
    hello, _, finish = handshake(client, server)
    _, replay_target, _ = pair(device, server_key)
    replay_target.receive(hello)
    with pytest.raises(ProtocolError):
        replay_target.receive(finish)


def test_man_in_the_middle_with_its_own_ephemeral_fails() -> None:
    device = DeviceIdentity.generate()
    server_key = server_identity()
    client, server, _ = pair(device, server_key)
    hello = client.initiate()
    mitm_client = ClientConnection(DeviceIdentity.generate(), server_key.key_hash)
    mitm_hello = mitm_client.initiate()
    # The attacker swaps in its own key share but keeps the app's random and key hash.
    forged = mitm_hello[:34] + hello[34:]
    server.receive(forged)
    with pytest.raises(ProtocolError):
        client.receive(server.frames_to_send()[0])


def _established() -> tuple[ClientConnection, ServerConnection]:
    client, server, _ = pair()
    handshake(client, server)
    return client, server


def test_replayed_record_is_refused() -> None:
    client, server = _established()
    record = client.send(b"approve")
    server.receive(record)
    with pytest.raises(ProtocolError):
        server.receive(record)
    assert server.state is State.CLOSED


def test_reordered_records_are_refused() -> None:
    client, server = _established()
    first, second = client.send(b"one"), client.send(b"two")
    with pytest.raises(ProtocolError):
        server.receive(second)
    with pytest.raises(ProtocolError):
        server.receive(first)  # still closed: a failure is final


def test_dropped_record_is_detected_on_the_next_one() -> None:
    client, server = _established()
    client.send(b"lost")
    with pytest.raises(ProtocolError):
        server.receive(client.send(b"next"))


def test_reflected_record_is_refused() -> None:
    client, _server = _established()
    with pytest.raises(ProtocolError):
        client.receive(client.send(b"echo"))


@pytest.mark.parametrize("cut", [1, 16, 17])
def test_truncated_record_is_refused(cut: int) -> None:
    client, server = _established()
    record = client.send(b"a longer application message")
    with pytest.raises(ProtocolError):
        server.receive(record[:-cut])


def test_truncated_handshake_message_is_refused() -> None:
    client, server, _ = pair()
    with pytest.raises(ProtocolError):
        server.receive(client.initiate()[:-1])


def test_empty_and_garbage_frames_are_refused() -> None:
    for frame in (b"", b"\x01", b"\x01\x17", b"GET / HTTP/1.1\r\n"):
        _, server, _ = pair()
        with pytest.raises(ProtocolError):
            server.receive(frame)


def test_oversized_frame_is_refused_without_decrypting() -> None:
    server = ServerConnection(lambda _wanted: None, max_message=1024)
    with pytest.raises(ProtocolError):
        server.receive(b"\x01\x01" + bytes(4096))
    established_client, established_server = _established()
    with pytest.raises(ProtocolError):
        established_client.send(bytes(64 * 1024 + 1))
    assert established_server.state is State.ESTABLISHED


def test_low_order_key_share_is_refused() -> None:
    client, server, _ = pair()
    hello = client.initiate()
    with pytest.raises(ProtocolError):
        server.receive(hello[:2] + bytes(32) + hello[34:])


def test_records_before_the_handshake_are_refused() -> None:
    client, server, _ = pair()
    with pytest.raises(ProtocolError):
        client.send(b"too early")
    with pytest.raises(ProtocolError):
        server.receive(b"\x01\x17" + bytes(40))


def test_server_hello_sent_to_a_server_is_refused() -> None:
    client, server, _ = pair()
    server.receive(client.initiate())
    server_hello = server.frames_to_send()[0]
    _, other_server, _ = pair()
    with pytest.raises(ProtocolError):
        other_server.receive(server_hello)


def test_client_finish_signed_with_another_key_is_refused() -> None:
    """A device cannot claim a public key it does not hold."""
    device = DeviceIdentity(ed25519.Ed25519PrivateKey.generate())
    victim = DeviceIdentity(ed25519.Ed25519PrivateKey.generate())
    client, server, _ = pair(device)
    server.receive(client.initiate())
    server_hello = server.frames_to_send()[0]
    client._identity.public_raw = victim.public_raw  # claim the victim's key, sign with our own
    client.receive(server_hello)
    with pytest.raises(ProtocolError):
        server.receive(client.frames_to_send()[0])


def test_handshake_events_name_the_peer() -> None:
    device = DeviceIdentity.generate()
    client, server, server_key = pair(device)
    server.receive(client.initiate())
    (client_done,) = client.receive(server.frames_to_send()[0])
    (server_done,) = server.receive(client.frames_to_send()[0])
    assert isinstance(client_done, HandshakeComplete) and isinstance(server_done, HandshakeComplete)
    assert client_done.peer.raw == server_key.public_raw
    assert server_done.peer.thumbprint() == device.peer_key.thumbprint()
    assert server_done.server_key_hash == server_key.key_hash


def test_a_peer_key_is_checked_whole_however_it_was_made() -> None:
    """parse() refuses what is not a sound key; one made directly (from stored bytes) is checked when it
    first verifies; the key parsed once serves every verify, and the thumbprint is the key's."""
    off_curve = bytes([4]) + bytes(63)  # the right length, not a point on P-256
    with pytest.raises(ProtocolError):
        PeerKey.parse(KEY_TYPE_P256, off_curve)
    small_order = bytes([1]) + bytes(31)
    with pytest.raises(ProtocolError):
        PeerKey(KEY_TYPE_ED25519, small_order).verify(small_order + bytes(32), b"any message")
    device = DeviceIdentity.generate(KEY_TYPE_P256)
    compressed = device.private_key.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    with pytest.raises(ProtocolError):  # a sound point, but not in the form the protocol carries
        PeerKey(KEY_TYPE_P256, compressed).verify(device.sign(b"m"), b"m")
    peer = PeerKey.parse(device.key_type, device.public_raw)
    for message in (b"one", b"two"):
        peer.verify(device.sign(message), message)
    with pytest.raises(ProtocolError):
        peer.verify(device.sign(b"one"), b"two")
    assert peer.thumbprint() == device.peer_key.thumbprint() == peer.thumbprint()
    other = DeviceIdentity.generate(KEY_TYPE_P256).peer_key
    assert other.thumbprint() != peer.thumbprint()


def test_small_order_device_key_is_refused() -> None:
    """With a small-order Ed25519 key, R = that point and S = 0 'verifies' for many messages."""
    small_order = bytes([1]) + bytes(31)  # the identity point
    with pytest.raises(ProtocolError):
        PeerKey.parse(KEY_TYPE_ED25519, small_order)
    # And end to end: a device claiming such a key with a trivial signature is refused.
    client, server, _ = pair(DeviceIdentity(ed25519.Ed25519PrivateKey.generate()))
    server.receive(client.initiate())
    client._identity.public_raw = small_order
    client._identity.sign = lambda _message: small_order + bytes(32)  # type: ignore[method-assign]
    client.receive(server.frames_to_send()[0])
    with pytest.raises(ProtocolError):
        server.receive(client.frames_to_send()[0])


def test_parsed_keys_are_memoised_bounded_and_only_when_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A phone's key parsed once serves its later channels (the same object); a refused key is refused
    every time and never kept; the memo empties when full."""
    from sigmai import identity

    monkeypatch.setattr(identity, "_PARSED", {})
    monkeypatch.setattr(identity, "PARSED_KEYS_MAX", 3)
    device = DeviceIdentity.generate(KEY_TYPE_P256)
    first = PeerKey.parse(device.key_type, bytearray(device.public_raw))  # any bytes-like wire slice
    assert PeerKey.parse(device.key_type, device.public_raw) is first
    first.verify(device.sign(b"m"), b"m")
    # The same bytes under the other type are another key, checked as that type.
    with pytest.raises(ProtocolError):
        PeerKey.parse(KEY_TYPE_ED25519, device.public_raw)
    small_order = bytes([1]) + bytes(31)
    for _ in range(2):
        with pytest.raises(ProtocolError):
            PeerKey.parse(KEY_TYPE_ED25519, small_order)
    assert list(identity._PARSED) == [(device.key_type, device.public_raw)]
    for _ in range(3):
        other = DeviceIdentity.generate(KEY_TYPE_P256)
        PeerKey.parse(other.key_type, other.public_raw)
    assert len(identity._PARSED) <= 3
    assert (device.key_type, device.public_raw) not in identity._PARSED  # emptied when full
    assert PeerKey.parse(device.key_type, device.public_raw) is not first  # parsed (and checked) again
