"""Virtual servers: create, list, read; and the roles an API key can hold."""

from typing import Any

from flask import Blueprint, g, jsonify

from authserver.ns.access import ROLES
from authserver.ns.errors import ServiceError
from authserver.ns.rest.context import services
from authserver.ns.rest.requests import body, requires
from authserver.ns.servers import VirtualServer

blueprint = Blueprint("servers", __name__)


@blueprint.post("/servers")
@requires("createserver", global_operation=True)
def create_server() -> Any:
    data = body()
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or not name.isprintable():
        raise ServiceError(400, "bad_request", "name must be 1 to 200 printable characters.")
    announce = data.get("announce", {})
    if (
        not isinstance(announce, dict)
        or len(announce) > 20
        or not all(isinstance(v, str) and len(k) <= 64 and len(v) <= 200 for k, v in announce.items())
    ):
        raise ServiceError(400, "bad_request", "announce must be at most 20 short lines of text.")
    logo = data.get("logo_url")
    if logo is not None and (
        not isinstance(logo, str)
        or not logo.startswith("https://")
        or len(logo) > 500
        or not logo.isprintable()
    ):
        raise ServiceError(400, "bad_request", "logo_url must be an https:// URL of at most 500 characters.")
    ns = services()
    created = ns.servers.create(name, logo_url=logo, announce=announce)
    ns.login.audit.record("server.created", server_id=created.id, actor=g.grant.name, data={"name": name})
    return jsonify(created.public()), 201


@blueprint.get("/servers")
@requires("servers", global_operation=True)
def list_servers() -> Any:
    return jsonify(servers=[server.public() for server in services().servers.all()])


@blueprint.get("/servers/<sid>")
@requires("servers")
def get_server(sid: VirtualServer) -> Any:
    return jsonify(sid.public())


@blueprint.get("/roles")
def roles() -> Any:
    return jsonify(roles=list(ROLES))
