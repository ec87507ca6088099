"""Events a sigmai connection hands to its owner after consuming a frame."""

from dataclasses import dataclass

from sigmai.identity import PeerKey


@dataclass(frozen=True)
class HandshakeComplete:
    """Both sides are authenticated; application records may flow.

    ``peer`` is the other side's long-term public key: the device key on the server, the server key on the
    app. ``transcript_hash`` identifies this channel in logs (it is public: both sides can compute it).
    """

    peer: PeerKey
    server_key_hash: bytes
    transcript_hash: bytes


@dataclass(frozen=True)
class MessageReceived:
    """One application message, authenticated and in order."""

    data: bytes


Event = HandshakeComplete | MessageReceived
