"""The sigmai state machines: ``ClientConnection`` (the app, initiator) and ``ServerConnection``.

Three handshake messages, each one WebSocket binary frame (see docs/sigmai.md for the byte layouts):

    ClientHello    app -> server   version, type, X25519 ephemeral, random, SHA-256 of the pinned server key
    ServerHello    server -> app   version, type, X25519 ephemeral, random,
                                   AEAD{server key, signature over the transcript, Finished MAC}
    ClientFinish   app -> server   version, type, AEAD{device key, signature over the transcript, Finished}

The app checks the server's key against its pin and its signature before it reveals its own key (SIGMA-I
identity protection). Finished MACs bind each identity to the shared secret. After the handshake every
frame is a record under per-direction application keys. Any failure raises ``ProtocolError`` and leaves the
connection CLOSED for good; the owner closes the transport without telling the peer why.
"""

import enum
import hmac
import os
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import x25519

from sigmai import keyschedule as ks
from sigmai.constants import (
    AEAD_TAG_LEN,
    CLIENT_FINISH,
    CLIENT_HELLO,
    CLIENT_HELLO_LEN,
    CLIENT_SIGNATURE_CONTEXT,
    DEFAULT_MAX_MESSAGE,
    ED25519_PUBLIC_LEN,
    HASH_LEN,
    HEADER_LEN,
    KEY_TYPE_ED25519,
    KEY_TYPE_P256,
    P256_PUBLIC_LEN,
    RANDOM_LEN,
    RECORD,
    SERVER_HELLO,
    SERVER_HELLO_CLEAR_LEN,
    SERVER_HELLO_LEN,
    SERVER_SIGNATURE_CONTEXT,
    SIGNATURE_LEN,
    VERSION,
    X25519_LEN,
)
from sigmai.errors import ProtocolError
from sigmai.events import Event, HandshakeComplete, MessageReceived
from sigmai.identity import DeviceIdentity, PeerKey, ServerIdentity
from sigmai.record import RecordProtection

_SIGNATURE_PAD = b"\x20" * 64
_RECORD_HEADER = bytes([VERSION, RECORD])


class State(enum.Enum):
    START = "start"
    WAIT_SERVER_HELLO = "wait-server-hello"
    WAIT_CLIENT_FINISH = "wait-client-finish"
    ESTABLISHED = "established"
    CLOSED = "closed"


def _signed_content(context: bytes, transcript: bytes) -> bytes:
    # As TLS 1.3's CertificateVerify: padding, a role-specific context, then the transcript hash, so a
    # signature made by one role can never be presented as the other's.
    return _SIGNATURE_PAD + context + b"\x00" + transcript


def _shared_secret(private: x25519.X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        return private.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # low-order point: all-zero shared secret
        raise ProtocolError("bad key share") from exc


def _check_header(frame: bytes, expected_type: int) -> None:
    if len(frame) < HEADER_LEN or frame[0] != VERSION or frame[1] != expected_type:
        raise ProtocolError("unexpected version or message type")


class _Connection:
    """What both roles share: the failure latch, the record layer, and the exporter."""

    def __init__(self, max_message: int) -> None:
        self.state = State.START
        self._max_message = max_message
        self._outbox: list[bytes] = []
        self._sender: RecordProtection | None = None
        self._receiver: RecordProtection | None = None
        self._exporter_master: bytes | None = None
        self.transcript_hash: bytes | None = None
        self.peer: PeerKey | None = None

    def frames_to_send(self) -> list[bytes]:
        frames, self._outbox = self._outbox, []
        return frames

    def receive(self, frame: bytes) -> list[Event]:
        """Consume one WebSocket binary frame; return what it meant."""
        if self.state is State.CLOSED:
            raise ProtocolError("connection is closed")
        if len(frame) > self._max_message + HEADER_LEN + AEAD_TAG_LEN:
            self._fail()
            raise ProtocolError("frame too large")
        try:
            return self._receive(bytes(frame))
        except ProtocolError:
            self._fail()
            raise
        except (ValueError, TypeError) as exc:
            self._fail()
            raise ProtocolError("malformed frame") from exc

    def _receive(self, frame: bytes) -> list[Event]:
        raise NotImplementedError

    def _open_record(self, frame: bytes) -> list[Event]:
        _check_header(frame, RECORD)
        assert self._receiver is not None
        return [MessageReceived(self._receiver.open(frame[HEADER_LEN:], _RECORD_HEADER))]

    def send(self, data: bytes) -> bytes:
        """Seal one application message; returns the frame to send."""
        if self.state is not State.ESTABLISHED or self._sender is None:
            raise ProtocolError("channel not established")
        if len(data) > self._max_message:
            raise ProtocolError("message too large")
        return _RECORD_HEADER + self._sender.seal(data, _RECORD_HEADER)

    def export(self, label: bytes, context: bytes = b"", length: int = 32) -> bytes:
        """Keying material unique to this channel, for binding application statements to it."""
        if self._exporter_master is None:
            raise ProtocolError("channel not established")
        return ks.export(self._exporter_master, label, context, length)

    def close(self) -> None:
        self._fail()

    def _fail(self) -> None:
        self.state = State.CLOSED
        self._sender = self._receiver = None
        self._exporter_master = None
        self._outbox.clear()

    def _establish(self, secrets: ks.ApplicationSecrets, transcript: bytes, *, is_client: bool) -> None:
        mine, theirs = secrets.client_application, secrets.server_application
        if not is_client:
            mine, theirs = theirs, mine
        self._sender = RecordProtection(ks.TrafficKeys.from_secret(mine))
        self._receiver = RecordProtection(ks.TrafficKeys.from_secret(theirs))
        self._exporter_master = secrets.exporter_master
        self.transcript_hash = transcript
        self.state = State.ESTABLISHED


class ClientConnection(_Connection):
    """The app's side. It knows (pins) the server key hash before it starts."""

    def __init__(
        self,
        identity: DeviceIdentity,
        server_key_hash: bytes,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        ephemeral: x25519.X25519PrivateKey | None = None,
        random: bytes | None = None,
    ) -> None:
        super().__init__(max_message)
        if len(server_key_hash) != HASH_LEN:
            raise ValueError("server key hash must be 32 bytes")
        self._identity = identity
        self._server_key_hash = server_key_hash
        self._ephemeral = ephemeral or x25519.X25519PrivateKey.generate()
        self._random = random if random is not None else os.urandom(RANDOM_LEN)
        self._hello = b""

    def initiate(self) -> bytes:
        """Return the ClientHello frame."""
        if self.state is not State.START:
            raise ProtocolError("handshake already started")
        self._hello = (
            bytes([VERSION, CLIENT_HELLO])
            + self._ephemeral.public_key().public_bytes_raw()
            + self._random
            + self._server_key_hash
        )
        self.state = State.WAIT_SERVER_HELLO
        return self._hello

    def _receive(self, frame: bytes) -> list[Event]:
        if self.state is State.ESTABLISHED:
            return self._open_record(frame)
        if self.state is not State.WAIT_SERVER_HELLO:
            raise ProtocolError("unexpected frame")
        return self._server_hello(frame)

    def _server_hello(self, frame: bytes) -> list[Event]:
        _check_header(frame, SERVER_HELLO)
        if len(frame) != SERVER_HELLO_LEN:
            raise ProtocolError("bad ServerHello length")
        clear = frame[:SERVER_HELLO_CLEAR_LEN]
        server_share = clear[HEADER_LEN : HEADER_LEN + X25519_LEN]
        shared = _shared_secret(self._ephemeral, server_share)
        secrets = ks.handshake_secrets(shared, ks.transcript_hash(self._hello, clear))
        server_box = RecordProtection(ks.TrafficKeys.from_secret(secrets.server_handshake))
        inner = server_box.open(frame[SERVER_HELLO_CLEAR_LEN:], clear)

        server_public = inner[:ED25519_PUBLIC_LEN]
        signature = inner[ED25519_PUBLIC_LEN : ED25519_PUBLIC_LEN + SIGNATURE_LEN]
        finished = inner[ED25519_PUBLIC_LEN + SIGNATURE_LEN :]
        server_key = PeerKey.parse(KEY_TYPE_ED25519, server_public)
        if not server_key.matches_hash(self._server_key_hash):
            raise ProtocolError("server key does not match the pinned key")
        server_key.verify(
            signature,
            _signed_content(SERVER_SIGNATURE_CONTEXT, ks.transcript_hash(self._hello, clear, server_public)),
        )
        expected = ks.finished_mac(
            secrets.server_handshake, ks.transcript_hash(self._hello, clear, server_public, signature)
        )
        if not hmac.compare_digest(expected, finished):
            raise ProtocolError("server Finished does not verify")

        # Only now, with the server proven, does the app reveal who it is.
        device = self._identity
        identity_block = bytes([device.key_type]) + device.public_raw
        device_signature = device.sign(
            _signed_content(CLIENT_SIGNATURE_CONTEXT, ks.transcript_hash(self._hello, frame, identity_block))
        )
        client_finished = ks.finished_mac(
            secrets.client_handshake,
            ks.transcript_hash(self._hello, frame, identity_block, device_signature),
        )
        header = bytes([VERSION, CLIENT_FINISH])
        client_box = RecordProtection(ks.TrafficKeys.from_secret(secrets.client_handshake))
        finish = header + client_box.seal(identity_block + device_signature + client_finished, header)
        self._outbox.append(finish)

        full = ks.transcript_hash(self._hello, frame, finish)
        self._establish(ks.application_secrets(secrets.handshake_secret, full), full, is_client=True)
        self.peer = server_key
        return [HandshakeComplete(server_key, self._server_key_hash, full)]


KeyLookup = Callable[[bytes], ServerIdentity | None]


class ServerConnection(_Connection):
    """A server's side. ``key_lookup`` maps the key hash the app asked for to one of this server's keys
    (ns hosts one key per virtual server); an unknown hash ends the handshake."""

    def __init__(
        self,
        key_lookup: KeyLookup,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        ephemeral: x25519.X25519PrivateKey | None = None,
        random: bytes | None = None,
    ) -> None:
        super().__init__(max_message)
        self._key_lookup = key_lookup
        self._ephemeral = ephemeral or x25519.X25519PrivateKey.generate()
        self._random = random if random is not None else os.urandom(RANDOM_LEN)
        self._hello = b""
        self._server_hello = b""
        self._secrets: ks.HandshakeSecrets | None = None
        self._server_key_hash = b""
        self.state = State.START

    def _receive(self, frame: bytes) -> list[Event]:
        if self.state is State.START:
            return self._client_hello(frame)
        if self.state is State.WAIT_CLIENT_FINISH:
            return self._client_finish(frame)
        return self._open_record(frame)

    def _client_hello(self, frame: bytes) -> list[Event]:
        _check_header(frame, CLIENT_HELLO)
        if len(frame) != CLIENT_HELLO_LEN:
            raise ProtocolError("bad ClientHello length")
        client_share = frame[HEADER_LEN : HEADER_LEN + X25519_LEN]
        requested = frame[HEADER_LEN + X25519_LEN + RANDOM_LEN :]
        identity = self._key_lookup(requested)
        if identity is None:
            raise ProtocolError("unknown server key requested")
        shared = _shared_secret(self._ephemeral, client_share)

        clear = (
            bytes([VERSION, SERVER_HELLO]) + self._ephemeral.public_key().public_bytes_raw() + self._random
        )
        secrets = ks.handshake_secrets(shared, ks.transcript_hash(frame, clear))
        signature = identity.sign(
            _signed_content(SERVER_SIGNATURE_CONTEXT, ks.transcript_hash(frame, clear, identity.public_raw))
        )
        finished = ks.finished_mac(
            secrets.server_handshake, ks.transcript_hash(frame, clear, identity.public_raw, signature)
        )
        server_box = RecordProtection(ks.TrafficKeys.from_secret(secrets.server_handshake))
        server_hello = clear + server_box.seal(identity.public_raw + signature + finished, clear)

        self._hello, self._server_hello, self._secrets = frame, server_hello, secrets
        self._server_key_hash = identity.key_hash
        self._outbox.append(server_hello)
        self.state = State.WAIT_CLIENT_FINISH
        return []

    def _client_finish(self, frame: bytes) -> list[Event]:
        _check_header(frame, CLIENT_FINISH)
        secrets = self._secrets
        assert secrets is not None
        header = frame[:HEADER_LEN]
        client_box = RecordProtection(ks.TrafficKeys.from_secret(secrets.client_handshake))
        inner = client_box.open(frame[HEADER_LEN:], header)
        if not inner:
            raise ProtocolError("empty ClientFinish")
        key_type = inner[0]
        key_len = {KEY_TYPE_ED25519: ED25519_PUBLIC_LEN, KEY_TYPE_P256: P256_PUBLIC_LEN}.get(key_type)
        if key_len is None or len(inner) != 1 + key_len + SIGNATURE_LEN + HASH_LEN:
            raise ProtocolError("bad ClientFinish layout")
        identity_block = inner[: 1 + key_len]
        signature = inner[1 + key_len : 1 + key_len + SIGNATURE_LEN]
        finished = inner[1 + key_len + SIGNATURE_LEN :]
        device_key = PeerKey.parse(key_type, identity_block[1:])

        transcript_prefix = (self._hello, self._server_hello, identity_block)
        device_key.verify(
            signature, _signed_content(CLIENT_SIGNATURE_CONTEXT, ks.transcript_hash(*transcript_prefix))
        )
        expected = ks.finished_mac(
            secrets.client_handshake, ks.transcript_hash(*transcript_prefix, signature)
        )
        if not hmac.compare_digest(expected, finished):
            raise ProtocolError("client Finished does not verify")

        full = ks.transcript_hash(self._hello, self._server_hello, frame)
        self._establish(ks.application_secrets(secrets.handshake_secret, full), full, is_client=False)
        self._secrets = None
        self.peer = device_key
        return [HandshakeComplete(device_key, self._server_key_hash, full)]
