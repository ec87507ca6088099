"""Application messages inside the channel: one JSON object per record.

Requests carry ``op`` and an ``id`` the response echoes; a response has either ``result`` or ``error``
(``code`` a stable machine-readable word, ``message`` a sentence for a person, never a secret).
"""

import json
from typing import Any

from sigmai.errors import ProtocolError


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("application message is not JSON") from exc
    if not isinstance(message, dict):
        raise ProtocolError("application message is not a JSON object")
    return message


def request(request_id: int, op: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": request_id, "op": op, "params": params or {}}


def result(request_id: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "result": value}


def error(request_id: Any, code: str, text: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": text}}
