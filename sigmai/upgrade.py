"""The server's side of the WebSocket opening handshake (RFC 6455 section 4.2), sans I/O: a request head in,
the 101 answer (or why not) out.

sigmai's clients ask for a plain WebSocket: no subprotocol, no extension, nothing the server picks. Its
opening handshake is a request head of a few hundred bytes, read once per channel; the general HTTP
machinery of ``websockets`` (a line reader, a header multidict, the negotiation hooks) cost the servers
as much CPU as the signature the handshake after it verifies. The frames that follow stay with
``websockets``' protocol (``sigmai.websocket``).

What is refused, and how, follows that library: a head that is not an HTTP/1.1 ``GET`` request (TLS to
a plain port, a scanner's noise, a malformed or oversized line) ends the connection without a word; a
well-formed request that is not a WebSocket upgrade gets a 4xx answer naming what is missing. Offered
extensions and subprotocols are declined by not naming them in the answer.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

MAX_HEAD = 32 * 1024  # what proxies in front add (X-Forwarded-*) fits many times over
MAX_LINE = 8192  # as websockets: a request line or a header line
MAX_HEADERS = 128  # as websockets
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")  # field-value characters: no CR, LF, NUL or controls
_TARGET = re.compile(rb"[\x21-\x7e]+")


class NotHttp(ValueError):
    """The head is not an HTTP/1.1 GET request: end the connection without answering."""


class Refused(ValueError):
    """An HTTP request, but not a WebSocket upgrade this server takes: ``answer`` says why."""

    def __init__(self, status: int, reason: str, why: str, extra: str = "") -> None:
        super().__init__(why)
        body = f"Failed to open a WebSocket connection: {why}.\n".encode()
        self.answer = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


@dataclass(frozen=True)
class Upgrade:
    target: str
    host: str
    forwarded_for: str | None  # every X-Forwarded-For header's value, joined with commas
    key: bytes  # Sec-WebSocket-Key as sent

    @property
    def answer(self) -> bytes:
        accept = base64.b64encode(hashlib.sha1(self.key + _GUID, usedforsecurity=False).digest())
        return (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )


def head_end(buffer: bytes | bytearray, searched_to: int = 0) -> int:
    """Where the head in ``buffer`` ends (after its blank line), or -1 while it has not come whole.
    ``searched_to``: how much of the buffer an earlier call looked at already."""
    found = buffer.find(b"\r\n\r\n", max(0, searched_to - 3))
    return -1 if found < 0 else found + 4


def parse(head: bytes) -> Upgrade:
    """The upgrade ``head`` (request line, header lines, blank line) asks for; raises ``NotHttp`` or
    ``Refused``."""
    if len(head) > MAX_HEAD or not head.endswith(b"\r\n\r\n"):
        raise NotHttp("request head too long or not ended")
    lines = head[:-4].split(b"\r\n")
    if any(len(line) > MAX_LINE for line in lines) or len(lines) - 1 > MAX_HEADERS:
        raise NotHttp("request line or header too long, or too many headers")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1" or not _TARGET.fullmatch(parts[1]):
        raise NotHttp("not an HTTP/1.1 GET request")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise NotHttp("malformed header line")
        value = value.strip(b" \t")
        if not _VALUE.fullmatch(value):
            raise NotHttp("control character in a header value")
        headers.setdefault(name.decode("ascii").lower(), []).append(value.decode("latin-1"))
    return _upgrade(parts[1].decode("ascii"), headers)


def _upgrade(target: str, headers: dict[str, list[str]]) -> Upgrade:
    if "upgrade" not in _tokens(headers.get("connection", [])):
        raise Refused(426, "Upgrade Required", "missing Connection: Upgrade", "Upgrade: websocket\r\n")
    if _tokens(headers.get("upgrade", [])) != ["websocket"]:
        raise Refused(426, "Upgrade Required", "missing Upgrade: websocket", "Upgrade: websocket\r\n")
    versions = headers.get("sec-websocket-version", [])
    if versions != ["13"]:
        raise Refused(
            426, "Upgrade Required", "unsupported Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n"
        )
    keys = headers.get("sec-websocket-key", [])
    if len(keys) != 1 or not _is_key(keys[0]):
        raise Refused(400, "Bad Request", "missing or invalid Sec-WebSocket-Key")
    forwarded = headers.get("x-forwarded-for")
    return Upgrade(
        target=target,
        host=headers.get("host", [""])[0],
        forwarded_for=",".join(forwarded) if forwarded else None,
        key=keys[0].encode("ascii"),
    )


def _tokens(values: list[str]) -> list[str]:
    """The comma-separated tokens of every value, lowercased (RFC 9110 section 5.6.1 lists)."""
    return [token.strip().lower() for value in values for token in value.split(",") if token.strip()]


def _is_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value.encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False
