"""What a QR code (or an app-to-app link) carries from ns to the app.

The payload is the text ``NA1.`` followed by base64url of compact JSON. It names the server (its id, its
sigmai URI and the SHA-256 of its public key, which the app pins for the handshake) and the one thing to do:
``login`` (a login session id and a challenge), ``enrol`` (an enrolment id and a one-time secret) or
``sign`` (a transaction id and a challenge). Nothing
in it is useful after it expires or once it has been used: ns checks both.
"""

import json
from dataclasses import dataclass
from typing import Any

from nextauth_core import jsonlimits
from nextauth_core.encoding import b64url, unb64url

PREFIX = "NA1."
MAX_PAYLOAD = 1024  # a QR code stays scannable on a phone screen well below this
KINDS = ("login", "enrol", "sign")


class QRError(ValueError):
    pass


def _unb64url(text: str) -> bytes:
    try:
        return unb64url(text)
    except ValueError as exc:
        raise QRError("not base64url") from exc


@dataclass(frozen=True)
class QRPayload:
    kind: str  # "login" or "enrol"
    server_id: str
    sigmai_uri: str
    server_key_hash: bytes
    item_id: str  # the login session's QR id or the enrolment id
    secret: bytes  # the login challenge or the enrolment one-time secret
    server_name: str = ""

    def encode(self) -> str:
        body: dict[str, Any] = {
            "t": self.kind,
            "sid": self.server_id,
            "u": self.sigmai_uri,
            "k": b64url(self.server_key_hash),
            "i": self.item_id,
            "x": b64url(self.secret),
        }
        if self.server_name:
            body["n"] = self.server_name
        return PREFIX + b64url(json.dumps(body, separators=(",", ":")).encode("utf-8"))

    @classmethod
    def decode(cls, text: str) -> "QRPayload":
        text = text.strip()
        if ":" in text and not text.startswith(PREFIX):
            text = text.split(":", 1)[1]  # an app link
        if not text.startswith(PREFIX) or len(text) > MAX_PAYLOAD:
            raise QRError("this is not a nextAuth code")
        try:
            body = jsonlimits.loads(_unb64url(text[len(PREFIX) :]), max_depth=4)
        except ValueError as exc:
            raise QRError("this nextAuth code is damaged") from exc
        if not isinstance(body, dict):
            raise QRError("this nextAuth code is damaged")
        try:
            payload = cls(
                kind=str(body["t"]),
                server_id=str(body["sid"]),
                sigmai_uri=str(body["u"]),
                server_key_hash=_unb64url(str(body["k"])),
                item_id=str(body["i"]),
                secret=_unb64url(str(body["x"])),
                server_name=str(body.get("n", "")),
            )
        except KeyError as exc:
            raise QRError("this nextAuth code is incomplete") from exc
        if payload.kind not in KINDS:
            raise QRError("this nextAuth code asks for something this app cannot do")
        if len(payload.server_key_hash) != 32 or not 16 <= len(payload.secret) <= 64:
            raise QRError("this nextAuth code is damaged")
        if not payload.sigmai_uri.startswith(("ws://", "wss://")):
            raise QRError("this nextAuth code points to an unsupported address")
        return payload
