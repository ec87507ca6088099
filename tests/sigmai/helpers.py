"""Builders for sans-IO sigmai tests."""

from cryptography.hazmat.primitives.asymmetric import ed25519

from sigmai import ClientConnection, DeviceIdentity, ServerConnection, ServerIdentity


def server_identity() -> ServerIdentity:
    return ServerIdentity(ed25519.Ed25519PrivateKey.generate())


def pair(
    device: DeviceIdentity | None = None, server_key: ServerIdentity | None = None
) -> tuple[ClientConnection, ServerConnection, ServerIdentity]:
    server_key = server_key or server_identity()
    client = ClientConnection(device or DeviceIdentity.generate(), server_key.key_hash)
    server = ServerConnection(lambda wanted: server_key if wanted == server_key.key_hash else None)
    return client, server, server_key


def handshake(client: ClientConnection, server: ServerConnection) -> tuple[bytes, bytes, bytes]:
    hello = client.initiate()
    server.receive(hello)
    (server_hello,) = server.frames_to_send()
    client.receive(server_hello)
    (finish,) = client.frames_to_send()
    server.receive(finish)
    return hello, server_hello, finish
