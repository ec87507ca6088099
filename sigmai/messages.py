"""Application messages inside the channel: one JSON object per record.

Requests carry ``op`` and an ``id`` the response echoes; a response has either ``result`` or ``error``
(``code`` a stable machine-readable word, ``message`` a sentence for a person, never a secret).

A message is parsed within bounds (at most ``MAX_DEPTH`` levels of nesting, strict JSON numbers: see
``nextauth_core.jsonlimits``); anything else is a protocol error, which closes the channel. An ``id`` is an
integer from 0 to ``MAX_ID`` (2^53 - 1, the largest integer every JSON implementation reads exactly); a
request with any other id gets a ``bad_request`` answer whose id is null.
"""

import json
from typing import Any

from nextauth_core import jsonlimits
from sigmai.errors import ProtocolError

MAX_DEPTH = 16
MAX_ID = 2**53 - 1


# One encoder for all messages: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(message: dict[str, Any]) -> bytes:
    return _ENCODER.encode(message).encode("utf-8")


def decode(data: bytes) -> dict[str, Any]:
    try:
        # The channel bounds a message's size already (max_message); here only its shape.
        message = jsonlimits.loads(data, max_depth=MAX_DEPTH, max_bytes=len(data))
    except jsonlimits.JSONLimitError as exc:
        raise ProtocolError(f"application message refused: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("application message is not a JSON object")
    return message


def valid_id(value: Any) -> bool:
    """An integer in [0, MAX_ID]; ``True`` is no id although Python counts it as the integer 1."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def request(request_id: int, op: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": request_id, "op": op, "params": params or {}}


def result(request_id: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "result": value}


def error(request_id: Any, code: str, text: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": text}}
