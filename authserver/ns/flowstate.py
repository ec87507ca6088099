"""The state of ns's flows between their steps, as small frozen dataclasses.

Two kinds. Entries in the key-value store (``qr:``, ``login:``, ``sign:``) are shared between ns
instances, so their JSON is a format: ``to_json``/``from_json`` keep it exactly as it was when these were
dicts (same keys, optional ones left out), so instances of different versions read each other's entries
during a rolling upgrade. The pending steps of a channel (``ChannelContext.state``) live in one process
only and are never serialised.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _load(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a flow entry is a JSON object")
    return data


@dataclass(frozen=True)
class LoginItem:
    """``qr:<id>``: a login request an app may take once, a QR shown to anyone or a push to one account.

    ``challenge_hash`` is the SHA-256 of the secret in the QR or push, so the store never holds the secret.
    """

    server_id: str
    hsid: str
    challenge_hash: str
    browser: dict[str, str]  # what the login page's browser said of itself, shown to the app
    created: float  # time.time()
    account_id: str | None = None  # a push: only this account may take it
    number: int | None = None  # a push: the number the login page shows
    method: str = "qr"
    context: dict[str, str] | None = None  # who asks and why (``nextauth_core.logincontext``)

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "server_id": self.server_id,
            "hsid": self.hsid,
            "challenge_hash": self.challenge_hash,
            "browser": self.browser,
            "created": self.created,
        }
        if self.account_id is not None:
            data["account_id"] = self.account_id
        if self.number is not None:
            data["number"] = self.number
        if self.method != "qr":
            data["method"] = self.method
        if self.context:
            data["context"] = self.context
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "LoginItem":
        data = _load(raw)
        return cls(
            server_id=data["server_id"],
            hsid=data["hsid"],
            challenge_hash=data["challenge_hash"],
            browser=data.get("browser", {}),
            created=data["created"],
            account_id=data.get("account_id"),
            number=data.get("number"),
            method=data.get("method", "qr"),
            context=data.get("context"),
        )


@dataclass(frozen=True)
class CurrentQR:
    """``login:<hsid>``: the QR an application session shows now, so a reload shows the same one."""

    qr_id: str
    payload: str
    expires: float  # time.time()

    def to_json(self) -> bytes:
        return json.dumps({"qr_id": self.qr_id, "payload": self.payload, "expires": self.expires}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CurrentQR":
        data = _load(raw)
        return cls(qr_id=data["qr_id"], payload=str(data["payload"]), expires=data["expires"])


@dataclass(frozen=True)
class SignItem:
    """``sign:<tid>``: a signing request an app may open once (the SHA-256 of the QR's or push's secret)."""

    challenge_hash: str
    server_id: str

    def to_json(self) -> bytes:
        return json.dumps({"challenge_hash": self.challenge_hash, "server_id": self.server_id}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "SignItem":
        data = _load(raw)
        return cls(challenge_hash=data["challenge_hash"], server_id=data["server_id"])


@dataclass(frozen=True)
class PendingLogin:
    """``context.state["login"]``: a scanned login between the app's ``login_start`` and its answer."""

    server_id: str
    hsid: str
    qr_id: str
    challenge: bytes  # the QR's secret, as the app sent it
    ns_challenge: bytes
    account_id: str
    needs_second_factor: bool
    started: float  # time.monotonic()
    method: str  # "qr" or "push"
    number: int | None  # a push's number the app must echo
    # The account as read at the start (binding, user): the finish re-checks only what may have changed
    # meanwhile (blocked, removed), in the transaction that records the session.
    account: "LoginAccount | None" = None


@dataclass(frozen=True)
class LoginAccount:
    """What a login needs of the account that scanned, read once at ``login.start`` with its user."""

    id: str
    thumbprint: str
    sfs_key_hash: str
    sfs_device: str | None
    last_login_at: datetime | None
    user_id: str | None


@dataclass(frozen=True)
class PendingSignature:
    """``context.state["sign"]``: an opened signing request between ``sign_start`` and ``sign_finish``."""

    tid: str
    content: bytes  # canonical JSON: exactly what the app showed
    ns_challenge: bytes
    server_id: str
    started: float  # time.monotonic()


@dataclass(frozen=True)
class PendingEnrolment:
    """``context.state["enrol"]``: a scanned enrolment between ``enrol_start`` and ``enrol_finish``."""

    enrolment: str  # the Enrolment row's id
    server_id: str
    ns_challenge: bytes
    sfs_key_hash: str
    mc: dict[str, Any] | None  # the app's message-center mailbox, as it sent it
    encryption_key: object  # as the app sent it; decoded and checked by enrol_finish
