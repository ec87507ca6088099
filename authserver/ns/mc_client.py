"""ns's side of the Message Center API: gRPC (preferred) or REST, to MCs ns has been told to trust.

The app names its MC only by key hash; the address comes from ns's own configuration
(``NEXTAUTH_NS_MESSAGE_CENTERS``), so an app cannot make ns connect anywhere it chooses.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Protocol

import grpc

from authserver.config import ConfigError
from authserver.mc.proto import messagecenter_pb2, messagecenter_pb2_grpc
from nextauth_core.encoding import b64url


class DeliveryError(Exception):
    """The MC refused or could not be reached; the message is safe to show to an application."""


@dataclass(frozen=True)
class Delivery:
    message_id: str
    pushed: bool


class MessageCenterClient(Protocol):
    def send(
        self, mailbox: str, token: str, envelope: bytes, *, sender: str, collapse_id: str, ttl: int
    ) -> Delivery: ...

    def close(self) -> None: ...


class GrpcMessageCenter:
    def __init__(self, address: str, *, secure: bool, timeout: float = 5.0) -> None:
        credentials = grpc.ssl_channel_credentials() if secure else None
        self._channel = (
            grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
        )
        self._stub = messagecenter_pb2_grpc.MessageCenterStub(self._channel)
        self._timeout = timeout

    def send(
        self, mailbox: str, token: str, envelope: bytes, *, sender: str, collapse_id: str, ttl: int
    ) -> Delivery:
        request = messagecenter_pb2.SendRequest(
            mailbox=mailbox,
            token=token,
            envelope=envelope,
            sender=sender,
            collapse_id=collapse_id,
            ttl_seconds=ttl,
        )
        try:
            # wait_for_ready: a channel still connecting (first use, MC restart) waits, within the timeout.
            reply = self._stub.Send(request, timeout=self._timeout, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise DeliveryError(f"message center refused: {exc.code().name}") from exc
        return Delivery(reply.message_id, reply.pushed)

    def close(self) -> None:
        self._channel.close()


class RestMessageCenter:
    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout

    def send(
        self, mailbox: str, token: str, envelope: bytes, *, sender: str, collapse_id: str, ttl: int
    ) -> Delivery:
        body = json.dumps(
            {
                "envelope": b64url(envelope),
                "sender": sender,
                "collapse_id": collapse_id,
                "ttl_seconds": ttl,
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme comes from ns's own configuration
            f"{self._base}/v1/mailboxes/{urllib.parse.quote(mailbox, safe='')}/messages",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"message center refused: HTTP {exc.code}") from exc
        except OSError as exc:
            raise DeliveryError("message center unreachable") from exc
        return Delivery(str(answer["message_id"]), bool(answer.get("pushed")))

    def close(self) -> None:
        pass


def client_for(address: str) -> MessageCenterClient:
    if address.startswith("grpc://"):
        return GrpcMessageCenter(address[len("grpc://") :], secure=False)
    if address.startswith("grpcs://"):
        return GrpcMessageCenter(address[len("grpcs://") :], secure=True)
    if address.startswith(("http://", "https://")):
        return RestMessageCenter(address)
    raise ValueError(address)


def parse_message_centers(value: str | None) -> dict[str, str]:
    """``<mc key hash>=<address>`` pairs, comma-separated; address grpc://, grpcs://, http:// or https://."""
    centers: dict[str, str] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        key_hash, _, address = item.strip().partition("=")
        if len(key_hash) != 64 or not address.startswith(("grpc://", "grpcs://", "http://", "https://")):
            raise ConfigError(
                "NEXTAUTH_NS_MESSAGE_CENTERS: expected <64-hex key hash>=<grpc://|grpcs://|http(s)://address>,..."
            )
        centers[key_hash.lower()] = address
    return centers
