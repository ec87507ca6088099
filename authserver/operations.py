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

from authserver.outage import UNAVAILABLE, OutageLog
from authserver.ratelimit import RateLimited
from nextauth_core.encoding import unb64url
from sigmai import PeerKey, messages

log = logging.getLogger("nextauth.operations")
_outages = OutageLog(log, "sigmai operations")


@dataclass
class ChannelContext:
    component: str
    peer: PeerKey
    server_key_hash: bytes
    transcript_hash: bytes
    export: Callable[[bytes, bytes, int], bytes]
    state: dict[str, Any] = field(default_factory=dict)  # per-channel scratch space for multi-step flows
    client_ip: str = ""  # the app's address (through trusted proxies), for per-client rate limits


class OperationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[[ChannelContext, dict[str, Any]], dict[str, Any]]
Guard = Callable[[ChannelContext], None]  # runs before a handler; raises RateLimited to refuse


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
        self._guards: dict[str, list[Guard]] = {}

    def register(self, name: str) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self._handlers[name] = handler
            return handler

        return decorator

    def guard(self, name: str, check: Guard) -> None:
        """Run ``check`` before every call of the operation ``name`` (rate limits)."""
        self._guards.setdefault(name, []).append(check)

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    def offers(self, name: str) -> bool:
        return name in self._handlers

    def dispatch(self, context: ChannelContext, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request.get("id")
        if not messages.valid_id(request_id):
            # Never echo what we did not accept: the caller learns the rule, not its own value back.
            return messages.error(None, "bad_request", f"id must be an integer from 0 to {messages.MAX_ID}.")
        op = request.get("op")
        params = request.get("params", {})
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None or not isinstance(op, str):
            return messages.error(request_id, "unknown_operation", f"This server does not offer {op!r}.")
        if not isinstance(params, dict):
            return messages.error(request_id, "bad_request", "params must be a JSON object.")
        try:
            for check in self._guards.get(op, ()):
                check(context)
            return messages.result(request_id, handler(context, params))
        except RateLimited as exc:
            refused = messages.error(
                request_id, "rate_limited", f"Too many requests; try again in {exc.retry_after} seconds."
            )
            refused["error"]["retry_after"] = exc.retry_after
            return refused
        except OperationError as exc:
            return messages.error(request_id, exc.code, exc.message)
        except UNAVAILABLE as exc:
            _outages.failed(exc)
            return messages.error(request_id, "unavailable", "The service is briefly unavailable; try again.")
        except Exception:
            log.exception("operation %s failed for device %s", op, context.peer.thumbprint())
            return messages.error(request_id, "internal_error", "The server failed; try again later.")
