"""Reading a REST request: who the caller is and what it may do (``requires``), and the parts of the
request the views share (JSON body, session nonce, the visitor's browser)."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request

from authserver.ns.common import valid_nonce
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ratelimit import client_ip
from authserver.transport.wsgi import CLIENT_CERT_KEY


def requires(
    *roles: str, global_operation: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The caller must hold one of ``roles`` for the server in the path (or globally); for a
    ``global_operation``, globally."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ns = services()
            api_key = request.headers.get("X-apikey")
            if api_key is not None:
                grant = ns.access.authenticate_from(api_key, client_address())
            else:
                grant = ns.access.authenticate_certificate(request.environ.get(CLIENT_CERT_KEY))
            if grant is None:
                raise ServiceError(
                    401,
                    "unauthenticated",
                    "Send a valid API key in X-apikey, or use a client certificate listed here.",
                )
            for name, value in kwargs.items():
                # Ids in the path: bounded, printable (PostgreSQL refuses NUL bytes with a 500 otherwise).
                if len(value) > 1024 or not value.isprintable():
                    if name == "sid":
                        raise ServiceError(404, "unknown_server", "No such server.")
                    raise ServiceError(404, "not_found", "No such resource.")
            server_id = kwargs.get("sid")
            if not any(grant.allows(role, server_id, global_operation=global_operation) for role in roles):
                wanted = "' or '".join(roles)
                if global_operation and grant.server_id is not None:
                    raise ServiceError(
                        403,
                        "forbidden",
                        f"This API key is limited to one server; this needs the '{wanted}' role for"
                        " every server.",
                    )
                raise ServiceError(403, "forbidden", f"This API key lacks the '{wanted}' role here.")
            g.grant = grant
            if server_id is not None:
                server = ns.servers.get(server_id)
                if server is None:
                    raise ServiceError(404, "unknown_server", "No such server.")
                kwargs["sid"] = server
            return view(*args, **kwargs)

        return wrapper

    return decorator


def client_address() -> str:
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), services().trusted_proxies)


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and request.content_length:
        raise ServiceError(400, "bad_json", "The request body must be a JSON object.")
    if data is not None and not isinstance(data, dict):
        raise ServiceError(400, "bad_json", "The request body must be a JSON object.")
    return data or {}


def nonce() -> str:
    value = request.headers.get("X-nonce")
    if not valid_nonce(value):
        raise ServiceError(
            400,
            "bad_nonce",
            "Send the session's nonce in X-nonce: at least 16 random bytes from a secure random"
            " generator, base64url (22+ characters) or hex (32+ characters) encoded.",
        )
    assert value is not None
    return value


def browser() -> dict[str, str]:
    """What the application tells us about its visitor, shown on the phone at login."""
    headers = request.headers
    return visitor(headers.get("X-client-ip"), headers.get("X-user-agent"), headers.get("X-client-location"))


def visitor(ip: str | None, user_agent: str | None, location: str | None) -> dict[str, str]:
    """``browser()`` from the values of its three headers."""
    info = {"ip": (ip or "")[:64], "user_agent": (user_agent or "")[:256], "location": (location or "")[:128]}
    return {key: value for key, value in info.items() if value}
