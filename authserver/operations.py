"""Operations the app may call inside an established sigmai channel, and their dispatch.

Each service (ns, sfs, mc) registers small handler functions by operation name. A handler gets the
channel context (who the device is, which server key it reached) and the request parameters and returns
a JSON-able dict, or raises ``OperationError`` with a stable code and a sentence for the person using
the app. Anything else that goes wrong is logged here with its traceback and reaches the app only as
``internal_error``.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nextauth_core.encoding import unb64url
from sigmai import PeerKey, messages

log = logging.getLogger("nextauth.operations")


@dataclass
class ChannelContext:
    component: str
    peer: PeerKey
    server_key_hash: bytes
    transcript_hash: bytes
    export: Callable[[bytes, bytes, int], bytes]
    state: dict[str, Any] = field(default_factory=dict)  # per-channel scratch space for multi-step flows


class OperationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[[ChannelContext, dict[str, Any]], dict[str, Any]]


def binary_param(value: Any, name: str, *, min_length: int = 1, max_length: int = 4096) -> bytes:
    """A base64url request parameter as bytes, or a ``bad_request`` naming it."""
    if not isinstance(value, str) or len(value) > max_length * 2:
        raise OperationError("bad_request", f"{name} must be a base64url string.")
    try:
        data = unb64url(value)
    except ValueError as exc:
        raise OperationError("bad_request", f"{name} is not valid base64url.") from exc
    if not min_length <= len(data) <= max_length:
        raise OperationError("bad_request", f"{name} has the wrong length.")
    return data


class Operations:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self._handlers[name] = handler
            return handler

        return decorator

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    def dispatch(self, context: ChannelContext, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request.get("id")
        if not messages.valid_id(request_id):
            # Never echo what we did not accept: the caller learns the rule, not its own value back.
            return messages.error(None, "bad_request", f"id must be an integer from 0 to {messages.MAX_ID}.")
        op = request.get("op")
        params = request.get("params", {})
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            return messages.error(request_id, "unknown_operation", f"This server does not offer {op!r}.")
        if not isinstance(params, dict):
            return messages.error(request_id, "bad_request", "params must be a JSON object.")
        try:
            return messages.result(request_id, handler(context, params))
        except OperationError as exc:
            return messages.error(request_id, exc.code, exc.message)
        except Exception:
            log.exception("operation %s failed for device %s", op, context.peer.thumbprint())
            return messages.error(request_id, "internal_error", "The server failed; try again later.")
