"""Virtual servers: create, list, read, change; and the roles an API key can hold."""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.access import ROLES
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from authserver.ns.servers import VirtualServer

blueprint = Blueprint("servers", __name__)

# A PIN policy in seconds: -1 never ask, 0 always ask, n: not again within n seconds (at most a day).
MAX_PIN_TIMEOUT = 86_400


def _name(data: dict[str, Any]) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or not name.isprintable():
        raise ServiceError(400, "bad_request", "name must be 1 to 200 printable characters.")
    return name


def _announce(data: dict[str, Any]) -> dict[str, str]:
    announce = data.get("announce", {})
    if (
        not isinstance(announce, dict)
        or len(announce) > 20
        or not all(isinstance(v, str) and len(k) <= 64 and len(v) <= 200 for k, v in announce.items())
    ):
        raise ServiceError(400, "bad_request", "announce must be at most 20 short lines of text.")
    return announce


def _logo(data: dict[str, Any]) -> str | None:
    logo = data.get("logo_url")
    if logo is not None and (
        not isinstance(logo, str)
        or not logo.startswith("https://")
        or len(logo) > 500
        or not logo.isprintable()
    ):
        raise ServiceError(400, "bad_request", "logo_url must be an https:// URL of at most 500 characters.")
    return logo


def _pin_timeout(data: dict[str, Any], name: str) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= MAX_PIN_TIMEOUT:
        raise ServiceError(
            400,
            "bad_request",
            f"{name} must be -1 (never ask), 0 (always ask) or seconds up to {MAX_PIN_TIMEOUT}.",
        )
    return value


@blueprint.post("/servers")
@requires("createserver", global_operation=True)
def create_server() -> Any:
    data = body()
    name = _name(data)
    ns = services()
    server = ns.servers.create(name, logo_url=_logo(data), announce=_announce(data))
    ns.login.audit.record("server.created", server_id=server.id, actor=g.grant.name, data={"name": name})
    return jsonify(server.described()), 201


@blueprint.get("/servers")
@requires("servers", global_operation=True)
def list_servers() -> Any:
    return jsonify(servers=[server.described() for server in services().servers.all()])


@blueprint.get("/servers/<sid>")
@requires("servers")
def get_server(sid: VirtualServer) -> Any:
    return jsonify(sid.described())


@blueprint.patch("/servers/<sid>")
@requires("servers")
def update_server(sid: VirtualServer) -> Any:
    """Change the members sent; the others stay. The key and the id never change."""
    data = body()
    readers = {
        "name": _name,
        "logo_url": _logo,
        "announce": _announce,
        "login_pin_timeout": lambda d: _pin_timeout(d, "login_pin_timeout"),
        "transaction_pin_timeout": lambda d: _pin_timeout(d, "transaction_pin_timeout"),
    }
    unknown = sorted(set(data) - set(readers))
    if unknown or not data:
        raise ServiceError(
            400,
            "bad_request",
            f"Send one or more of {', '.join(readers)}"
            + (f"; not {', '.join(unknown)}." if unknown else "."),
        )
    changes = {name: read(data) for name, read in readers.items() if name in data}
    ns = services()
    server = ns.servers.update(sid.id, changes)
    if server is None:
        raise ServiceError(404, "unknown_server", "No such server.")
    ns.login.audit.record(
        "server.updated", server_id=server.id, actor=g.grant.name, data={"changed": sorted(changes)}
    )
    return jsonify(server.described())


@blueprint.get("/roles")
def roles() -> Any:
    return jsonify(roles=list(ROLES))
